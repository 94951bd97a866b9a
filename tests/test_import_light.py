"""The figure path imports no torch: a render_fig_* job (scripts/render_figure.py) pays only for numpy, pandas,
h5py and matplotlib, not for the ~3 s of CPU that importing torch costs each job (issue 19: 14 render jobs,
mostly interpreter start-up and imports). Checked in a fresh interpreter, since this test process has torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

FIGURE_MODULES = ("foundation", "explain", "similarity", "autoencoders", "mpcs", "translation")


def modules_after(code: str) -> set[str]:
    """The top-level packages in sys.modules after running ``code`` in a fresh interpreter."""
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                          cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


@pytest.mark.parametrize("module", FIGURE_MODULES)
def test_figure_module_imports_no_torch(module):
    loaded = modules_after(f"import percept.figures.{module}")
    assert "matplotlib" in loaded  # the probe sees imports at all
    assert "torch" not in loaded and "torchvision" not in loaded


def test_render_script_imports_and_setup_load_no_torch(tmp_path):
    """What scripts/render_figure.py runs before drawing: its imports, every renderer module (render() imports
    them all to fill the registry) and setup_script(..., uses_torch=False)."""
    code = f"""
from types import SimpleNamespace
from percept.figures import _RENDERERS, render
from percept.figures import {", ".join(FIGURE_MODULES)}
from percept.workflow import setup_script
smk = SimpleNamespace(log=[{str(tmp_path / "render.log")!r}], rule="render_fig_x", config={{"seed": 3}},
                      threads=1, wildcards={{}})
setup_script(smk, uses_torch=False)
assert len(_RENDERERS) >= 14, sorted(_RENDERERS)
"""
    loaded = modules_after(code)
    assert "torch" not in loaded, "the render path imports torch"
    log = (tmp_path / "render.log").read_text()
    assert "seed=3 (no torch)" in log
    assert "usage: cpu_s=" in log  # logged as the job exits: bench/job_costs.py reads every rule's CPU from it


def test_planning_the_tiny_config_imports_no_torch():
    """tests/config.yaml taps Lite0's _blocks.3, between the registry's stage ends: validating it (what every
    Snakemake start of the tests does) reads the block plan instead of building the network under torch."""
    loaded = modules_after("""
import yaml
from percept.config import validate_config
validate_config(yaml.safe_load(open("tests/config.yaml")))
""")
    assert "yaml" in loaded and "torch" not in loaded and "torchvision" not in loaded


def test_the_plan_and_the_config_import_no_torch():
    """percept.plan and percept.config load without torch, and the plan of the tiny config (every final target,
    every stage's job list) is worked out without it: Snakemake plans in one cheap process."""
    loaded = modules_after("""
import percept.plan, percept.config
import sys
assert "torch" not in sys.modules, "importing percept.plan / percept.config loads torch"
import yaml
from percept.config import validate_config
from percept.plan import Plan
plan = Plan(validate_config(yaml.safe_load(open("tests/config.yaml"))))
assert len(plan.targets()) > 20 and plan.grid_cells and plan.autoencoder_runs and plan.figures()
assert plan.cell_inputs("perceptual_similarity", plan.grid_cells[-1]["dataset"], plan.grid_cells[-1]["network"],
                        plan.grid_cells[-1]["tap"])
""")
    assert "yaml" in loaded and "torch" not in loaded and "torchvision" not in loaded


def test_setup_script_still_seeds_torch_by_default(tmp_path):
    code = f"""
from types import SimpleNamespace
from percept.workflow import setup_script
smk = SimpleNamespace(log=[{str(tmp_path / "train.log")!r}], rule="train_x", config={{"seed": 3}}, threads=1,
                      wildcards={{}})
setup_script(smk)
import torch
a = torch.rand(3)
torch.manual_seed(3)
assert torch.equal(a, torch.rand(3))
"""
    assert "torch" in modules_after(code)
    assert "torch=" in (tmp_path / "train.log").read_text()


# The summary rules' scripts and the modules they import (each calls setup_script(..., uses_torch=False)).
SUMMARY_SCRIPTS = {
    "summarize_translation": "percept.translation.tables",
    "summarize_autoencoders": "percept.autoencoders.summary",
    "summarize_mpcs": "percept.mpcs.metrics",
    "analyze_loss_networks": "percept.loss_networks.analysis",
}


@pytest.mark.parametrize("script", sorted(SUMMARY_SCRIPTS))
def test_summary_scripts_import_no_torch(script):
    text = (REPO / "scripts" / f"{script}.py").read_text()
    assert "uses_torch=False" in text
    loaded = modules_after(f"import {SUMMARY_SCRIPTS[script]}, percept.tables, percept.workflow")
    assert "pandas" in loaded and "torch" not in loaded


def test_translation_figure_reads_its_examples_without_torch(tmp_path):
    """The draw itself, not only the import: the shape-translation renderer's reader of example files (written
    here, as train_translation writes them)."""
    import numpy as np

    from percept.translation.tables import write_examples

    write_examples(tmp_path / "ex.h5", {"inputs": np.zeros((2, 3, 8, 8), np.float32)}, "full")
    code = f"""
from percept.translation.tables import read_examples
assert read_examples({str(tmp_path / "ex.h5")!r})["variant"] == "full"
"""
    assert "torch" not in modules_after(code)
