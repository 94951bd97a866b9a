"""Records the numbers pinned in tests/test_mpcs.py by running the authors' code (outside the project). Run:
mkdir /tmp/ref-mpcs && git --git-dir=/work/.mirror/prakashchhipa+Magnification-Prior-Self-Supervised-Method/repo archive HEAD | tar -x -C /tmp/ref-mpcs;
python -m venv --system-site-packages /tmp/albu && /tmp/albu/bin/pip install albumentations==1.3.1; /tmp/albu/bin/python aug_ref.py
(lars_ref.py needs torch only). Set the site-packages path of /work/venv below."""
import sys
# Run the authors' pretrain_augmentation pieces (albumentations 1.3.1) on fixed inputs.
sys_path_extra = '/work/venv/lib/python3.X/site-packages'
import sys, types, random
import numpy as np
sys.path.insert(0, "/tmp/ref-mpcs/src"); sys.path.append(sys_path_extra)
sys.modules["self_supervised.apply.config"] = types.ModuleType("config")
import importlib.util
spec = importlib.util.spec_from_file_location("aug", "/tmp/ref-mpcs/src/self_supervised/apply/augmentation_strategy.py")
import self_supervised.apply  # package
aug = importlib.util.module_from_spec(spec); spec.loader.exec_module(aug)
pa = aug.pretrain_augmentation
for t in pa.transforms:
    print(type(t).__name__, t.p, t.get_transform_init_args())
import albumentations as A
img = (np.arange(20*20*3).reshape(20,20,3) % 251).astype(np.uint8)
# translate: the reference's Affine at p=1
aff = pa.transforms[3]; aff.p = 1.0
out = aff(image=img)["image"]
print("affine shift check", np.array_equal(out[1:,1:], img[:-1,:-1]), out[0].sum(), out[:,0].sum())
# rotate at +90 exactly
r = A.Rotate(limit=(90, 90), p=1.0)
out = r(image=img)["image"]
print("rot90 = np.rot90 (ccw):", np.array_equal(out, np.rot90(img, 1, axes=(0,1))), "cw:", np.array_equal(out, np.rot90(img, -1, axes=(0,1))))
# flip kinds
f = pa.transforms[1]
print("flip params", [f.get_params()["d"] for _ in range(0)])
import inspect; print(inspect.getsource(type(f).get_params))
print(inspect.getsource(type(f).apply))
