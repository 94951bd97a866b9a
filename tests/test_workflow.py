"""End-to-end: the Snakemake workflow on the tiny config, its determinism, its refusal of bad configs,
the download path through the workflow (loopback server), the lint and the paper config's plan."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from percept import backbones
from percept.data.store import ImageDataset
from percept.features import FeatureCache, TapExtractor, prepare_input

from conftest import REPO, TINY, array_digests, assert_figure, make_tar, mirror_config, snakemake

pytestmark = pytest.mark.e2e


def test_tiny_config_builds_every_target(tiny_run):
    workdir, _, _ = tiny_run
    for name in ("fig_datasets", "fig_backbone_check", "fig_feature_caches"):
        assert_figure(workdir, name)
    for rule in ("make_shapes", "make_photos", "cache_features", "check_backbones", "render_fig_datasets"):
        logs = list((workdir / "logs" / rule).rglob("*.log"))
        assert logs and any(f"rule {rule}" in p.read_text() for p in logs), rule


def test_tiny_config_datasets_and_feature_caches_hold_real_content(tiny_run):
    workdir, _, _ = tiny_run
    cfg = yaml.safe_load(TINY.read_text())
    shapes = ImageDataset(workdir / "data/datasets/shapes.h5")
    assert len(shapes) == cfg["datasets"]["shapes"]["n_train"] + cfg["datasets"]["shapes"]["n_test"]
    assert shapes.class_names == cfg["datasets"]["shapes"]["classes"]
    labels = shapes.labels()
    assert labels.sum(1).min() >= 1 and labels.sum(1).max() <= 2

    cache = FeatureCache(workdir / "data/features/shapes/efficientnet_lite0.h5",
                         expect={"backbone": "efficientnet_lite0", "dataset_fingerprint": shapes.fingerprint})
    spec = backbones.get("efficientnet_lite0")
    assert cache.taps == list(spec.taps) and len(cache) == len(shapes)
    extractor = TapExtractor(spec.build("imagenet"), spec.taps).eval()
    with torch.inference_mode():
        direct = extractor(prepare_input(shapes.batch([0, 5, 17]), spec, None))
    for tap in spec.taps:
        assert torch.allclose(cache.load(tap, [0, 5, 17]), direct[tap], atol=1e-5), tap

    random = FeatureCache(workdir / "data/features/photos/efficientnet_lite0-random.h5")
    assert random.taps == ["_blocks.3", "_head_act"] and random.meta["dtype"] == "float16"
    assert random.meta["weights"] == "random" and random.meta["weights_seed"] == cfg["seed"]

    check = pd.read_csv(workdir / "results/backbones/imagenet_check.csv")
    top = check[(check.photo == "chelsea") & (check.weights == "imagenet")]
    assert top["label"].str.contains("cat|tabby").any()
    rand = check[(check.weights == "random") & (check["rank"] == 1)]
    assert (rand["probability"] < 0.05).all()


def test_rerun_has_nothing_to_do(tiny_run):
    workdir, _, _ = tiny_run
    proc = snakemake(workdir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_one_figure_rebuilds_alone(tiny_run):
    workdir, _, _ = tiny_run
    before = (workdir / "data/datasets/shapes.h5").stat().st_mtime_ns
    proc = snakemake(workdir, "fig_datasets", "--forcerun", "render_fig_datasets")
    text = proc.stdout + proc.stderr
    assert "render_fig_datasets" in text and "make_shapes" not in text.split("Job stats")[-1].split("total")[0]
    assert (workdir / "data/datasets/shapes.h5").stat().st_mtime_ns == before


def test_report_includes_the_figures(tiny_report):
    html = tiny_report.read_text(errors="replace")
    for name in ("fig_datasets", "fig_backbone_check", "fig_feature_caches"):
        assert name in html


# One job of each rule that draws random numbers (data generation, explanation masks, training of every stage)
# or computes features: rerunning them, and not the whole DAG, proves that the seeds come from the config.
DETERMINISM_RULES = ("make_shapes", "make_dps_distortions", "cache_features", "select_channels", "explain_rise",
                     "calibrate_dps", "train_autoencoder", "loss_network_segmentation", "pretrain_mpcs",
                     "train_translation")


def first_job_outputs(log: str, rules: tuple[str, ...]) -> dict[str, list[str]]:
    """{rule: output files of its first job} from a Snakemake run's output (the `rule X:` / `output:` lines)."""
    found, rule = {}, None
    for line in log.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.rstrip().endswith(":"):
            rule = line.split()[1].rstrip(":")
        elif rule and line.strip().startswith("output:"):
            if rule in rules and rule not in found:
                found[rule] = [p.strip() for p in line.split(":", 1)[1].split(",")]
            rule = None
    return found


def test_same_config_gives_identical_tables(tiny_run, tmp_path):
    """Jobs rerun with the same config on the CPU give identical arrays and tables: one job of every rule in
    DETERMINISM_RULES is forced to run again in a copy of the tiny run's working directory, and its HDF5 arrays
    and CSV tables must equal the first run's."""
    workdir, proc, _ = tiny_run
    jobs = first_job_outputs(proc.stdout + proc.stderr, DETERMINISM_RULES)
    assert set(jobs) == set(DETERMINISM_RULES), set(DETERMINISM_RULES) - set(jobs)
    copy = tmp_path / "rerun"
    shutil.copytree(workdir, copy, symlinks=True, ignore=shutil.ignore_patterns("report.html"))
    targets = [outs[0] for outs in jobs.values()]
    before = {t: (copy / t).stat().st_mtime_ns for t in targets}
    rerun = snakemake(copy, "--force", *targets)
    text = rerun.stdout + rerun.stderr
    ran = first_job_outputs(text, DETERMINISM_RULES)
    assert set(ran) == set(DETERMINISM_RULES), text[-3000:]
    assert all((copy / t).stat().st_mtime_ns != before[t] for t in targets)  # rewritten, not left in place
    outputs = [out for outs in jobs.values() for out in outs]
    first, second = array_digests(workdir, outputs), array_digests(copy, outputs)
    assert len(first) >= len(DETERMINISM_RULES), first
    assert first == second


def test_invalid_config_stops_before_any_job(tmp_path):
    bad = yaml.safe_load(TINY.read_text())
    bad["features"][0]["backbone"] = "resnet99"
    bad["datasets"]["shapes"]["n_train"] = -3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = snakemake(tmp_path, configfile=path, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "features[0].backbone" in text and "'resnet99' is not allowed" in text and "efficientnet_lite0" in text
    assert "datasets.shapes.n_train" in text
    assert not (tmp_path / "data").exists() and not (tmp_path / "logs").exists()


def stl10_archive(n_train: int = 3, n_test: int = 2) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(n_train + n_test, 96, 96, 3), dtype=np.uint8)
    files = {}
    for split, sl in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        # STL-10 stores each image channel-major and column-major: (N, 3, W, H).
        files[f"stl10_binary/{split}_X.bin"] = imgs[sl].transpose(0, 3, 2, 1).tobytes()
        files[f"stl10_binary/{split}_y.bin"] = (np.arange(len(imgs[sl])) % 10 + 1).astype(np.uint8).tobytes()
    files["stl10_binary/class_names.txt"] = b"\n".join(f"class{i}".encode() for i in range(10))
    return make_tar(files), imgs


def test_download_rule_through_the_workflow(server, tmp_path):
    archive, imgs = stl10_archive()
    path = mirror_config(server, archive, tmp_path / "dl.yaml")
    work = tmp_path / "work"
    snakemake(work, "data/datasets/stl10.h5", configfile=path)
    ds = ImageDataset(work / "data/datasets/stl10.h5", split="train")
    assert len(ds) == 3
    got = (ds.batch([0, 1, 2]).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(got, imgs[:3])
    assert (work / "data/raw/stl10/MANIFEST.json").exists()
    assert (work / "logs/download_stl10/stl10.log").exists()

    # A corrupted archive on the server: the job fails with a checksum error naming the file.
    (server.root / "stl10_binary.tar.gz").write_bytes(archive[:-100] + b"x" * 100)
    shutil.rmtree(work / "data/raw/archives", ignore_errors=True)
    proc = snakemake(work, "data/raw/stl10", "--forcerun", "download_stl10", configfile=path, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr + "".join(p.read_text() for p in (work / "logs/download_stl10").glob("*.log"))
    assert "checksum" in text.lower() and "stl10_binary.tar.gz" in text


def test_lint_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "-s", str(REPO / "Snakefile")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


def test_paper_config_plans_offline(paper_plan):
    text, _ = paper_plan
    assert "download_stl10" in text and "download_voc2007" in text and "download_breakhis" in text
    jobs = int(text.split("Job stats")[1].split("total")[1].split()[0])
    assert jobs > 40  # how long planning takes is measured by bench/plan_paper.py, not asserted under load


def test_nested_config_override_is_read_as_the_schema_types(tmp_path):
    """Snakemake passes nested --config scalars as strings; the Snakefile reads them as the schema's types."""
    plan = snakemake(tmp_path, "-n", "fig_rise_components", "--config", 'explain={"rise": {"n_masks": 128}}',
                     "progress=true")
    assert "render_fig_rise_components" in plan.stdout + plan.stderr
    # 0 reaches validation as the integer 0 (below the minimum), not as the string '0' (a type error); a word
    # stays a string (a type error). One run: validation names every bad key at once.
    bad = snakemake(tmp_path, "-n", "--config", 'explain={"rise": {"n_masks": 0, "batch_size": "many"}}', check=False)
    text = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "explain.rise.n_masks: 0 is less than the minimum of 2" in text
    assert "explain.rise.batch_size: 'many' has the wrong type; expected integer" in text
    assert not (tmp_path / "data").exists() and not (tmp_path / "logs").exists()


def test_every_figure_has_its_target_renderer_and_caption(tmp_path):
    """rules/figures.smk makes fig_<name> and render_fig_<name> (the name --forcerun takes) per table row."""
    rules = set(snakemake(tmp_path, "--list-rules").stdout.split())
    captions = {p.stem for p in (REPO / "report").glob("fig_*.rst")}
    assert len(captions) >= 14
    assert {r for r in rules if r.startswith("fig_")} == captions
    assert {r for r in rules if r.startswith("render_fig_")} == {f"render_{c}" for c in captions}
    # that --forcerun takes render_fig_<name>: test_one_figure_rebuilds_alone runs it on the tiny run
