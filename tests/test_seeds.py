"""percept.seeds: named random streams derived one way from the config's seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from percept import seeds


def test_a_named_stream_draws_what_its_tag_drew_before_it_had_a_name():
    # the call sites before issue 20: default_rng([seed, 41, row]) (distortions), [seed, 21, fold, s, epoch] (MPCS)
    assert np.array_equal(seeds.rng(7, "similarity.distortion_params", 3).random(5),
                          np.random.default_rng([7, 41, 3]).random(5))
    old = np.random.default_rng([7, 21, 0, 1, 4])
    old_gen = torch.Generator().manual_seed(int(old.integers(2**62)))
    rng, gen = seeds.generators(7, "mpcs.pretrain_epoch", 0, 1, 4)
    assert np.array_equal(rng.random(3), old.random(3))  # the numpy stream goes on after the torch seed
    assert torch.equal(torch.rand(4, generator=gen), torch.rand(4, generator=old_gen))
    children = seeds.sequence(7, "embedded.shapes").spawn(2)
    old_children = np.random.SeedSequence([7, 1]).spawn(2)
    draw = [np.random.default_rng(c).integers(1 << 30) for c in (children[1], old_children[1])]
    assert draw[0] == draw[1]


def test_streams_differ_by_name_ids_and_seed_and_repeat_exactly():
    draw = lambda *a: seeds.rng(*a).integers(1 << 62)  # noqa: E731
    assert draw(0, "autoencoders.epoch", 1) == draw(0, "autoencoders.epoch", 1)
    assert len({draw(0, "autoencoders.epoch", 1), draw(0, "autoencoders.epoch", 2), draw(1, "autoencoders.epoch", 1),
                draw(0, "translation.epoch_noise", 1)}) == 4
    assert seeds.torch_seed(3, "translation.judge_eval") == seeds.torch_seed(3, "translation.judge_eval") < 2**62
    a = torch.rand(3, generator=seeds.torch_generator(3, "translation.judge_eval"))
    assert torch.equal(a, torch.rand(3, generator=seeds.torch_generator(3, "translation.judge_eval")))


def test_an_unknown_stream_name_is_refused_with_the_known_ones():
    with pytest.raises(KeyError, match="no random stream named 'mpcs.pretrain'.*mpcs.pretrain_epoch"):
        seeds.rng(0, "mpcs.pretrain")


def test_no_two_streams_share_a_tag_unless_their_ids_differ_in_number():
    """Two names with one tag are independent only because they take different numbers of ids (their
    SeedSequence entropies then differ); the pairs that share a tag are these (kept from before the names)."""
    by_tag: dict[int, list[str]] = {}
    for name, tag in seeds.STREAMS.items():
        by_tag.setdefault(tag, []).append(name)
    shared = {tag: sorted(names) for tag, names in by_tag.items() if len(names) > 1}
    assert shared == {11: ["mpcs.folds", "translation.epoch_order"]}  # no ids vs one (epoch)
