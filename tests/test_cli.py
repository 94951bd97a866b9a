"""The ``percept`` command line, called in-process through ``main([...])``."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from percept import backbones
from percept.cli import main
from percept.data.store import write_image_dataset

ROOT = Path(__file__).resolve().parents[1]
CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_backbones_lists_the_registry(capsys):
    code, out, err = run(capsys, "backbones")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert re.match(r"backbone\s+input\s+offline weights\s+ImageNet acc@1\s+taps \(paper\)\s+LPIPS taps$", lines[0])
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(backbones.NAMES) and len(lines) == len(backbones.NAMES) + 1
    lite0 = rows["efficientnet_lite0"].split()
    assert lite0[1:4] == ["224", "yes", "75.1"]
    assert "_stem_act, _blocks.0, _blocks.7, _blocks.15" in rows["efficientnet_lite0"]
    assert rows["efficientnet_lite2"].split()[1] == "260"
    assert "features.1, features.4, features.7, features.9, features.11" in rows["alexnet"]  # LPIPS column
    assert rows["resnet18"].rstrip().endswith("-")  # no LPIPS taps
    # the offline column tells the truth about each backbone's weights file
    for name, line in rows.items():
        want = "yes" if backbones.get(name).weights_offline() else "no"
        assert line.split()[2] == want, name


def test_backbones_verbose_shows_weights_files(capsys):
    code, out, _ = run(capsys, "backbones", "-v")
    assert code == 0
    spec = backbones.get("efficientnet_lite0")
    assert f"efficientnet_lite0: weights {spec.weights_name}" in out
    assert f"  file: {spec.weights_file()}" in out
    assert "  all taps: _stem_act, _blocks.0, _blocks.2" in out


def test_classify_a_shipped_photo(capsys):
    code, out, err = run(capsys, "classify", "chelsea", "--backbone", "efficientnet_lite0")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "chelsea — efficientnet_lite0 (imagenet weights)"
    ranked = [re.match(r"^(\d)\. (.+?)\s+(\d+\.\d\d)%$", line) for line in lines[1:]]
    assert len(ranked) == 5 and all(ranked)
    assert [int(m.group(1)) for m in ranked] == [1, 2, 3, 4, 5]
    probs = [float(m.group(3)) for m in ranked]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 100.01
    labels = [m.group(2).strip() for m in ranked]
    assert labels[0] in CATS


def test_classify_top_k_and_random_weights(capsys):
    code, out, _ = run(capsys, "classify", "coffee", "--weights", "random", "--top", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "coffee — efficientnet_lite0 (random weights)" and len(lines) == 3
    assert all(float(line.rsplit(None, 1)[-1].rstrip("%")) < 5.0 for line in lines[1:])


def test_classify_missing_file(capsys):
    code, out, err = run(capsys, "classify", "/nonexistent.png")
    assert code == 2 and out == ""
    assert err.startswith("error: cannot read image '/nonexistent.png'")


def test_classify_unknown_backbone(capsys):
    code, out, err = run(capsys, "classify", "chelsea", "--backbone", "resnet9000")
    assert code == 2 and out == ""
    assert "unknown backbone 'resnet9000'" in err and "efficientnet_lite0" in err


def test_classify_weights_unavailable(capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "_hub_dir", torch.hub._hub_dir)  # restored afterwards
    torch.hub.set_dir(str(tmp_path / "hub"))
    code, out, err = run(capsys, "classify", "chelsea", "--backbone", "alexnet")
    assert code == 2 and out == ""
    assert "error: ImageNet weights for alexnet" in err and str(tmp_path / "hub" / "checkpoints") in err


def test_validate_good_config(capsys):
    path = ROOT / "config.yaml"
    code, out, err = run(capsys, "validate", str(path))
    assert code == 0 and err == ""
    assert out.strip() == f"{path}: valid"


def test_validate_bad_config(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config.yaml").read_text().replace("device: auto", "device: gpu")
                   .replace("objects_per_image: [1, 2]", "objects_per_image: [1, 2]\n    colour: red"))
    code, out, err = run(capsys, "validate", str(bad))
    assert code == 2 and out == ""
    assert f"invalid configuration ({bad})" in err
    assert "device: 'gpu' does not match" in err
    assert "datasets.shapes: unknown key(s) 'colour'" in err


@pytest.fixture
def dataset_file(tmp_path):
    path = tmp_path / "tiny.h5"
    images = np.zeros((5, 8, 8, 3), np.uint8)
    write_image_dataset(path, name="tiny", images=images, split=[0, 0, 0, 1, 1], split_names=["train", "test"],
                        fingerprint="f00d", source="cli test", labels=[0, 1, 0, 1, 1], class_names=["a", "b"],
                        label_kind="single", meta={"photo": np.arange(5)})
    return path


def test_inspect_prints_attrs_and_arrays(capsys, dataset_file):
    code, out, err = run(capsys, "inspect", str(dataset_file))
    assert code == 0 and err == ""
    lines = out.splitlines()
    for line in ("name: tiny", "fingerprint: f00d", "kind: dataset", "complete: True", "label_kind: single",
                 "class_names: ['a', 'b']", "split_names: ['train', 'test']", "source: cli test", "format: percept-h5"):
        assert line in lines, line
    assert any(line.startswith("versions: {") for line in lines)
    attr_keys = [line.split(":")[0] for line in lines if not line.startswith("  ")]
    assert attr_keys == sorted(attr_keys)  # attributes in sorted order
    assert "  images: (5, 8, 8, 3) uint8" in lines
    assert "  labels: (5,) int64" in lines
    assert "  meta/photo: (5,) int64" in lines


def test_inspect_refuses_incomplete_and_garbage_files(capsys, dataset_file, tmp_path):
    with h5py.File(dataset_file, "a") as f:
        f.attrs["complete"] = False
    code, out, err = run(capsys, "inspect", str(dataset_file))
    assert code == 2 and out == ""
    assert f"error: {dataset_file}: incomplete" in err
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"junk" * 100)
    code, out, err = run(capsys, "inspect", str(junk))
    assert code == 2 and err.startswith("error:")


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage: percept" in capsys.readouterr().err
