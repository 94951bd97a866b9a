"""Unit tests of percept.similarity: the metric modes on hand-made tensors, LPIPS equivalence with the reference
package (same random trunk weights, the package's real linear weights), scoring formulas, calibration and the
adaptation learning a planted ordering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from percept.similarity import (
    DPS,
    LinearWeights,
    channel_distances,
    distance_map,
    dps_distance,
    jnd_average_precision,
    load_linear_state,
    lpips_weights_file,
    two_afc,
    two_afc_scores,
    unit_normalize,
)
from percept.checkpoints import CheckpointMismatch
from percept.similarity.calibration import train_channel_weights
from percept.similarity.distortions import (
    ROLES,
    challenge_passes,
    distort,
    sample_params,
    strength_params,
)
from percept.similarity.experiments import (
    adapt_contexts,
    context_labels,
    sample_contexts,
)


def _feat(values):
    """(C, H, W) nested lists -> (1, C, H, W)."""
    return torch.tensor(values, dtype=torch.float32).unsqueeze(0)


# ------------------------------------------------------------------------------------------ metric modes

def test_unit_normalize_over_channels():
    x = _feat([[[3.0, 0.0]], [[4.0, 0.0]]])  # C=2, H=1, W=2
    y = unit_normalize(x)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([0.6, 0.8]))
    assert torch.all(y[0, :, 0, 1] == 0)  # the 1e-10 keeps a zero vector at zero instead of NaN


def test_modes_on_hand_made_features():
    # One channel, two positions: f0 = [1, 2], f1 = [2, 1] (a swap of positions).
    f0, f1 = _feat([[[1.0, 2.0]]]), _feat([[[2.0, 1.0]]])
    spatial = channel_distances(f0, f1, "spatial", normalize=False)
    assert torch.allclose(spatial, torch.tensor([[1.0]]))  # mean of (−1)², 1²
    assert channel_distances(f0, f1, "mean", normalize=False).item() == 0  # equal means
    assert channel_distances(f0, f1, "sort", normalize=False).item() == 0  # equal sorted values
    # combined modes: [spatial | modified] side by side (separate weights), or summed with combine="sum"
    assert torch.allclose(channel_distances(f0, f1, "spatial+mean", normalize=False), torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(channel_distances(f0, f1, "spatial+mean", normalize=False, combine="sum"), spatial)
    f2 = _feat([[[1.0, 4.0]]])
    assert channel_distances(f0, f2, "mean", normalize=False).item() == pytest.approx((1.5 - 2.5) ** 2)
    assert channel_distances(f0, f2, "sort", normalize=False).item() == pytest.approx((0 + 4) / 2)
    assert channel_distances(f0, f2, "spatial+sort", normalize=False).sum().item() == pytest.approx(2 + 2)


def test_normalisation_makes_scale_invariant_and_weights_apply_per_tap():
    torch.manual_seed(0)
    a = {"t1": torch.rand(2, 3, 4, 4), "t2": torch.rand(2, 5, 2, 2)}
    b = {"t1": torch.rand(2, 3, 4, 4), "t2": torch.rand(2, 5, 2, 2)}
    scaled = {k: 7.0 * v for k, v in b.items()}
    assert torch.allclose(dps_distance(a, b), dps_distance(a, scaled), atol=1e-6)
    assert not torch.allclose(dps_distance(a, b, normalize=False), dps_distance(a, scaled, normalize=False))
    w = {"t1": torch.tensor([1.0, 0.0, 2.0]), "t2": torch.zeros(1, 5, 1, 1)}
    total, parts = dps_distance(a, b, weights=w, per_tap=True)
    s1 = channel_distances(a["t1"], b["t1"])
    assert torch.allclose(parts["t1"], s1[:, 0] + 2 * s1[:, 2])
    assert torch.all(parts["t2"] == 0) and torch.allclose(total, parts["t1"])
    # A shared reference (batch 1) broadcasts against a batch.
    one = {k: v[:1] for k, v in a.items()}
    assert torch.allclose(dps_distance(one, b), dps_distance({k: v[[0, 0]] for k, v in a.items()}, b))
    with pytest.raises(ValueError, match="mode"):
        dps_distance(a, b, mode="median")
    with pytest.raises(KeyError):
        dps_distance(a, b, weights={"t1": torch.ones(3)})


def test_distance_map_averages_to_the_spatial_distance():
    torch.manual_seed(1)
    a = {"t": torch.rand(2, 4, 8, 8)}
    b = {"t": torch.rand(2, 4, 8, 8)}
    m = distance_map(a, b, (8, 8))
    assert m.shape == (2, 1, 8, 8)
    assert torch.allclose(m.mean((1, 2, 3)), dps_distance(a, b), atol=1e-6)


# ----------------------------------------------------------------------------------------- LPIPS equivalence

@pytest.mark.parametrize("net,backbone", [("alex", "alexnet"), ("squeeze", "squeezenet1_1"), ("vgg", "vgg16")])
def test_lpips_equivalence_with_the_reference_package(net, backbone):
    lpips = pytest.importorskip("lpips")
    ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()  # real v0.1 linear weights, random trunk
    ours = DPS.lpips(backbone, weights="random", seed=3)
    trunk = {"features." + k.split(".", 1)[1]: v for k, v in ref.net.state_dict().items()}
    result = ours.extractor.model.load_state_dict(trunk, strict=False)
    assert not result.unexpected_keys and all(k.startswith("classifier") for k in result.missing_keys)
    for k, lin in enumerate(ref.lins):  # the official weights were really loaded into ours
        assert torch.equal(ours.linear.conv(k).weight, lin.model[1].weight)
    gen = torch.Generator().manual_seed(0)
    x0, x1 = torch.rand(3, 3, 64, 64, generator=gen), torch.rand(3, 3, 64, 64, generator=gen)
    with torch.no_grad():
        want = ref(x0, x1, normalize=True).flatten()
    with torch.inference_mode():
        got = ours(x0, x1)
        shared = ours(x0[:1], x1)  # a shared reference
        d0, d1 = ours.two_afc_distances(x0, x1, x1.flip(0))
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-7), (got, want)
    assert torch.allclose(d0, want, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        want_shared = ref(x0[:1].expand(3, -1, -1, -1), x1, normalize=True).flatten()
    assert torch.allclose(shared, want_shared, rtol=1e-5, atol=1e-7)
    assert d1.shape == (3,)


def test_lpips_spatial_map_equivalence():
    lpips = pytest.importorskip("lpips")
    ref = lpips.LPIPS(net="alex", pnet_rand=True, spatial=True, verbose=False).eval()
    ours = DPS.lpips("alexnet", weights="random")
    ours.extractor.model.load_state_dict({"features." + k.split(".", 1)[1]: v
                                          for k, v in ref.net.state_dict().items()}, strict=False)
    x0, x1 = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want = ref(x0, x1, normalize=True)
        got = ours(x0, x1, spatial_map=True)
    assert got.shape == want.shape == (2, 1, 64, 64)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)


def test_linear_weights_load_strictly():
    lin = LinearWeights([64, 192, 384, 256, 256], ["a", "b", "c", "d", "e"])
    state = torch.load(lpips_weights_file("alexnet"), map_location="cpu", weights_only=True)
    load_linear_state(lin, state, "alex.pth")
    assert sum(lin.conv(k).weight.numel() for k in range(5)) == 1152
    renamed = {k.replace("model.1", "model.0"): v for k, v in state.items()}  # the known trap: wrong keys
    with pytest.raises(ValueError, match="do not match"):
        load_linear_state(lin, renamed, "renamed")
    negative = {k: -v for k, v in state.items()}
    with pytest.raises(ValueError, match="negative"):
        load_linear_state(lin, negative, "negative")
    with pytest.raises(ValueError, match="ships linear weights"):
        lpips_weights_file("resnet18")


# ------------------------------------------------------------------------------------------------ scoring

def test_two_afc_formula_on_hand_cases():
    # d0<d1 with j=0.2 -> 0.8; d1<d0 with j=0.2 -> 0.2; tie -> 0.5; d0<d1 with j=1 -> 0
    s = two_afc_scores([1, 3, 2, 1], [2, 1, 2, 5], [0.2, 0.2, 0.7, 1.0])
    assert np.allclose(s, [0.8, 0.2, 0.5, 0.0])
    assert two_afc([1, 3, 2, 1], [2, 1, 2, 5], [0.2, 0.2, 0.7, 1.0]) == pytest.approx(1.5 / 4)
    with pytest.raises(ValueError):
        two_afc([1], [2], [1.5])


def test_jnd_average_precision_on_hand_cases():
    # Sorted by distance: same = 1, 0, 1 -> precision 1, .5, .667 at recall .5, .5, 1 -> AP = .5*1 + .5*2/3
    assert jnd_average_precision([0.1, 0.2, 0.3], [1, 0, 1]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert jnd_average_precision([0.3, 0.2, 0.1], [0, 1, 1]) == pytest.approx(1.0)  # perfect ranking
    assert jnd_average_precision([0.1, 0.2], [0, 1]) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------- calibration / adaptation

def test_calibration_learns_which_channel_matters_and_resumes(tmp_path):
    gen = torch.Generator().manual_seed(0)
    n = 400
    s0, s1 = torch.rand(n, 4, generator=gen), torch.rand(n, 4, generator=gen)
    judge = (s1[:, 2] < s0[:, 2]).float()  # only channel 2 decides
    assert two_afc(s0.sum(1), s1.sum(1), judge) < 0.75
    w, _ = train_channel_weights(s0, s1, judge, epochs=20, decay_epochs=5, lr=0.05, batch_size=50, dropout=0.0)
    assert (w >= 0).all()
    assert two_afc(s0 @ w, s1 @ w, judge) > 0.9
    assert w[2] > w[[0, 1, 3]].max()
    ck = tmp_path / "ck.pt"
    _, h1 = train_channel_weights(s0, s1, judge, epochs=2, decay_epochs=0, lr=0.05, dropout=0.0, checkpoint=ck,
                                   fingerprint={"a": 1})
    _, h2 = train_channel_weights(s0, s1, judge, epochs=3, decay_epochs=0, lr=0.05, dropout=0.0, checkpoint=ck,
                                   fingerprint={"a": 1})
    assert [h["epoch"] for h in h2] == [1, 2, 3] and h2[:2] == h1  # resumed after epoch 2
    with pytest.raises(CheckpointMismatch, match="other settings"):
        train_channel_weights(s0, s1, judge, epochs=3, decay_epochs=0, dropout=0.0, checkpoint=ck, fingerprint={"a": 2})


def test_context_labels_and_contexts():
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    # context (2, 0, 1): distortion 2 least disruptive, then 0, then 1
    assert context_labels((2, 0, 1), pairs).tolist() == [0, 1, 1]
    ctx = sample_contexts(10, seed=0)
    assert len(set(ctx)) == 10 and all(sorted(c) == list(range(6)) for c in ctx)
    assert sample_contexts(10, seed=0) == ctx


def test_adaptation_learns_a_planted_ordering():
    """Channels 2k, 2k+1 respond to distortion k only, with a fixed bias: the uncalibrated metric orders the
    distortions by that bias whatever the context; per-channel scalars can follow any planted ordering."""
    gen = torch.Generator().manual_seed(0)
    n, c = 60, 12
    s = 0.05 * torch.rand(n, 6, c, generator=gen)
    bias = torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0, 0.5])  # the uncalibrated metric ranks distortion 5 closest
    for k in range(6):
        s[:, k, 2 * k:2 * k + 2] += bias[k] * (0.8 + 0.4 * torch.rand(n, 2, generator=gen))
    split = np.array([0] * 40 + [1] * 20)
    opts = {"contexts": 5, "epochs": 30, "decay_epochs": 10, "lr": 0.05, "beta1": 0.5, "batch_size": 64,
            "dropout": 0.0, "boost": 10.0, "val_fraction": 0.2}
    df = adapt_contexts(s, split, options=opts, seed=0)
    assert len(df) == 5 and df["improved"].all()
    assert df["adapted"].mean() > 0.8 and df["baseline"].mean() < 0.6
    assert ((df["adapted"] - df["baseline"]) > 0.15).sum() >= 4


# ------------------------------------------------------------------------------------------- image sets

def test_distortions_and_strengths():
    rng = np.random.default_rng(0)
    x = torch.rand(3, 32, 32)
    for kind in ("rotate", "translate", "darken", "colour", "blur", "zoom"):
        y = distort(x, kind, sample_params(kind, rng))
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
        assert not torch.allclose(y, x)
        weak = distort(x, kind, strength_params(kind, 0.0, 0.3))
        assert torch.allclose(weak, x, atol=1e-5), kind  # strength 0 is the identity
    assert distort(x, "darken", {"brightness": 0.5}).mean() == pytest.approx(0.5 * x.mean().item(), rel=1e-5)


def test_challenge_pass_rule():
    d = np.ones((1, len(ROLES)))
    d[0, ROLES.index("original")] = 0
    d[0, ROLES.index("rotate_22")] = 0.5   # closer than every reference -> pass
    d[0, ROLES.index("ref_noise")] = 0.7   # the nearest reference
    d[0, ROLES.index("hflip")] = 0.9       # farther than the noise reference -> fail
    d[0, ROLES.index("stain_clean")], d[0, ROLES.index("stain")] = 0.2, 0.1  # stain closer -> fail
    d[0, ROLES.index("rotate_45")] = 0.7   # a tie with the nearest reference passes (the authors' `not >`)
    res = {r["challenge"]: r["passed"] for r in challenge_passes(d)}
    assert res["rotate_22"] and not res["hflip"] and not res["stain"] and res["rotate_45"]
    d[0, ROLES.index("rotate_45")] = 0.7 + 1e-9
    assert not {r["challenge"]: r["passed"] for r in challenge_passes(d)}["rotate_45"]


def test_challenge_set_stain_block_follows_the_authors_layout(tmp_path):
    from percept.data.store import ImageDataset
    from percept.similarity.distortions import make_challenges, stain_anchors

    path = make_challenges(tmp_path / "c.h5", photos=["coffee"], crops_per_photo=1, size=32, seed=0)
    data = ImageDataset(path)
    x = data.batch(list(range(len(ROLES)))).numpy()
    orig, clean, stain = (x[ROLES.index(r)] for r in ("stain_original", "stain_clean", "stain"))
    changed_clean = (np.abs(orig - clean).sum(0) > 0)
    changed_stain = (np.abs(orig - stain).sum(0) > 0)
    # clean: the field is kept, a 16x16 content patch replaced; stain: the content kept, the field whitened
    assert changed_clean.sum() <= 16 * 16 and changed_stain.sum() >= 32 * 32 - 16 * 16
    assert not (changed_clean & changed_stain).any()
    assert (stain[:, ~changed_stain] == orig[:, ~changed_stain]).all() and (stain[:, changed_stain] == 1).all()
    assert data.attrs["anchors"] == stain_anchors("authors")
    assert stain_anchors("authors")[ROLES.index("stain")] == ROLES.index("stain_original")
    assert stain_anchors("disc")[ROLES.index("stain")] == 0


def test_adaptation_scores_a_retained_two_afc_set_per_subsplit():
    """BAPPS is scored per subsplit (the authors test each val subsplit separately) and the headline is their
    unweighted mean, not the pooled fraction (which weights large subsplits more)."""
    gen = torch.Generator().manual_seed(1)
    s = torch.rand(30, 6, 4, generator=gen)
    split = np.array([0] * 20 + [1] * 10)
    r0 = torch.tensor([[1.0, 0, 0, 0]] * 9 + [[1.0, 0, 0, 0]])
    r1 = torch.tensor([[2.0, 0, 0, 0]] * 9 + [[0.5, 0, 0, 0]])
    judge = torch.zeros(10)  # p0 closer: right for the first 9, wrong for the last
    cat = np.array([0] * 9 + [1])
    opts = {"contexts": 1, "epochs": 1, "decay_epochs": 0, "lr": 1e-3, "beta1": 0.5, "batch_size": 64,
            "dropout": 0.0, "boost": 0.0, "val_fraction": 0.0}
    df = adapt_contexts(s, split, options=opts, seed=0, retained={"bapps": (r0, r1, judge, cat, ["big", "small"])})
    row = df.iloc[0]
    assert row["bapps[big]_baseline"] == 1.0 and row["bapps[small]_baseline"] == 0.0
    assert row["bapps_baseline"] == pytest.approx(0.5)  # pooled would be 0.9


def test_adaptation_fresh_draws_a_random_pair_per_image_per_epoch():
    """draws: fresh — each epoch one random ordered pair per training image at draw (epoch mod K), labelled as the
    authors' AugmentRankingDataset labels it (judge 1 when p1's distortion ranks earlier in the context)."""
    gen = torch.Generator().manual_seed(0)
    n, k, c = 60, 4, 12
    s = 0.05 * torch.rand(n, k, 6, c, generator=gen)
    bias = torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0, 0.5])
    for j in range(6):
        s[:, :, j, 2 * j:2 * j + 2] += bias[j] * (0.8 + 0.4 * torch.rand(n, k, 2, generator=gen))
    split = np.array([0] * 40 + [1] * 20)
    opts = {"contexts": 3, "epochs": 30, "decay_epochs": 10, "lr": 0.05, "beta1": 0.5, "batch_size": 64,
            "dropout": 0.0, "boost": 10.0, "val_fraction": 0.2, "draws": "fresh"}
    seen = []
    import percept.similarity.calibration as cal

    real = cal.train_channel_weights

    def spy(*args, resample=None, **kw):
        def wrapped(epoch, g):
            out = resample(epoch, g)
            seen.append((epoch, out))
            return out
        return real(*args, resample=wrapped, **kw)

    import percept.similarity.experiments as ex
    ex.train_channel_weights, saved = spy, ex.train_channel_weights
    try:
        df = adapt_contexts(s, split, options=opts, seed=0)
    finally:
        ex.train_channel_weights = saved
    assert df["adapted"].mean() > 0.8 and df["baseline"].mean() < 0.6
    (e0, (a0, b0, l0)), (e1, (a1, b1, l1)) = seen[0], seen[1]
    assert (e0, e1) == (0, 1) and len(l0) == 32  # one pair per fitting image (40 train, 20 % validation)
    assert not torch.equal(a0, a1)  # other pairs / draws next epoch
    # each row is one (draw, distortion) vector of s; epoch e reads draw e mod 4
    fit_rows = s[:, 1].reshape(-1, c)
    assert all(any(torch.equal(r, q) for q in fit_rows) for r in a1[:5])
    # fresh pairs: an image's pair of distortions changes between epochs (fixed pairs would repeat every one)

    def where(row, k):
        return next((i, j) for i in range(n) for j in range(6) if torch.equal(row, s[i, k, j]))

    pairs0 = {where(r, 0)[0]: (where(r, 0)[1], where(q, 0)[1]) for r, q in zip(a0, b0)}
    pairs1 = {where(r, 1)[0]: (where(r, 1)[1], where(q, 1)[1]) for r, q in zip(a1, b1)}
    assert set(pairs0) == set(pairs1) and sum(pairs0[i] == pairs1[i] for i in pairs0) < len(pairs0) / 2
    # the label follows the context ranking: the authors' judge = 0 if choices[0] < choices[1] (in rank order)
    ctx = sample_contexts(3, seed=0)[0]
    rank = {d: i for i, d in enumerate(ctx)}
    for r0, r1, lab in zip(a0[:10], b0[:10], l0[:10]):
        d0 = next(j for j in range(6) if any(torch.equal(r0, s[i, 0, j]) for i in range(n)))
        d1 = next(j for j in range(6) if any(torch.equal(r1, s[i, 0, j]) for i in range(n)))
        assert lab == (0.0 if rank[d0] < rank[d1] else 1.0)



# ----------------------------------------------------------------- adaptation variants: the backbone in the loop

def _toy_triplets(n=64, seed=0):
    """ref, p0, p1 (8x8) where p1 is judged closer (judge 1) exactly when its distortion is in red, not blue."""
    gen = torch.Generator().manual_seed(seed)
    ref = torch.rand(n, 3, 8, 8, generator=gen)
    red, blue = ref.clone(), ref.clone()
    red[:, 0] += 0.5 * torch.rand(n, 8, 8, generator=gen)
    blue[:, 2] += 0.5 * torch.rand(n, 8, 8, generator=gen)
    swap = torch.rand(n, generator=gen) < 0.5
    p0 = torch.where(swap[:, None, None, None], blue, red)
    p1 = torch.where(swap[:, None, None, None], red, blue)
    return ref, p0, p1, swap.float()


def _train_toy_net(trainable: bool, seed: int = 0):
    from percept.similarity.metric import channel_maps

    ref, p0, p1, judge = _toy_triplets()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Conv2d(3, 4, 1, bias=False)  # a one-layer "backbone" mixing the colour channels
        start = net.weight.detach().clone()

        def maps(b):
            fr = net(ref[b])
            return [channel_maps(fr, net(p0[b]), "spatial", False)], [channel_maps(fr, net(p1[b]), "spatial", False)]

        w, hist = train_channel_weights(maps, None, judge, groups=[4], epochs=15, decay_epochs=5, lr=0.05,
                                        batch_size=16, dropout=0.5, boost=10.0, seed=seed,
                                        params=list(net.parameters()) if trainable else (), param_lr=0.02)
    return w, hist, start, net.weight.detach().clone()


def test_backbone_in_the_loop_lowers_the_loss_trains_the_network_and_is_seeded():
    """tune / scratch: the scalars, G and the network's own weights in one Adam (the authors' Learner), maps
    computed per batch with gradients and dropped element-wise; the frozen network (lin) stays as it was."""
    w, hist, start, end = _train_toy_net(trainable=True)
    assert hist[-1]["loss"] < 0.8 * hist[0]["loss"]
    assert hist[-1]["train_2afc"] > 0.85 and (w >= 0).all()
    assert not torch.allclose(start, end)  # the network itself was trained
    w2, hist2, _, end2 = _train_toy_net(trainable=True)
    assert torch.equal(w, w2) and torch.equal(end, end2) and hist == hist2  # seeded: identical reruns
    w3, _, _, _ = _train_toy_net(trainable=True, seed=1)
    assert not torch.equal(w, w3)
    _, hist_lin, start_lin, end_lin = _train_toy_net(trainable=False)
    assert torch.equal(start_lin, end_lin)  # lin: the network is not trained
    assert hist_lin[-1]["loss"] < hist_lin[0]["loss"]


@pytest.fixture(scope="module")
def toy_distortion_set(tmp_path_factory):
    from percept.data.embedded import make_photos
    from percept.similarity.distortions import make_distortion_set

    root = tmp_path_factory.mktemp("adapt")
    make_photos(str(root / "photos.h5"), crop_size=32, crops_per_photo=3, train_photos=["astronaut", "chelsea",
                "coffee"], test_photos=["rocket"], crop_scale=[0.3, 0.8], seed=0)
    return make_distortion_set(root / "photos.h5", root / "distortions.h5", seed=0, draws=3)


def _adapt_toy(path, **over):
    from percept.similarity.experiments import adapt_backbone

    opts = {"contexts": 2, "epochs": 2, "decay_epochs": 1, "lr": 0.05, "beta1": 0.5, "batch_size": 4,
            "dropout": 0.5, "boost": 10.0, "val_fraction": 0.2, "draws": "fresh", "dropout_on": "elements",
            "variants": ["lin", "tune", "scratch"], "network_contexts": 1, "network_lr": 1e-3, **over}
    entry = {"backbone": "efficientnet_lite0", "weights": "random", "taps": ["_stem_act", "_blocks.1"]}
    return adapt_backbone(None, str(path), entry, two_afc_path=None, jnd_path=None, options=opts, seed=0,
                          device="cpu", batch_size=16)


def test_adaptation_variants_tune_and_scratch_give_seeded_rows(toy_distortion_set):
    import percept.similarity.calibration as cal

    calls = []
    real = cal._channel_means

    def spy(x, rows, dropout, elements):
        calls.append((isinstance(x, torch.Tensor), elements, dropout))
        return real(x, rows, dropout, elements)

    cal._channel_means = spy
    try:
        df = _adapt_toy(toy_distortion_set)
    finally:
        cal._channel_means = real
    assert df["variant"].value_counts().to_dict() == {"lin": 2, "tune": 1, "scratch": 1}
    assert set(df["mode"]) == {"spatial"}
    for col in ("baseline", "adapted", "val_adapted", "other_contexts_adapted", "train_loss_first",
                "train_loss_last"):
        assert df[col].notna().all(), col
    # every variant scores against the same uncalibrated baseline of the frozen network
    first = df[df["context_index"] == 0]
    assert first["baseline"].nunique() == 1
    # three trainings: frozen (eval-mode) network, the entry's network trained, another random one trained
    assert first["train_loss_last"].nunique() == 3
    # dropout: single elements of per-tap maps (the calibration's _channel_means), never whole channels
    assert calls and all(not is_means and elements and p == 0.5 for is_means, elements, p in calls)
    torch.manual_seed(12345)  # whatever the caller's global generator holds: dropout is seeded from the config's seed
    again = _adapt_toy(toy_distortion_set)
    pd.testing.assert_frame_equal(df, again)  # seeded


def test_adaptation_channel_dropout_is_the_cached_option(toy_distortion_set):
    """dropout_on: channels (the earlier scheme) trains lin on precomputed comparisons; elements differs."""
    chan = _adapt_toy(toy_distortion_set, variants=["lin"], dropout_on="channels")
    elem = _adapt_toy(toy_distortion_set, variants=["lin"])
    assert len(chan) == len(elem) == 2
    assert np.abs(chan["baseline"].values - elem["baseline"].values).max() <= 0.05  # one frozen network
    assert not np.allclose(chan["train_loss_last"], elem["train_loss_last"])
    with pytest.raises(ValueError, match="draws: fresh"):
        _adapt_toy(toy_distortion_set, draws="fixed")
    # a fitting set too large to share its features runs the frozen network on every batch of every context
    import percept.similarity.experiments as ex

    saved, ex.LOCKSTEP_BYTES = ex.LOCKSTEP_BYTES, 0
    try:
        seq = _adapt_toy(toy_distortion_set, variants=["lin"])
    finally:
        ex.LOCKSTEP_BYTES = saved
    assert (seq["baseline"].values == elem["baseline"].values).all() and seq["train_loss_last"].notna().all()

def test_challenge_folder_in_the_authors_layout(tmp_path):
    """ref/ + one folder per group (X.png, X_*.png; color_stain/ with X_ref, X_stain), as the flaws paper's
    images/; pairs matched by name as its analysis.py does, ties pass, the stain by X_ref strictly closer."""
    from PIL import Image

    from percept.similarity.distortions import folder_passes, read_challenge_folder

    rng = np.random.default_rng(0)

    def save(rel, arr):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr.astype(np.uint8)).save(p)

    for r in ("black", "white", "noise"):
        save(f"ref/ref_{r}.png", rng.integers(0, 256, (8, 8, 3)))
    save("rotate/dog.png", rng.integers(0, 256, (8, 8, 3)))
    save("rotate/dog_22.png", rng.integers(0, 256, (8, 8, 3)))
    save("rotate/dog_45.png", rng.integers(0, 256, (8, 8, 3)))
    save("rotate/cat.png", rng.integers(0, 256, (8, 8, 3)))  # no transformed image: not a challenge
    save("color_stain/dog.png", rng.integers(0, 256, (8, 8, 3)))
    save("color_stain/dog_ref.png", rng.integers(0, 256, (8, 8, 3)))
    save("color_stain/dog_stain.png", rng.integers(0, 256, (8, 8, 3)))
    f = read_challenge_folder(tmp_path)
    assert len(f["refs"]) == 3 and [p[3] for p in f["pairs"]] == ["dog_22", "dog_45"] and len(f["stains"]) == 1
    assert f["images"].shape == (3 + 3 + 3, 8, 8, 3)
    res = folder_passes(np.array([0.5, 0.9]), np.array([[0.5, 1, 1], [0.8, 1, 1]]), np.array([[0.2, 0.3]]), f)
    assert [r["passed"] for r in res] == [True, False, True]  # a tie passes; 0.9 > 0.8 fails; X_ref closer passes
    assert read_challenge_folder(tmp_path, size=16)["images"].shape[1:3] == (16, 16)
    with pytest.raises(FileNotFoundError, match="ref/"):
        read_challenge_folder(tmp_path / "rotate")


def test_fig_dps_adaptation_shows_the_variants(tmp_path, monkeypatch):
    from percept import plotting
    from percept.figures.similarity import fig_dps_adaptation

    rows = [{"backbone": "efficientnet_lite0", "context": f"c{ci}", "context_index": ci, "baseline": 0.5,
             "adapted": 0.6, "other_contexts_baseline": 0.5, "other_contexts_adapted": 0.5, "jnd_baseline": 0.4,
             "jnd_adapted": 0.45, "improved": True, "mode": "spatial", "variant": v}
            for v, n in (("lin", 3), ("tune", 1), ("scratch", 1)) for ci in range(n)]
    seen = {}
    real = plotting.save

    def spy(fig, *out):
        seen["labels"] = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        return real(fig, *out)

    monkeypatch.setattr(plotting, "save", spy)
    fig_dps_adaptation({"tables": [pd.DataFrame(rows)]}, [str(tmp_path / "f.png")])
    assert (tmp_path / "f.png").stat().st_size > 0
    for v in ("lin", "tune", "scratch"):
        assert sum(label.startswith(f"efficientnet_lite0 {v}") for label in seen["labels"]) == 3, v
