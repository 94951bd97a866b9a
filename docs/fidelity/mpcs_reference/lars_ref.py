"""Records the numbers pinned in tests/test_mpcs.py by running the authors' code (outside the project). Run:
mkdir /tmp/ref-mpcs && git --git-dir=/work/.mirror/prakashchhipa+Magnification-Prior-Self-Supervised-Method/repo archive HEAD | tar -x -C /tmp/ref-mpcs;
python -m venv --system-site-packages /tmp/albu && /tmp/albu/bin/pip install albumentations==1.3.1; /tmp/albu/bin/python lars_ref.py
(lars_ref.py needs torch only). Set the site-packages path of /work/venv below."""
import sys, types, importlib.util
sys.path.insert(0, "/tmp/ref-mpcs/src")
import torch
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m
import self_supervised.core as core, self_supervised.apply as apply
sys.modules["self_supervised.core.ssl_loss"] = types.ModuleType("ssl_loss"); core.ssl_loss = sys.modules["self_supervised.core.ssl_loss"]
sys.modules["self_supervised.apply.config"] = types.ModuleType("config"); apply.config = sys.modules["self_supervised.apply.config"]
opt_mod = load("optimizers", "/tmp/ref-mpcs/src/self_supervised/core/optimizers.py")
pre = load("pretrain", "/tmp/ref-mpcs/src/self_supervised/core/pretrain.py")
# schedule: epochs 100, batch 512, 7 steps per epoch, global steps
w = torch.nn.Parameter(torch.zeros(2, 2)); b = torch.nn.Parameter(torch.zeros(2))
opt = opt_mod.LARS([{"params": [w]}, {"params": [b]}], lr=0)
for step in (0, 1, 35, 69, 70, 71, 300, 699):
    pre.adjust_learning_rate(100, 512, 0.2, 0.0048, opt, range(7), step)
    print(step, repr(opt.param_groups[0]["lr"]), repr(opt.param_groups[1]["lr"]))
# one LARS update pair on fixed seeded parameters and gradients
torch.manual_seed(0)
w = torch.nn.Parameter(torch.randn(3, 4)); b = torch.nn.Parameter(torch.randn(3))
opt = opt_mod.LARS([{"params": [w]}, {"params": [b]}], lr=0, weight_decay=1e-6, momentum=0.9, eta=0.001,
                   weight_decay_filter=True, lars_adaptation_filter=True)
opt.param_groups[0]["lr"] = 0.4; opt.param_groups[1]["lr"] = 0.0096
for k in range(2):
    g = torch.Generator().manual_seed(10 + k)
    w.grad = torch.randn(3, 4, generator=g); b.grad = torch.randn(3, generator=g)
    opt.step()
torch.set_printoptions(precision=10)
print("w", w.data.flatten().tolist()); print("b", b.data.tolist())
