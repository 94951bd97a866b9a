"""Behaviour of the training losses and samplers where the older tests never looked (issue 23): the autoencoder
loss network's resize option, which input each shape-translation term compares with which output, and how the
MPCS pair sampler draws anchors and partners.

Issue 17 may change the loss network's input range and output (raw [0, 1] input, a sigmoid on the features);
the resize test compares two loss networks of the same construction, so it holds under either convention. Issue 18
changes the default pairing (by image sequence); the sampler tests name within="patient" explicitly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from percept.autoencoders.losses import LossNetwork
from percept.mpcs.pairs import PairSampler
from percept.translation import losses

LITE = "efficientnet_lite0"


# --- the autoencoders' loss network ---------------------------------------------------------------------------
def test_loss_network_resizes_its_input_when_asked():
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    resized = LossNetwork(LITE, "_blocks.0", "random", resize=64, seed=0)
    plain = LossNetwork(LITE, "_blocks.0", "random", resize=None, seed=0)
    with torch.no_grad():
        got = resized(x)
        want = plain(F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False))
        native = plain(x)
    assert got.shape[-2:] == (32, 32) and native.shape[-2:] == (20, 20)  # the stem halves the side
    torch.testing.assert_close(got, want)


# --- shape translation: which input meets which output ------------------------------------------------------
class Shifter:
    """A deterministic stand-in translator: encode is the identity (no log-variance: a deterministic code),
    decoding into domain d adds OFFSET[d]; so every term has a value written out by hand."""

    OFFSET = {"A": 0.1, "B": 0.3}

    def encode(self, x, domain):
        return x, None

    def sample(self, mu, logvar):
        return mu

    def decode(self, z, domain):
        return z + self.OFFSET[domain]


def test_each_translation_term_compares_an_input_with_its_own_outputs():
    g = torch.Generator().manual_seed(0)
    xa = torch.rand(2, 3, 8, 8, generator=g)
    xb = 0.5 * torch.rand(2, 3, 8, 8, generator=g) + 0.5  # a brighter, lower-contrast domain
    discs = {"A": lambda x: x.mean((1, 2, 3)), "B": lambda x: 2 * x.mean((1, 2, 3)) - 0.5}
    weights = {"reconstruction": 1.0, "kl": 1.0, "gan": 1.0, "cycle": 1.0, "similarity": 1.0}
    sim = losses.colour_statistics_distance
    terms, fake = losses.translator_terms(Shifter(), xa, xb, weights, discs, sim)
    torch.testing.assert_close(fake["AB"], xa + 0.3)  # A's code decoded into B
    torch.testing.assert_close(fake["BA"], xb + 0.1)
    # reconstruction: x_A through decoder A (+0.1), x_B through decoder B (+0.3)
    assert float(terms["reconstruction"]) == pytest.approx(0.1 + 0.3)
    # cycle: A -> B -> A adds 0.3 then 0.1, and so does B -> A -> B; each compared with its own input
    assert float(terms["cycle"]) == pytest.approx(0.4 + 0.4)
    # similarity: each input against its own translation (colour statistics: only the means move)
    want = sim(xa, xa + 0.3) + sim(xb, xb + 0.1)
    assert float(terms["similarity"]) == pytest.approx(float(want))
    assert float(want) == pytest.approx(3 * 0.3 ** 2 + 3 * 0.1 ** 2, rel=1e-4)
    # gan: the translation into B judged by B's discriminator, into A by A's
    want_gan = (losses.gan_generator_loss(discs["B"](xa + 0.3)) + losses.gan_generator_loss(discs["A"](xb + 0.1)))
    crossed = (losses.gan_generator_loss(discs["A"](xa + 0.3)) + losses.gan_generator_loss(discs["B"](xb + 0.1)))
    assert float(terms["gan"]) == pytest.approx(float(want_gan))
    assert abs(float(want_gan) - float(crossed)) > 1e-2  # the pairing matters here: the test can fail
    assert float(terms["kl"]) == 0.0  # deterministic codes
    total = losses.weighted_sum(terms, {**weights, "cycle": 2.0})
    assert float(total) == pytest.approx(sum(float(v) for v in terms.values()) + float(terms["cycle"]))


def test_colour_statistics_distance_is_a_batch_mean():
    x = torch.zeros(4, 3, 2, 2)
    y = x.clone()
    y[0] += 1.0  # only the first image differs: 3 channel means off by 1
    assert float(losses.colour_statistics_distance(x, y)) == pytest.approx(3.0 / 4)


# --- MPCS pairs -----------------------------------------------------------------------------------------------
def _slides():
    """Patient 0: two images at each of 100x and 200x; patient 1: one image at each."""
    mag = np.array([100, 100, 200, 200, 100, 200])
    patient = np.array([0, 0, 0, 0, 1, 1])
    return mag, patient


def test_pair_sampler_draws_every_anchor_and_every_partner_of_the_pool():
    mag, patient = _slides()
    sampler = PairSampler("random", mag, patient, within="patient")
    assert sampler.anchors.tolist() == [0, 1, 2, 3, 4, 5]
    a, b = sampler.sample(3000, np.random.default_rng(0))
    counts = np.bincount(a, minlength=6)
    assert counts.min() > 350  # uniform over the six anchors (500 expected each)
    assert (patient[a] == patient[b]).all() and (mag[a] != mag[b]).all()
    # patient 0's 100x anchors find both of its 200x images, and vice versa
    for anchor, pool in ((0, {2, 3}), (1, {2, 3}), (2, {0, 1}), (3, {0, 1})):
        partners = set(b[a == anchor].tolist())
        assert partners == pool, (anchor, partners)
    assert set(b[a == 4].tolist()) == {5}
