"""Records the numbers pinned in tests/test_mpcs.py by running the authors' code (outside the project). Run:
mkdir /tmp/ref-mpcs && git --git-dir=/work/.mirror/prakashchhipa+Magnification-Prior-Self-Supervised-Method/repo archive HEAD | tar -x -C /tmp/ref-mpcs;
python -m venv --system-site-packages /tmp/albu && /tmp/albu/bin/pip install albumentations==1.3.1; /tmp/albu/bin/python pair_ref.py
(lars_ref.py needs torch only). Set the site-packages path of /work/venv below."""
import sys, types, os, random, collections
sys.path.insert(0, "/tmp/ref-mpcs/src"); sys.path.append("/work/venv/lib/python3.X/site-packages")
sys.modules["spams"] = types.ModuleType("spams")
import numpy as np
from PIL import Image
# BreakHis-layout fixture: (patient dir, seq numbers per magnification)
FIXTURE = {
    "benign/SOB/adenosis/SOB_B_A_14-22549AB": {40: [1, 2, 3], 100: [1, 2, 3], 200: [1, 2], 400: [1, 2, 3, 4]},
    "malignant/SOB/ductal_carcinoma/SOB_M_DC_14-2523": {40: [1, 2, 5], 100: [1, 2, 5], 200: [1, 2], 400: [1, 2, 5]},
    "benign/SOB/fibroadenoma/SOB_B_F_14-9133": {40: [1, 2], 100: [1], 200: [1], 400: [1]},
}
root = "/tmp/i18ref/breakhis/BreaKHis_v1/histology_slides/breast"
flat = "/tmp/i18ref/flat"  # the reference's fold layout: patient folders side by side
import shutil; shutil.rmtree("/tmp/i18ref/breakhis", ignore_errors=True); shutil.rmtree(flat, ignore_errors=True)
for rel, mags in FIXTURE.items():
    slide = os.path.basename(rel); cls, _, sub = slide.split("_")[:3]
    for m, seqs in mags.items():
        for base in (os.path.join(root, rel), os.path.join(flat, slide)):
            d = os.path.join(base, f"{m}X"); os.makedirs(d, exist_ok=True)
            for s in seqs:
                Image.new("RGB", (8, 6), (m % 256, s, 0)).save(os.path.join(d, f"SOB_{cls}_{sub}-{slide.split('_')[-1]}-{m}-{s:03d}.png"))
from self_supervised.apply import datasets
ds = datasets.BreakHis_Dataset_SSL(flat, training_method="MPCS", transform=None, augmentation_strategy=lambda image: {"image": image}, pair_sampling_method="OP")
print("keys", sorted(ds.image_list))
opened = []
datasets.PIL.Image.open = lambda p: opened.append(p) or np.zeros((2, 2, 3), np.uint8)
for method in ("OP", "RP", "FP"):
    ds.pair_sampling_method = method
    random.seed(0); opened.clear(); n = 24000
    for k in range(n):
        ds[k % len(ds)]
    pairs = collections.Counter()
    for a, b in zip(opened[0::2], opened[1::2]):
        ka, kb = a.split("/")[-1].split("-"), b.split("/")[-1].split("-")
        assert ka[2] == kb[2] and ka[4] == kb[4]  # same patient, same sequence number
        pairs[(int(ka[3]), int(kb[3]))] += 1
    print(method, {k: round(v / n, 4) for k, v in sorted(pairs.items())})
