"""TapExtractor (early-stopping forward pass), cache_features / FeatureCache and resolve_device."""

from __future__ import annotations

import errno

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from percept import backbones, features
from percept.data.embedded import make_shapes
from percept.data.store import ImageDataset
from percept.features import FeatureCache, TapExtractor, cache_features, prepare_input, resolve_device
from percept.h5io import CacheError

LITE = "efficientnet_lite0"
PAPER = ["_stem_act", "_blocks.0", "_blocks.7", "_blocks.15"]
N_TRAIN, N_TEST, SIZE = 6, 4, 48


@pytest.fixture(scope="module")
def shapes_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "shapes.h5"
    make_shapes(str(path), n_train=N_TRAIN, n_test=N_TEST, image_size=SIZE, classes=["circle", "square", "star"],
                objects_per_image=[1, 2], object_size=[0.3, 0.55], backgrounds=["brick", "coffee"], seed=0,
                progress=False)
    return path


@pytest.fixture(scope="module")
def cached(shapes_path, tmp_path_factory):
    """The paper taps of ImageNet EfficientNet-Lite0 over all 10 images, in batches of 4 (4 + 4 + 2)."""
    out = tmp_path_factory.mktemp("features") / "lite0.h5"
    stats = cache_features(shapes_path, out, LITE, "paper", batch_size=4, device="cpu", progress=False)
    return out, stats


def _direct(shapes_path, positions, taps=PAPER, weights="imagenet", resize=None):
    spec = backbones.get(LITE)
    ext = TapExtractor(spec.build(weights), taps)
    with torch.inference_mode():
        return ext(prepare_input(ImageDataset(shapes_path).batch(positions), spec, resize))


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# -- TapExtractor --------------------------------------------------------------------------------------------


def test_tap_outputs_equal_plain_forward_hooks():
    spec = backbones.get(LITE)
    x = spec.normalize(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    taps = ["_blocks.7", "_stem_act", "_blocks.3._bn2", "_head_act"]  # any order, any module path

    reference = spec.build("random", seed=0)
    captured: dict[str, torch.Tensor] = {}
    modules = dict(reference.named_modules())
    handles = [modules[t].register_forward_hook(lambda m, i, o, t=t: captured.__setitem__(t, o.clone()))
               for t in taps]
    with torch.no_grad():
        logits = reference(x)
    for h in handles:
        h.remove()
    assert logits.shape == (2, 1000)

    ext = TapExtractor(spec.build("random", seed=0), taps)
    with torch.no_grad():
        out = ext(x)
    assert list(out) == taps  # in the order asked for
    for t in taps:
        assert out[t].shape == captured[t].shape
        assert torch.equal(out[t], captured[t]), t
    assert out["_stem_act"].shape == (2, 32, 32, 32)
    assert out["_blocks.7"].shape == (2, 80, 4, 4)  # 64 / 16
    assert out["_head_act"].shape == (2, 1280, 2, 2)


def test_forward_stops_after_the_deepest_tap():
    spec = backbones.get(LITE)
    model = spec.build("random", seed=0)
    called: list[str] = []
    for name in ("_blocks.3", "_blocks.4", "_blocks.15", "_conv_head", "_fc"):
        dict(model.named_modules())[name].register_forward_pre_hook(lambda m, i, name=name: called.append(name))
    x = torch.zeros(1, 3, 64, 64)

    ext = TapExtractor(model, ["_stem_act", "_blocks.3"])
    with torch.no_grad():
        out = ext(x)
    assert set(out) == {"_stem_act", "_blocks.3"}
    assert called == ["_blocks.3"]  # nothing after the deepest tap ran: not the next block, not the head

    ext.remove()
    called.clear()
    full = TapExtractor(model, ["_stem_act", "_blocks.3"], stop_early=False)
    with torch.no_grad():
        out_full = full(x)
    assert called == ["_blocks.3", "_blocks.4", "_blocks.15", "_conv_head", "_fc"]
    assert torch.equal(out_full["_blocks.3"], out["_blocks.3"])


def test_remove_restores_the_plain_network():
    spec = backbones.get(LITE)
    model = spec.build("random", seed=0)
    ext = TapExtractor(model, ["_stem_act"])
    ext.remove()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 1000)  # the stopping hook is gone


def test_unknown_tap_and_tap_outside_the_forward_pass():
    spec = backbones.get(LITE)
    with pytest.raises(ValueError, match=r"taps \['_blocks.99'\] are not modules of EfficientNetLite"):
        TapExtractor(spec.build("random"), ["_stem_act", "_blocks.99"])

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Identity()
            self.aux = nn.Identity()  # like an auxiliary head that eval mode skips

        def forward(self, x):
            return self.used(x)

    with pytest.raises(RuntimeError, match=r"taps \['aux'\] produced no output"):
        TapExtractor(Branchy(), ["used", "aux"])(torch.zeros(1))


def test_prepare_input():
    spec = backbones.get("alexnet")
    x = torch.full((2, 3, 40, 40), 0.5)
    with pytest.raises(ValueError, match=r"alexnet needs inputs of at least 63x63, got \(40, 40\); set a larger resize"):
        prepare_input(x, spec, None)
    y = prepare_input(x, spec, 64)
    assert y.shape == (2, 3, 64, 64)
    torch.testing.assert_close(y[:, 0], torch.full((2, 64, 64), (0.5 - 0.485) / 0.229))


# -- cache_features / FeatureCache -------------------------------------------------------------------------


def test_cache_layout_and_shapes(cached):
    path, stats = cached
    assert stats["images"] == N_TRAIN + N_TEST and stats["device"] == "cpu" and stats["images_per_second"] > 0
    cache = FeatureCache(path)
    assert cache.taps == PAPER and len(cache) == 10
    np.testing.assert_array_equal(cache.rows, np.arange(10))
    want = {"_stem_act": [32, 24, 24], "_blocks.0": [16, 24, 24], "_blocks.7": [80, 3, 3], "_blocks.15": [320, 2, 2]}
    assert cache.meta["shapes"] == want
    with h5py.File(path, "r") as f:
        assert sorted(f["taps"].keys()) == sorted(PAPER)  # one dataset per tap
        for tap, shape in want.items():
            assert f[f"taps/{tap}"].shape == (10, *shape) and f[f"taps/{tap}"].dtype == np.float32
            assert f[f"taps/{tap}"].chunks[0] == 4  # one chunk per batch


def test_cache_metadata(cached, shapes_path):
    path, _ = cached
    meta = FeatureCache(path).meta
    spec = backbones.get(LITE)
    ds = ImageDataset(shapes_path)
    assert meta["backbone"] == LITE
    assert meta["weights"] == spec.weights_name and meta["weights_seed"] is None
    assert meta["taps"] == PAPER
    assert meta["dataset"] == "shapes" and meta["dataset_fingerprint"] == ds.fingerprint
    assert meta["preprocessing"] == spec.preprocessing(None)
    assert meta["split"] is None and meta["dtype"] == "float32" and meta["compression"] == "blosc-lz4"
    assert meta["fingerprint"].startswith(ds.fingerprint + ":efficientnet_lite0:imagenet:")
    assert meta["versions"]["torch"] == torch.__version__ and "percept" in meta["versions"]


def test_cached_values_equal_direct_extraction(cached, shapes_path):
    path, _ = cached
    cache = FeatureCache(path)
    picks = [9, 0, 5]  # from the last (partial) batch, the first and the middle one, out of order
    direct = _direct(shapes_path, picks)
    for tap in PAPER:
        got = cache.load(tap, picks)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, direct[tap], rtol=1e-5, atol=1e-5)
        assert float(got.abs().max()) > 0.1  # real ImageNet features, not zeros
    full = cache.load("_blocks.7")
    assert full.shape == (10, 80, 3, 3)
    torch.testing.assert_close(cache.load("_blocks.7", slice(4, 8)), full[4:8])
    torch.testing.assert_close(cache.load("_blocks.7", [3, 1]), full[[3, 1]])
    with pytest.raises(KeyError, match=r"no tap '_head_act'; cached taps: \['_stem_act'"):
        cache.load("_head_act")


def test_feature_cache_expect(cached, shapes_path):
    path, _ = cached
    fp = ImageDataset(shapes_path).fingerprint
    assert len(FeatureCache(path, expect={"backbone": LITE, "taps": PAPER, "dataset_fingerprint": fp})) == 10
    with pytest.raises(CacheError, match="recorded dataset_fingerprint=.* but 'stale' was expected"):
        FeatureCache(path, expect={"dataset_fingerprint": "stale"})
    with pytest.raises(CacheError, match="recorded taps="):
        FeatureCache(path, expect={"taps": PAPER[:2]})
    with pytest.raises(CacheError, match="holds 'features', expected 'dataset'"):
        ImageDataset(path)


def test_damaged_tap_is_detected(cached, tmp_path):
    src, _ = cached
    path = tmp_path / "damaged.h5"
    path.write_bytes(src.read_bytes())
    with h5py.File(path, "a") as f:
        data = f["taps/_blocks.0"][:5]
        del f["taps/_blocks.0"]
        f["taps/_blocks.0"] = data
    with pytest.raises(CacheError, match="tap _blocks.0 has 5 rows, expected 10; the file is damaged"):
        FeatureCache(path)
    with h5py.File(path, "a") as f:
        f["taps/_blocks.7"][0, 0, 0, 0] = np.nan
        del f["taps/_blocks.0"]
        f["taps/_blocks.0"] = np.zeros((10, 16, 24, 24), np.float32)
    with pytest.raises(CacheError, match="tap _blocks.7 holds non-finite values"):
        FeatureCache(path).load("_blocks.7")


def test_split_resize_and_random_weights(shapes_path, tmp_path):
    out = tmp_path / "test_split.h5"
    cache_features(shapes_path, out, LITE, ["_stem_act", "_blocks.3"], weights="random", seed=3, split="test",
                   resize=64, batch_size=3, device="cpu", progress=False)
    cache = FeatureCache(out)
    np.testing.assert_array_equal(cache.rows, np.arange(N_TRAIN, N_TRAIN + N_TEST))
    assert cache.meta["split"] == "test" and cache.meta["weights"] == "random" and cache.meta["weights_seed"] == 3
    assert cache.meta["preprocessing"]["resize"] == 64
    assert cache.meta["shapes"]["_stem_act"] == [32, 32, 32]
    spec = backbones.get(LITE)
    ext = TapExtractor(spec.build("random", seed=3), ["_blocks.3"])
    x = ImageDataset(shapes_path, split="test").batch([1, 3])
    with torch.inference_mode():
        want = ext(prepare_input(x, spec, 64))["_blocks.3"]
    torch.testing.assert_close(cache.load("_blocks.3", [1, 3]), want, rtol=1e-5, atol=1e-7)


def test_float16_option(cached, shapes_path, tmp_path):
    ref = FeatureCache(cached[0])
    out = tmp_path / "half.h5"
    cache_features(shapes_path, out, LITE, ["_blocks.0", "_blocks.7"], dtype="float16", batch_size=4,
                   device="cpu", progress=False)
    cache = FeatureCache(out)
    assert cache.meta["dtype"] == "float16"
    with h5py.File(out, "r") as f:
        assert f["taps/_blocks.7"].dtype == np.float16
    got = cache.load("_blocks.7")
    assert got.dtype == torch.float32  # read back as float32
    torch.testing.assert_close(got, ref.load("_blocks.7"), rtol=2e-3, atol=2e-3)


def test_amp_is_a_no_op_on_the_cpu(cached, shapes_path, tmp_path):
    """amp asks for bfloat16 autocast on CUDA only: on the CPU the cache is exact and records no amp."""
    out = tmp_path / "amp.h5"
    stats = cache_features(shapes_path, out, LITE, "paper", batch_size=4, device="cpu", progress=False, amp=True)
    assert stats["amp"] is False
    cache, ref = FeatureCache(out), FeatureCache(cached[0])
    assert "amp" not in cache.meta and cache.meta["fingerprint"] == ref.meta["fingerprint"]
    for tap in ref.taps:
        torch.testing.assert_close(cache.load(tap), ref.load(tap), rtol=0, atol=0)


def test_cuda_helpers_leave_the_cpu_path_alone():
    model = nn.Conv2d(3, 4, 3)
    assert features.to_device(model, torch.device("cpu")).weight.is_contiguous()
    with features.autocast(torch.device("cpu"), True):
        assert not torch.is_autocast_enabled("cpu")
        y = model(torch.ones(1, 3, 8, 8))
    assert y.dtype == torch.float32


@pytest.mark.parametrize("compression, filter_name", [("none", None), ("lzf", "lzf"), ("gzip", "gzip"),
                                                      ("blosc-lz4", "32001")])
def test_compression_options_are_readable(cached, shapes_path, tmp_path, compression, filter_name):
    ref = FeatureCache(cached[0])
    out = tmp_path / f"{compression}.h5"
    cache_features(shapes_path, out, LITE, ["_blocks.0"], batch_size=4, device="cpu", progress=False,
                   compression=compression)
    cache = FeatureCache(out)
    assert cache.meta["compression"] == compression
    with h5py.File(out, "r") as f:
        ds = f["taps/_blocks.0"]
        if filter_name is None:
            assert ds.compression is None and not ds._filters
        else:
            assert filter_name in ds._filters
    torch.testing.assert_close(cache.load("_blocks.0"), ref.load("_blocks.0"), rtol=1e-6, atol=1e-6)


def test_unknown_compression_writes_nothing(shapes_path, tmp_path):
    with pytest.raises(ValueError, match=r"compression must be one of \['blosc-lz4', 'gzip', 'lzf', 'none'\]"):
        cache_features(shapes_path, tmp_path / "x.h5", LITE, "paper", device="cpu", progress=False,
                       compression="zstd")
    assert list(tmp_path.iterdir()) == []


def test_error_in_forward_leaves_no_file(shapes_path, tmp_path, monkeypatch):
    real = features.prepare_input
    calls = []

    def flaky(x, spec, resize):
        calls.append(len(x))
        if len(calls) == 3:  # the probe, batch 1, then batch 2 fails
            raise RuntimeError("forward exploded")
        return real(x, spec, resize)

    monkeypatch.setattr(features, "prepare_input", flaky)
    out = tmp_path / "out" / "f.h5"
    with pytest.raises(RuntimeError, match="forward exploded"):
        cache_features(shapes_path, out, LITE, ["_blocks.0"], batch_size=4, device="cpu", progress=False)
    assert calls == [1, 4, 4]
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_error_in_forward_keeps_previous_cache(cached, shapes_path, tmp_path, monkeypatch):
    out = tmp_path / "f.h5"
    out.write_bytes(cached[0].read_bytes())
    before = out.read_bytes()

    def nan_input(x, spec, resize):
        return torch.full_like(x, float("nan"))

    with monkeypatch.context() as mp:
        mp.setattr(features, "prepare_input", nan_input)
        with pytest.raises(FloatingPointError, match="non-finite features at tap _stem_act for images 0..3"):
            cache_features(shapes_path, out, LITE, "paper", batch_size=4, device="cpu", progress=False)
    assert out.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_disk_full_in_the_writer_thread_leaves_no_file(shapes_path, tmp_path, monkeypatch):
    real_setitem = h5py.Dataset.__setitem__
    writes = []

    def flaky(self, key, value):
        writes.append(self.name)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", flaky)
    out = tmp_path / "f.h5"
    with pytest.raises(OSError, match="No space left on device"):
        cache_features(shapes_path, out, LITE, ["_blocks.0"], batch_size=2, device="cpu", progress=False)
    assert writes[:2] == ["/taps/_blocks.0", "/taps/_blocks.0"]
    assert len(writes) == 2  # the writer stopped at the error
    assert list(tmp_path.iterdir()) == []


# -- devices -----------------------------------------------------------------------------------------------


def test_resolve_device_here():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    assert resolve_device("cpu") == torch.device("cpu")


def test_resolve_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    for dev in ("cuda", "cuda:1"):
        with pytest.raises(RuntimeError, match=f"device '{dev}' requested but CUDA is not available; use device: auto"):
            resolve_device(dev)
    with pytest.raises(RuntimeError):
        resolve_device("gpu")  # not a torch device at all
