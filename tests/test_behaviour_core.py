"""Behaviour of the core IO and input path where the older tests never looked (issue 23): inputs of exactly the
minimum size, downsizing (antialiased), non-square inputs, and stale temporaries planted beside an HDF5 target.

prepare_input's normalisation is a convention issue 17 may change (ImageNet-normalised vs raw [0, 1] input for
loss networks), so every comparison below runs both sides through prepare_input and checks only the resizing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from percept import backbones
from percept.features import prepare_input
from percept.h5io import atomic_h5, open_h5


# --- prepare_input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["alexnet", "efficientnet_lite0"])
def test_an_input_of_exactly_the_minimum_size_is_accepted(name):
    spec = backbones.get(name)
    side = spec.min_input_size
    assert prepare_input(torch.rand(1, 3, side, side), spec, None).shape == (1, 3, side, side)
    assert prepare_input(torch.rand(1, 3, side, side + 17), spec, None).shape == (1, 3, side, side + 17)
    with pytest.raises(ValueError, match=f"at least {side}x{side}"):
        prepare_input(torch.rand(1, 3, side - 1, side + 17), spec, None)  # the smaller side decides
    with pytest.raises(ValueError, match=f"at least {side}x{side}"):
        prepare_input(torch.rand(1, 3, side + 17, side - 1), spec, None)


def test_downsizing_is_antialiased():
    """A 1-px checkerboard downsized 3× must come out (nearly) flat grey: an antialiased resize averages the
    pixels a output pixel covers; a plain bilinear one samples one of them and keeps the full contrast."""
    spec = backbones.get("efficientnet_lite0")
    yy, xx = torch.meshgrid(torch.arange(192), torch.arange(192), indexing="ij")
    checker = ((yy + xx) % 2).float().expand(1, 3, 192, 192).contiguous()
    small = prepare_input(checker, spec, 64)
    assert small.shape == (1, 3, 64, 64)
    full = prepare_input(checker, spec, None)
    # the normalisation is affine per channel, so the ratio of spatial standard deviations is its own
    ratio = small.std(dim=(2, 3)) / full.std(dim=(2, 3))
    assert torch.all(ratio < 0.2), ratio
    want = F.interpolate(checker, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(small, prepare_input(want, spec, None))


def test_a_non_square_input_is_resized_to_the_square_side():
    spec = backbones.get("efficientnet_lite0")
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    out = prepare_input(x, spec, 64)  # the height already matches: the width must still be resized
    assert out.shape == (2, 3, 64, 64)
    want = F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(out, prepare_input(want, spec, None))
    assert prepare_input(x[:, :, :, :64], spec, 64).shape == (2, 3, 64, 64)  # already square: unchanged size


def test_non_finite_images_are_refused_before_the_network():
    spec = backbones.get("efficientnet_lite0")
    x = torch.rand(2, 3, 32, 32)
    x[1, 2, 5, 7] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        prepare_input(x, spec, None)


# --- HDF5: the stale-temporary sweep --------------------------------------------------------------------------
def _plant(path, text: str = "partial") -> None:
    path.write_text(text)


def test_a_successful_write_sweeps_the_stale_temporaries_of_its_target_only(tmp_path):
    """Writers killed by SIGKILL leave `.<name>.<pid>.tmp`; the next successful write of that target deletes
    them — and nothing else: not another target's (possibly live) temporary, not the user's files."""
    target = tmp_path / "cache.h5"
    stale = [tmp_path / ".cache.h5.123.tmp", tmp_path / ".cache.h5.4567.tmp"]
    others = [tmp_path / ".other.h5.89.tmp", tmp_path / "cache.h5.bak", tmp_path / ".cache.h5.keep"]
    for p in stale + others:
        _plant(p)
    with atomic_h5(target, "features") as f:
        f.create_dataset("x", data=np.arange(3))
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)
    with open_h5(target, "features") as f:
        assert f["x"][...].tolist() == [0, 1, 2]


def test_the_sweep_takes_file_names_literally(tmp_path):
    """Glob metacharacters in a target's name are literal: `run[1].h5` sweeps `.run[1].h5.*.tmp`, not the
    temporaries of `run1.h5` (which `[1]` would match as a character class)."""
    target = tmp_path / "run[1].h5"
    stale = tmp_path / ".run[1].h5.42.tmp"
    neighbour = tmp_path / ".run1.h5.42.tmp"
    _plant(stale)
    _plant(neighbour)
    with atomic_h5(target, "table") as f:
        f.create_dataset("x", data=np.ones(2))
    assert target.exists() and not stale.exists() and neighbour.exists()
