"""What a finished miniature paper run must hold (tests/paper_mini/run.py): every rule the paper config plans
ran, every figure of the paper config is rendered, every table has its expected rows and finite values."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def merged_config() -> dict:
    """configs/paper.yaml with tests/paper-mini.yaml applied as Snakemake applies a second configfile."""
    from snakemake.utils import update_config

    cfg = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    update_config(cfg, yaml.safe_load((REPO / "tests" / "paper-mini.yaml").read_text()))
    return cfg


def paper_sources() -> list[str]:
    return list(merged_config()["downloads"]["sources"])


def job_stats(text: str) -> dict[str, int]:
    """{rule: count} from the 'Job stats' table of a Snakemake plan."""
    stats: dict[str, int] = {}
    if "Job stats" not in text:
        return stats
    block = text.split("Job stats:", 1)[1]
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            stats[m.group(1)] = int(m.group(2))
    return stats


def failed_logs(workdir: Path) -> list[Path]:
    return sorted(p for p in (workdir / "logs").rglob("*.log") if "Traceback" in p.read_text(errors="replace"))


def check_figure(workdir: Path, name: str) -> list[str]:
    import numpy as np
    from PIL import Image

    png, pdf = workdir / "results/figures" / f"{name}.png", workdir / "results/figures" / f"{name}.pdf"
    if not png.is_file() or not pdf.is_file():
        return [f"figure {name}: {png.name} or {pdf.name} missing"]
    with Image.open(png) as im:
        arr = np.asarray(im.convert("L"), dtype=float)
    problems = []
    if min(arr.shape) < 100 or arr.std() < 1:
        problems.append(f"figure {name}: {arr.shape} px, std {arr.std():.2f} (blank or tiny)")
    if pdf.stat().st_size < 1000:
        problems.append(f"figure {name}: the PDF has {pdf.stat().st_size} bytes")
    return problems


def check_table(path: Path, *, key: str | list[str] | None = None, expect: set | None = None,
                allow_nan: tuple[str, ...] = ()) -> list[str]:
    """The CSV has rows, every numeric column finite (except ``allow_nan``), and, with ``key`` and ``expect``,
    exactly the expected values of ``key`` (a column, or a tuple of columns)."""
    import numpy as np
    import pandas as pd

    if not path.is_file():
        return [f"table {path}: missing"]
    df = pd.read_csv(path)
    problems = []
    if df.empty:
        return [f"table {path}: no rows"]
    for col in df.select_dtypes("number").columns:
        if col in allow_nan:
            continue
        bad = ~np.isfinite(df[col].to_numpy(float))
        if bad.any():
            problems.append(f"table {path.name}: column {col!r} has {int(bad.sum())} non-finite value(s)")
    if key is not None and expect is not None:
        cols = [key] if isinstance(key, str) else list(key)
        missing_cols = [c for c in cols if c not in df.columns]
        if missing_cols:
            return problems + [f"table {path.name}: no column(s) {missing_cols} (has {list(df.columns)})"]
        got = set(df[cols[0]]) if isinstance(key, str) else set(map(tuple, df[cols].itertuples(index=False)))
        if got != set(expect):
            problems.append(f"table {path.name}: {key} has {sorted(map(str, got))}, expected "
                            f"{sorted(map(str, expect))}")
    return problems


def run_checks(workdir: Path, paper_plan: dict[str, int], mini_plan: dict[str, int]) -> list[str]:
    problems: list[str] = []
    if not paper_plan:
        problems.append("the paper config could not be planned")
    missing_rules = sorted(set(paper_plan) - set(mini_plan))
    if mini_plan and missing_rules:
        problems.append(f"rules the paper config runs but the miniature does not: {missing_rules}")
    figures = sorted(r.removeprefix("render_") for r in paper_plan if r.startswith("render_fig_"))
    if paper_plan and not figures:
        problems.append("the paper plan renders no figures")
    for name in figures:
        problems += check_figure(workdir, name)
    tables = sorted((workdir / "results").rglob("*.csv"))
    if not tables:
        problems.append("no tables under results/")
    for path in tables:
        problems += check_table(path, allow_nan=ALLOW_NAN.get(path.name, ()))
    problems += expected_rows(workdir, merged_config())
    return problems


# Columns that are NaN by definition in the miniature's setting (documented where they are computed).
ALLOW_NAN: dict[str, tuple[str, ...]] = {}


def expected_rows(workdir: Path, cfg: dict) -> list[str]:
    """The tables whose rows the config determines."""
    res = workdir / "results"
    out: list[str] = []
    out += check_table(res / "backbones/imagenet_check.csv", key="backbone",
                       expect=set(cfg["backbone_check"]["backbones"]))
    return out
