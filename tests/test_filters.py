"""percept.filters.gaussian_blur, the one Gaussian blur (explanation perturbation and insertion, MPCS SimCLR
augmentation, translation judge corruptions).

The recorded numbers are the outputs of the three copies it replaced, on main 8ed9145
(src/percept/explain/perturbation.py, src/percept/translation/evaluate.py, src/percept/mpcs/augment.py, each
``gaussian_blur``), on the fixed input below; the copies and this function were also compared bit for bit on
images of 16–224 px, σ 0.3–6, float and per-image σ (torch.equal held everywhere; /tmp script in the issue 20
report)."""

from __future__ import annotations

import math

import pytest
import torch
from numpy.testing import assert_allclose

from percept.filters import gaussian_blur


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(5))


def test_one_sigma_for_the_batch_as_the_explanation_copy(x):
    out = gaussian_blur(x, 1.5)
    assert_allclose(out[0, :, 5, 5].tolist(), [0.5278774499893188, 0.49974972009658813, 0.5266254544258118], rtol=1e-6)
    assert float(out.sum()) == pytest.approx(410.522705078125, rel=1e-6)
    assert gaussian_blur(x, 0.0) is x  # no blur at σ = 0 (the blur perturbation's off switch)


def test_one_sigma_per_image_as_the_translation_and_mpcs_copies(x):
    assert_allclose(gaussian_blur(x, torch.tensor([0.7, 2.0]))[:, 1, 3, 8].tolist(),
                    [0.4522061049938202, 0.432440847158432], rtol=1e-6)
    assert_allclose(gaussian_blur(x, torch.tensor([1.2, 0.4]))[:, 2, 0, 0].tolist(),
                    [0.45267555117607117, 0.6784258484840393], rtol=1e-6)
    # per image = each image alone with its own σ
    both = gaussian_blur(x, torch.tensor([0.7, 2.0]))
    assert torch.allclose(both[1:], gaussian_blur(x[1:], 2.0), atol=1e-6)
    with pytest.raises(ValueError, match="3 sigmas for 2 images"):
        gaussian_blur(x, torch.ones(3))


def test_a_kernel_wider_than_the_image_is_cut_and_renormalised():
    """(The explanation copy cut it without renormalising: a 5 px image at σ 2 changed its mean; only images
    smaller than 3σ + 1 px are affected, none of the configs' sizes.)"""
    flat = torch.full((1, 3, 5, 7), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([6.0])), flat, atol=1e-6)
    spike = torch.zeros(1, 1, 9, 9)
    spike[..., 4, 4] = 1
    out = gaussian_blur(spike, 1.0)
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-6) and float(out[..., 4, 4]) == float(out.max())


def test_mass_and_peak_of_a_point():
    dot = torch.zeros(2, 3, 17, 17)
    dot[..., 8, 8] = 1.0
    for blurred in (gaussian_blur(dot, 1.5), gaussian_blur(dot, torch.tensor([1.5, 1.5]))):
        assert torch.allclose(blurred.sum((2, 3)), torch.ones(2, 3), atol=1e-5)  # mass kept (far from the border)
        assert float(blurred.max()) == pytest.approx(1 / (2 * math.pi * 1.5 ** 2), rel=0.05)  # the Gaussian's peak
