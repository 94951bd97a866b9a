"""EfficientNet-Lite's architecture plan, free of torch so that the registry can be read without it."""

from __future__ import annotations

import math

# (expand ratio, kernel, stride, in, out, repeats) of EfficientNet-B0's seven stages.
STAGES = ((1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
          (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1))
# name: (width multiplier, depth multiplier, resolution, dropout)
VARIANTS = {"efficientnet_lite0": (1.0, 1.0, 224, 0.2), "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
            "efficientnet_lite2": (1.1, 1.2, 260, 0.3), "efficientnet_lite3": (1.2, 1.4, 280, 0.3),
            "efficientnet_lite4": (1.4, 1.8, 300, 0.3)}
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


def block_plan(variant: str) -> tuple[list[tuple[int, int, int, int, int]], list[int]]:
    """(expand, kernel, stride, in, out) per block, and the index of each stage's last block."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(VARIANTS)}")
    width, depth = VARIANTS[variant][:2]
    blocks: list[tuple[int, int, int, int, int]] = []
    ends: list[int] = []
    for i, (expand, kernel, stride, cin, cout, repeats) in enumerate(STAGES):
        cin = 32 if i == 0 else round_filters(cin, width)  # the stem stays 32 wide in Lite
        cout = round_filters(cout, width)
        n = repeats if i in (0, len(STAGES) - 1) else int(math.ceil(repeats * depth))
        for j in range(n):
            blocks.append((expand, kernel, stride if j == 0 else 1, cin if j == 0 else cout, cout))
        ends.append(len(blocks) - 1)
    return blocks, ends
