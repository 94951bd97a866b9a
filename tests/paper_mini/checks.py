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
    if path.name == "scores.csv" and "n_masks" in df and "method" in df:
        # The sample count belongs to the perturbation methods; the baselines (Grad-CAM, explainer, channels)
        # leave it empty. It must be finite where it applies.
        bad = df["n_masks"].isna() & df["method"].isin(["rise"])
        if bad.any():
            problems.append(f"table {path.name}: n_masks missing on {int(bad.sum())} RISE row(s)")
        df = df.drop(columns="n_masks")
    if path.name == "scores.csv" and {"present", "causal"} <= set(df.columns):
        # A row scores what applies to its class: the ground-truth metrics where the class is present, deletion,
        # insertion and SRG where it is the causal target (evaluation.target). Each must be there, and only there.
        for flag, cols in (("present", ("iou", "pointing", "mae", "saliency", "kept_probability", "area")),
                           ("causal", ("deletion", "insertion", "lif", "mif", "srg", "srg_normalised"))):
            rows = df[flag].astype(bool)
            for col in (c for c in cols if c in df):
                bad = np.isfinite(df[col].to_numpy(float)) != rows.to_numpy()
                if bad.any():
                    problems.append(f"table {path.name}: column {col!r} empty where {flag} is true or filled "
                                    f"where it is false, on {int(bad.sum())} row(s)")
        df = df.drop(columns=[c for c in ("iou", "pointing", "mae", "saliency", "kept_probability", "area",
                                          "deletion", "insertion", "lif", "mif", "srg", "srg_normalised") if c in df])
    if "task" in df.columns and "metric" in df.columns:
        # The grid's long table (one row per task x dataset x network x tap x metric): a column of one task's own
        # (PSNR of the bicubic baseline, the 2AFC triplet count, ...) is empty on the other tasks' rows. It must be
        # finite on every row of each task that fills it at all.
        for col in [c for c in df.select_dtypes("number").columns if c not in ("value", "tap_index")]:
            for task, g in df.groupby("task"):
                filled = g[col].notna()
                if filled.any() and not np.isfinite(g[col].to_numpy(float)).all():
                    problems.append(f"table {path.name}: column {col!r} non-finite on "
                                    f"{int((~np.isfinite(g[col].to_numpy(float))).sum())} {task} row(s)")
            df = df.drop(columns=col)
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


# Columns that are NaN by definition in the miniature: a standard deviation over a single seed; a correlation
# with a score that is the same for every network (check_correlations says where).
ALLOW_NAN: dict[str, tuple[str, ...]] = {"summary.csv": ("std",), "predictors.csv": ("std",),
                                         "imagenet_correlation.csv": ("pearson", "spearman")}


def check_correlations(res: Path) -> list[str]:
    """The grid's correlation with ImageNet accuracy is NaN exactly where it is undefined: fewer than 3
    ImageNet-weighted networks, or a score that does not vary across them (a 1-step miniature segmenter that
    finds no road, whichever network its loss comes from)."""
    import numpy as np
    import pandas as pd

    corr_path, scores_path = res / "loss_networks/imagenet_correlation.csv", res / "loss_networks/scores.csv"
    if not (corr_path.is_file() and scores_path.is_file()):
        return []  # expected_rows reports the missing table
    corr, scores = pd.read_csv(corr_path), pd.read_csv(scores_path)
    pre = scores[scores["weights"] == "imagenet"]
    out = []
    for r in corr.itertuples(index=False):
        g = pre[(pre["task"] == r.task) & (pre["dataset"] == r.dataset) & (pre["metric"] == r.metric)]
        best = "max" if bool(g["higher_is_better"].iloc[0]) else "min"
        per_net = g.groupby("network")["value"].agg(best if r.aggregate == "best tap" else "mean") \
            if len(g) else pd.Series(dtype=float)
        undefined = len(per_net) < 3 or float(np.ptp(per_net.to_numpy(float))) == 0.0
        for col in ("pearson", "spearman"):
            value = getattr(r, col)
            if np.isfinite(value) == undefined:
                out.append(f"table {corr_path.name}: {col} of {r.task}/{r.metric} ({r.aggregate}) is {value} with "
                           f"{len(per_net)} networks whose scores {'do not vary' if undefined else 'vary'}")
    return out


def expected_rows(workdir: Path, cfg: dict) -> list[str]:
    """The tables whose rows the config determines: every network, metric, encoder, variant and dataset of the
    paper's lists appears in its stage's table."""
    res = workdir / "results"
    out: list[str] = []
    out += check_table(res / "backbones/imagenet_check.csv", key=["backbone", "weights"],
                       expect={(b, w) for b in cfg["backbone_check"]["backbones"] for w in ("imagenet", "random")})
    # Feature caches: one stats file per features entry.
    for e in cfg["features"]:
        from percept.plan import entry_name, feature_stats_file

        path = workdir / feature_stats_file(e["dataset"], entry_name(e))
        if not path.is_file():
            out.append(f"feature cache stats {path.relative_to(workdir)}: missing")
    # Explanations: per classifier its scores and summary.
    for c in cfg["explain"]["classifiers"]:
        for name in ("scores.csv", "summary.csv", "channels.csv"):
            out += check_table(res / "explain" / c["name"] / name)
    # Similarity: every metric and pixel metric on the BAPPS 2AFC val and JND sets, calibration, flaws, adaptation.
    sim = cfg["similarity"]
    methods = list(sim["two_afc"]["pixel_metrics"]) + [m["name"] for m in sim["metrics"]]
    kinds = ["2afc"] + (["jnd"] if sim["two_afc"]["jnd"] else [])
    out += check_table(res / "similarity/two_afc.csv", key=["method", "kind"],
                       expect={(m, k) for m in methods for k in kinds})
    for m in sim["metrics"]:
        if m.get("linear") == "calibrated":
            out += check_table(res / "similarity/calibration" / f"{m['name']}.csv")
    out += check_table(res / "similarity/flaws.csv")
    out += check_table(res / "similarity/flaws_summary.csv")
    adapt = sorted((res / "similarity/adaptation").glob("*.csv"))
    if len(adapt) != len(sim["adaptation"]["backbones"]):
        out.append(f"similarity/adaptation: {len(adapt)} tables for {len(sim['adaptation']['backbones'])} backbones")
    for path in adapt:
        out += check_table(path)
    # The loss-network grid: every network on every task and dataset.
    ln = cfg["loss_networks"]
    nets = {n.get("name", n["backbone"]) for n in ln["networks"]}
    expect = set()
    for task, opts in ln["tasks"].items():
        for dataset in opts.get("datasets", [None]):
            expect |= {(task, net) for net in nets}
    out += check_table(res / "loss_networks/scores.csv", key=["task", "network"], expect=expect)
    out += check_table(res / "loss_networks/ranks.csv")
    out += check_correlations(res)
    # Perceptual autoencoders: every dataset x loss.
    ae = cfg["autoencoders"]
    out += check_table(res / "autoencoders/summary.csv", key=["dataset", "loss"],
                       expect={(d, l) for d in ae["datasets"] for l in ae["losses"]}, allow_nan=("std",))
    # MPCS: every backbone x encoder (pretraining strategies and baselines) x protocol, on every fold.
    mp = cfg["mpcs"]
    encoders = [f"mpcs_{s}" for s in mp["pretrain"]["strategies"]] + \
        [f"baseline_{b}" for b in mp["finetune"]["baselines"]]
    runs = res / "mpcs" / mp["dataset"] / "runs.csv"
    out += check_table(runs, key=["backbone", "encoder", "protocol", "fold"],
                       expect={(b, e, p, f) for b in mp["backbones"] for e in encoders
                               for p in mp["finetune"]["protocols"] for f in range(mp["folds"])})
    out += check_table(res / "mpcs" / mp["dataset"] / "accuracy.csv")
    out += check_val_ila(res, mp)
    out += check_translation_scores(res, cfg["translation"])
    return out


def check_val_ila(res: Path, mp: dict) -> list[str]:
    """``val_ila`` exists exactly when fine-tuning holds patients out (``finetune.validation`` > 0), in the
    per-fold tables and runs.csv: never a column of NaN."""
    share = float(mp["finetune"].get("validation", 0.0))
    out = []
    for path in [res / "mpcs" / mp["dataset"] / "runs.csv",
                 *sorted((res / "mpcs" / mp["dataset"]).glob("*/fold*/[!p]*.csv"))]:  # not pretrain_*.csv
        if path.is_file() and ("val_ila" in _columns(path)) != (share > 0):
            out.append(f"table {path}: val_ila {'missing' if share > 0 else 'present'} with finetune.validation "
                       f"{share}")
    return out


def check_translation_scores(res: Path, tr: dict) -> list[str]:
    """Every variant and the untranslated reference with every score the dataset allows: without ground-truth
    masks (a downloaded photo set, a folder) the mask-based scores are left out of the tables, not written as
    NaN (percept.translation.tables.MASK_SCORES); with them (the offline shapes domains) all are there."""
    from percept.translation.tables import MASK_SCORES, SCORES

    has_masks = tr["dataset"] == "translation_shapes"
    scores = [s for s in SCORES if has_masks or s not in MASK_SCORES]
    out = check_table(res / "translation/ablation.csv", key=["variant", "score"],
                      expect={(v, s) for v in [*tr["variants"], "identity"] for s in scores})
    for path in [res / "translation/per_image.csv", *sorted((res / "translation").glob("*/scores.csv"))]:
        got = set(_columns(path)) & set(SCORES) if path.is_file() else set()
        if path.is_file() and got != set(scores):
            out.append(f"table {path}: scores {sorted(got)}, expected {sorted(scores)}")
    return out


def _columns(path: Path) -> list[str]:
    import pandas as pd

    return list(pd.read_csv(path, nrows=0).columns)

