"""percept.plan owns the pipeline's plan (issue 20): the names and paths every consumer uses, the final targets
of `rule all`, each stage's job list and the params the rules share. The Snakefile's DAG of the tiny config is
built (nothing runs) and compared with what percept.plan says for the same config."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, TINY
from percept.config import validate_config
from percept.plan import (SHARED_PARAMS, Plan, autoencoder_file, cell_path, embeddings_file, entry_name,
                          feature_cache_for, figure_files, shared_params)

SHARED_KEYS = ("seed", "device", "progress", "allow_download")


@pytest.fixture(scope="module")
def tiny_dag(tmp_path_factory):
    """(jobs, validated config) of the tiny config's forced DAG, from tests/plan_jobs.py in a fresh process."""
    tmp = tmp_path_factory.mktemp("plan")
    out = tmp / "jobs.json"
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "plan_jobs.py"), str(tmp / "work"), str(out),
                           str(TINY)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())["jobs"], json.loads(out.with_suffix(".config.json").read_text())


def outputs(jobs, rule: str) -> list[str]:
    return sorted(p for j in jobs if re.fullmatch(rule, j["rule"]) for p in j["output"])


def test_entry_name():
    assert entry_name({"backbone": "vgg16"}) == "vgg16"
    assert entry_name({"backbone": "vgg16", "weights": "imagenet"}) == "vgg16"
    assert entry_name({"backbone": "vgg16", "weights": "random"}) == "vgg16-random"
    assert entry_name({"backbone": "vgg16", "weights": "random", "name": "v"}) == "v"


def test_one_feature_cache_name_for_every_consumer():
    """The explanation classifier, the grid's cells and the feature caches name a cache the same way."""
    cfg = validate_config(yaml.safe_load(TINY.read_text()))
    plan = Plan(cfg)
    entries = plan.feature_entries()
    for name in plan.classifiers:
        c = plan.classifiers[name]
        assert plan.explain_cache(name) in plan.feature_targets()
        assert plan.explain_cached_taps(name)  # the entry the cache path names exists
        assert (c["dataset"], c["backbone"]) in entries
    random = next(e for e in cfg["features"] if e.get("weights") == "random")
    name = feature_cache_for(cfg, random["dataset"], random["backbone"], "random", random["taps"][0],
                             random.get("resize"))
    assert name == entry_name(random) == random["backbone"] + "-random"


def test_snakefile_all_is_the_plans_targets(tiny_dag):
    jobs, config = tiny_dag
    plan = Plan(config)
    (all_job,) = [j for j in jobs if j["rule"] == "all"]
    assert all_job["input"] == sorted(plan.targets())
    assert len(plan.targets()) == len(set(plan.targets())) > 20


def test_every_stage_runs_the_plans_job_list(tiny_dag):
    """rule -> output paths of the tiny config's DAG, each from a percept.plan function."""
    jobs, config = tiny_dag
    plan = Plan(config)
    assert outputs(jobs, "cache_features") == sorted(plan.feature_targets() + plan.feature_stats())
    assert outputs(jobs, "loss_network_.*") == sorted(cell_path(c) for c in plan.grid_cells)
    assert outputs(jobs, "train_predictors") == sorted(autoencoder_file(r, "predictors.csv")
                                                       for r in plan.autoencoder_runs)
    assert [p for p in outputs(jobs, "train_autoencoder") if p.endswith(".h5")] == sorted(
        embeddings_file(r) for r in plan.autoencoder_runs)
    assert {p.split("/")[2] for p in outputs(jobs, "train_translation")} == set(plan.translation_variants)
    assert outputs(jobs, "adapt_dps") == sorted(f"results/similarity/adaptation/{a}.csv"
                                                for a in plan.adaptation_entries)
    assert outputs(jobs, "calibrate_dps") == sorted(f"results/similarity/calibration/{m}.{x}"
                                                    for m in plan.calibrated_metrics for x in ("csv", "pt"))
    assert {j["wildcards"]["encoder"] for j in jobs if j["rule"] == "finetune_mpcs"} == set(plan.mpcs_encoders)
    dataset = config["mpcs"]["dataset"]
    (summary,) = [j for j in jobs if j["rule"] == "summarize_mpcs"]
    assert summary["input"] == sorted(plan.mpcs_runs(dataset) + plan.mpcs_pretrain_histories(dataset))
    assert outputs(jobs, "finetune_mpcs") == sorted(plan.mpcs_runs(dataset))
    figures = plan.figures()
    assert outputs(jobs, "render_fig_.*") == sorted(p for f in figures for p in figure_files(f))
    for job in jobs:
        if job["rule"].startswith("render_"):
            assert job["input_named"] == figures[job["rule"].removeprefix("render_")]["inputs"]
    for name in plan.classifiers:
        (baselines,) = [j for j in jobs if j["rule"] == "explain_baselines" and j["wildcards"]["classifier"] == name]
        assert baselines["input_named"] == plan.explain_baseline_inputs(name)


def test_shared_params_come_from_one_table(tiny_dag):
    """seed, device, progress and allow_download reach each job from SHARED_PARAMS, valued as in the config
    (each stage's seed is the config's one seed), and no rule passes them by hand."""
    jobs, config = tiny_dag
    seen = set()
    for job in jobs:
        given = {k: v for k, v in job["params"].items() if k in SHARED_KEYS}
        if not given:
            continue
        rule = job["rule"]  # the loop rules (download_<source>, loss_network_<task>) by their prefix
        key = rule if rule in SHARED_PARAMS else next(k for k in ("download", "loss_network")
                                                      if rule.startswith(k + "_"))
        seen.add(key)
        assert given == shared_params(config, key) == {k: config[k] for k in SHARED_PARAMS[key]}, rule
    assert len(seen) > 20
    planned = {j["rule"] for j in jobs}
    assert not [k for k in set(SHARED_PARAMS) - seen if any(r == k or r.startswith(k + "_") for r in planned)]
    for smk in (REPO / "rules").glob("*.smk"):
        for key in SHARED_KEYS:
            assert f'config["{key}"]' not in smk.read_text(), (smk.name, key)
    with pytest.raises(KeyError, match="SHARED_PARAMS"):
        shared_params(config, "no_such_rule")


def test_rules_spell_no_output_path():
    """The rules name their files through percept.plan (only logs/ and benchmarks/ are spelt in the rules)."""
    spelt = {f"{smk.name}:{i}": line.strip() for smk in (REPO / "rules").glob("*.smk")
             for i, line in enumerate(smk.read_text().splitlines(), 1) if re.search(r"""["'](results|data)/""", line)}
    assert spelt == {}
