"""The similarity experiments the workflow runs: 2AFC/JND evaluation, LPIPS-style calibration, the flaw
analysis and the adaptation to contexts. Scripts under ``scripts/`` call these and write their outputs."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from percept import seeds
from percept.backbones.spec import NetworkSpec
from percept.checkpoints import load_checkpoint, load_torch, save_checkpoint
from percept.data.bapps import JNDData, TwoAFCData
from percept.data.store import ImageDataset, read_rows
from percept.features import FeatureCache, resolve_device
from percept.similarity import distortions as dist
from percept.similarity.calibration import iter_channel_weights, train_channel_weights
from percept.similarity.metric import DPS, MODES, channel_distances, channel_maps, mode_width
from percept.similarity.scoring import (
    PIXEL_METRICS,
    category_rows,
    jnd_average_precision,
    two_afc,
    two_afc_scores,
)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ metrics

def metric_fingerprint(spec: Mapping[str, Any], seed: int) -> dict[str, Any]:
    keys = ("backbone", "weights", "taps", "mode", "normalize", "scaling", "resize")
    fp = {**{k: spec.get(k) for k in keys}, "seed": seed}
    # Only the non-default definitions enter the fingerprint, so earlier calibrations of spatial metrics stay valid.
    for key, default in (("norm_order", "after"), ("combine", "concat")):
        if spec.get(key, default) != default:
            fp[key] = spec[key]
    return fp


def spec_setting(spec: Mapping[str, Any]) -> tuple[str, bool, str, str]:
    """(mode, normalize, norm_order, combine) of a ``similarity.metrics`` entry."""
    return (spec["mode"], spec["normalize"], spec.get("norm_order", "after"), spec.get("combine", "concat"))


def spec_weights(spec: Mapping[str, Any], trunk: DPS, *, seed: int, calibration: str | Path | None = None
                 ) -> torch.Tensor | None:
    """The channel weights of ``spec`` (all taps of ``trunk`` concatenated), ``None`` when uncalibrated."""
    if spec["linear"] == "none":
        return None
    if spec["linear"] == "lpips":
        from percept.similarity.metric import (
            LinearWeights,
            load_linear_state,
            lpips_weights_file,
        )

        lin = LinearWeights(tap_channels(trunk), trunk.taps)  # DPS refuses lpips weights for 2C modes
        path = lpips_weights_file(spec["backbone"])
        load_linear_state(lin, load_torch(path), path)
        weights = lin.weights()
    else:
        if calibration is None:
            raise ValueError(f"metric {spec['name']!r} needs its calibration file")
        ckpt = load_checkpoint(calibration, {"metric": metric_fingerprint(spec, seed)})
        if ckpt is None:
            raise FileNotFoundError(f"{calibration}: no calibration; run snakemake to train it")
        weights = ckpt["weights"]
    return torch.cat([weights[t].detach().cpu().reshape(-1) for t in trunk.taps])


def json_key(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def build_metric(spec: Mapping[str, Any], *, seed: int, allow_download: bool = False,
                 calibration: str | Path | None = None) -> DPS:
    """A :class:`DPS` from one ``similarity.metrics`` entry; ``linear: calibrated`` reads ``calibration``."""
    linear: Any = None
    if spec["linear"] == "lpips":
        linear = "lpips"
    elif spec["linear"] == "calibrated":
        if calibration is None:
            raise ValueError(f"metric {spec['name']!r} needs its calibration file")
        ckpt = load_checkpoint(calibration, {"metric": metric_fingerprint(spec, seed)})
        if ckpt is None:
            raise FileNotFoundError(f"{calibration}: no calibration; run snakemake to train it")
        linear = ckpt["weights"]
    net = NetworkSpec.from_config(spec, f"similarity metric {spec['name']!r}")
    return DPS(net.backbone, weights=net.weights, taps=net.taps_arg, mode=spec["mode"],
               normalize=spec["normalize"], linear=linear, scaling=spec["scaling"], resize=net.resize,
               seed=seed, allow_download=allow_download, norm_order=spec.get("norm_order", "after"),
               combine=spec.get("combine", "concat"))


def _batches(n: int, batch_size: int) -> Iterable[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _feature_parts(metric: DPS, data: TwoAFCData | JNDData, *, batch_size: int, device: torch.device,
                   progress: bool, desc: str) -> Iterable[list[dict[str, torch.Tensor]]]:
    """Per batch, the metric's features of each image of the tuples (ref, p0, p1 or p0, p1) as ``[{tap: (B, ...)}]``:
    one forward pass over all of them (call inside ``torch.inference_mode``)."""
    metric = metric.to(device)
    for sl in tqdm(list(_batches(len(data), batch_size)), desc=f"{desc} {data.name}", disable=not progress):
        imgs = [x.to(device) for x in data.batch(sl)]
        n = imgs[0].shape[0]
        feats = metric.features(torch.cat(imgs))
        yield [{t: v[k * n:(k + 1) * n] for t, v in feats.items()} for k in range(len(imgs))]


def pair_channels(metric: DPS, data: TwoAFCData | JNDData, *, batch_size: int, device: torch.device,
                  progress: bool = False, settings: Sequence[tuple[str, bool, str, str]] | None = None
                  ) -> tuple[torch.Tensor, ...] | dict[tuple[str, bool, str, str], tuple[torch.Tensor, ...]]:
    """Per-channel comparisons (all taps concatenated) of every triplet (→ ``s0``, ``s1``: (ref, p0), (ref, p1))
    or pair (→ ``s``: (p0, p1)), one forward pass per batch with shared reference features.

    With ``settings`` (a list of (mode, normalize, norm_order, combine)), the comparisons of every setting from
    the same forward passes, as ``{setting: tuple}``; otherwise the metric's own setting's tuple.
    """
    own = (metric.mode, metric.normalize, metric.norm_order, metric.combine)
    wanted = [own] if settings is None else list(dict.fromkeys(settings))
    outs: dict[tuple[str, bool, str, str], list[list[torch.Tensor]]] = {k: [] for k in wanted}
    with torch.inference_mode():
        for parts in _feature_parts(metric, data, batch_size=batch_size, device=device, progress=progress,
                                    desc="features"):
            for setting in wanted:
                outs[setting].append(
                    [torch.cat([channel_distances(parts[0][t], p[t], *setting) for t in metric.taps], 1).cpu()
                     for p in parts[1:]])
    result = {k: tuple(torch.cat([o[i] for o in v]) for i in range(len(v[0]))) for k, v in outs.items()}
    return result[wanted[0]] if settings is None else result


def pair_maps(metric: DPS, data: TwoAFCData, *, batch_size: int, device: torch.device, progress: bool = False
              ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per-tap squared-difference maps ``(N, C', P)`` (:func:`channel_maps`, float16 to halve the memory) of
    (ref, p0) and (ref, p1) for every triplet: what calibration's element dropout acts on."""
    setting = (metric.mode, metric.normalize, metric.norm_order, metric.combine)
    out: tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]] = ([], [])
    with torch.inference_mode():
        for parts in _feature_parts(metric, data, batch_size=batch_size, device=device, progress=progress,
                                    desc="maps"):
            for side in (0, 1):
                out[side].append([channel_maps(parts[0][t], parts[side + 1][t], *setting).half().cpu()
                                  for t in metric.taps])
    return tuple([torch.cat([b[i] for b in side]) for i in range(len(metric.taps))] for side in out)


def weight_vector(metric: DPS) -> torch.Tensor | None:
    w = metric.weights()
    return None if w is None else torch.cat([w[t].detach().cpu().reshape(-1) for t in metric.taps])


def split_weights(vector: torch.Tensor, channels: Sequence[int], taps: Sequence[str]) -> dict[str, torch.Tensor]:
    parts = vector.split(list(channels))
    return {t: p.clone() for t, p in zip(taps, parts)}


def tap_channels(metric: DPS, size: int = 64) -> list[int]:
    with torch.inference_mode():
        feats = metric.features(torch.zeros(1, 3, size, size, device=metric._a.device))
    return [feats[t].shape[1] for t in metric.taps]


def _dist(s: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return s.sum(1) if w is None else s @ w


# ------------------------------------------------------------------------------------ 2AFC / JND evaluation

def evaluate_two_afc(two_afc_path: str, jnd_path: str | None, metrics: Sequence[Mapping[str, Any]],
                     pixel_metrics: Sequence[str], *, calibrations: Mapping[str, str], seed: int, device: str,
                     batch_size: int, allow_download: bool = False, progress: bool = False) -> pd.DataFrame:
    """2AFC per category and JND average precision per category of every method; tidy rows
    (method, kind, category, score, n) with the weighted and unweighted means over categories."""
    dev = resolve_device(device)
    sets: list[tuple[str, Any]] = [("2afc", TwoAFCData(two_afc_path))]
    if jnd_path:
        sets.append(("jnd", JNDData(jnd_path)))
    rows: list[dict] = []
    for kind, data in sets:
        cats = data.categories
        for name in pixel_metrics:
            fn = PIXEL_METRICS[name]
            ds = [[] for _ in range(2 if kind == "2afc" else 1)]
            for sl in _batches(len(data), batch_size):
                imgs = data.batch(sl)
                for k in range(len(ds)):
                    ds[k].append(fn(imgs[0], imgs[k + 1] if kind == "2afc" else imgs[1]))
            rows += _score_rows(kind, [torch.cat(d) for d in ds], data, cats, method=name, family="pixel")
        # Metrics on the same trunk (backbone, weights, taps, input scaling) share its forward passes.
        groups: dict[tuple, list[Mapping[str, Any]]] = {}
        for spec in metrics:
            key = tuple(json_key(spec.get(k)) for k in ("backbone", "weights", "taps", "scaling", "resize"))
            groups.setdefault(key, []).append(spec)
        for specs in groups.values():
            trunk = build_metric(dict(specs[0], linear="none"), seed=seed, allow_download=allow_download)
            s_all = pair_channels(trunk, data, batch_size=batch_size, device=dev, progress=progress,
                                  settings=[spec_setting(sp) for sp in specs])
            for spec in specs:
                w = spec_weights(spec, trunk, seed=seed, calibration=calibrations.get(spec["name"]))
                s = s_all[spec_setting(spec)]
                rows += _score_rows(kind, [_dist(x, w) for x in s], data, cats, method=spec["name"], family="dps")
                log.info("%s on %s: %s", spec["name"], data.name, rows[-1])
    return pd.DataFrame(rows)


def _score_rows(kind: str, d: list[torch.Tensor], data, cats: Sequence[str], **fields) -> list[dict]:
    if kind == "2afc":
        scores = two_afc_scores(d[0], d[1], data.judge)
        return category_rows(scores, data.category, cats, kind="2afc", dataset=data.name, **fields)
    rows = []
    cat = data.category.numpy()
    for c, name in enumerate(cats):
        sel = cat == c
        if sel.any() and data.same.numpy()[sel].sum() > 0:
            rows.append({**fields, "kind": "jnd", "dataset": data.name, "category": name,
                         "score": jnd_average_precision(d[0].numpy()[sel], data.same.numpy()[sel]),
                         "n": int(sel.sum())})
    if rows:
        n = np.array([r["n"] for r in rows])
        v = np.array([r["score"] for r in rows])
        rows.append({**fields, "kind": "jnd", "dataset": data.name, "category": "mean (weighted)",
                     "score": float((v * n).sum() / n.sum()), "n": int(n.sum())})
        rows.append({**fields, "kind": "jnd", "dataset": data.name, "category": "mean (unweighted)",
                     "score": float(v.mean()), "n": int(n.sum())})
    return rows


# ---------------------------------------------------------------------------------------------- calibration

def calibrate(train_path: str, spec: Mapping[str, Any], out: str, *, options: Mapping[str, Any], seed: int,
              device: str, batch_size: int, allow_download: bool = False, progress: bool = False,
              checkpoint: str | None = None) -> pd.DataFrame:
    """Train the non-negative linear weights of ``spec`` on a 2AFC training set with the ranking loss
    (Zhang et al. 2018); writes ``{fingerprint, weights: {tap: (C,)}, history}`` to ``out``."""
    base = dict(spec, linear="none")
    metric = build_metric(base, seed=seed, allow_download=allow_download)
    data = TwoAFCData(train_path)
    init, dropout_on = options.get("init", "default"), options.get("dropout_on", "elements")
    width = mode_width(metric.mode, metric.combine)
    dev = resolve_device(device)
    if options["dropout"] and dropout_on == "elements":
        s0, s1 = pair_maps(metric, data, batch_size=batch_size, device=dev, progress=progress)
    else:
        s0, s1 = pair_channels(metric, data, batch_size=batch_size, device=dev, progress=progress)
    fp = {"metric": metric_fingerprint(spec, seed), "data": data.fingerprint,
          **{k: options[k] for k in ("epochs", "decay_epochs", "lr", "beta1", "batch_size", "dropout")},
          "init": init, "dropout_on": dropout_on}
    w, history = train_channel_weights(
        s0, s1, data.judge.float(), epochs=options["epochs"], decay_epochs=options["decay_epochs"], lr=options["lr"],
        betas=(options["beta1"], 0.999), batch_size=options["batch_size"], dropout=options["dropout"], seed=seed,
        init=init, groups=[width * c for c in tap_channels(metric)], dropout_on=dropout_on,
        checkpoint=checkpoint, fingerprint=fp, progress=progress, desc=f"calibrate {spec['name']}")
    weights = split_weights(w, [width * c for c in tap_channels(metric)], metric.taps)
    save_checkpoint(out, {"metric": metric_fingerprint(spec, seed)}, weights=weights, history=history, training=fp)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return pd.DataFrame([{**h, "metric": spec["name"]} for h in history])


# ---------------------------------------------------------------------------------------------- flaw analysis

def entry_taps(entry: Mapping[str, Any]) -> str | list[str]:
    """A flaws / adaptation entry's taps; by default (``taps: null``) the LPIPS taps where the backbone has them
    (as both papers' code: the flaws paper's analysis.py, AlexNet layers [1,4,7,9,11], VGG16 [3,8,15,22,29];
    the adaptation paper's augmentations.py, default extraction layers [1,4,7,9,11]), else its ``paper`` taps."""
    return NetworkSpec.from_config(entry).default_taps()


def evaluate_flaws(challenges_path: str, backbones: Sequence[Mapping[str, Any]], *, modes: Sequence[str],
                   normalize: Sequence[bool], seed: int, device: str, batch_size: int, allow_download: bool = False,
                   progress: bool = False, norm_order: str = "after") -> pd.DataFrame:
    """Pass/fail of every challenge for every backbone × mode × normalisation (one row per item and challenge);
    ``norm_order``: see :mod:`percept.similarity.metric` (the uncalibrated channel sum is the same for both
    ways of combining a combined mode)."""
    data = ImageDataset(challenges_path)
    roles, items = data.meta("role"), data.meta("item")
    n_items, n_roles = int(items.max()) + 1, len(dist.ROLES)
    if len(data) != n_items * n_roles or not (roles.reshape(n_items, n_roles) == np.arange(n_roles)).all():
        raise ValueError(f"{challenges_path}: rows are not blocks of the roles {dist.ROLES}")
    # Sets written before the stain anchors existed measure everything from the original.
    anchors = list(data.attrs.get("anchors", [0] * n_roles))
    dev = resolve_device(device)
    rows = []
    for entry in backbones:
        net = NetworkSpec.from_config(entry)
        weights = net.weights
        metric = DPS(net.backbone, weights=weights, taps=net.default_taps(), mode="spatial",
                     scaling="backbone", seed=seed, allow_download=allow_download).to(dev)
        label = net.backbone + ("" if weights == "imagenet" else f" ({weights})")
        # d[(mode, normalize)][item, role]
        d = {(m, z): np.zeros((n_items, n_roles)) for m in modes for z in normalize}
        per_batch = max(1, batch_size // n_roles)
        with torch.inference_mode():
            for sl in tqdm(list(_batches(n_items, per_batch)), desc=f"flaws {label}", disable=not progress):
                x = data.batch(slice(sl.start * n_roles, sl.stop * n_roles)).to(dev)
                feats = metric.features(x)
                b = sl.stop - sl.start
                # Each row's anchor (the original; the stain pair's own original) against the row, all at once.
                orig = {t: v.view(b, n_roles, *v.shape[1:])[:, anchors].reshape(v.shape) for t, v in feats.items()}
                for m in modes:
                    for z in normalize:
                        dm = sum(channel_distances(orig[t], feats[t], m, z, norm_order).sum(1) for t in metric.taps)
                        d[(m, z)][sl] = dm.view(b, n_roles).cpu().numpy()
        for (m, z), dm in d.items():
            for r in dist.challenge_passes(dm):
                rows.append({"backbone": label, "mode": m, "normalize": z, **r})
    return pd.DataFrame(rows)


def evaluate_flaw_folder(folder_path: str, backbones: Sequence[Mapping[str, Any]], *, modes: Sequence[str],
                         normalize: Sequence[bool], seed: int, device: str, size: int | None = None,
                         allow_download: bool = False, norm_order: str = "after") -> pd.DataFrame:
    """The flaw analysis on the authors' challenge images (:func:`distortions.read_challenge_folder`), one row per
    backbone x mode x normalisation x challenge, as :func:`evaluate_flaws` (``source`` = the folder)."""
    folder = dist.read_challenge_folder(folder_path, size)
    x = torch.from_numpy(folder["images"]).permute(0, 3, 1, 2).float() / 255
    pairs = np.array([(o, t) for _, o, t, _ in folder["pairs"]], int).reshape(-1, 2)
    stains = np.array([(o, r, s_) for o, r, s_, _ in folder["stains"]], int).reshape(-1, 3)
    refs = np.array(folder["refs"])
    dev = resolve_device(device)
    rows = []
    for entry in backbones:
        net = NetworkSpec.from_config(entry)
        weights = net.weights
        metric = DPS(net.backbone, weights=weights, taps=net.default_taps(), mode="spatial", scaling="backbone",
                     seed=seed, allow_download=allow_download).to(dev)
        label = net.backbone + ("" if weights == "imagenet" else f" ({weights})")
        with torch.inference_mode():
            feats = metric.features(x.to(dev))

        def dist_(a, b, m, z):
            a, b = np.asarray(a), np.asarray(b)
            return sum(channel_distances(feats[t][a], feats[t][b], m, z, norm_order).sum(1)
                       for t in metric.taps).cpu().numpy()

        for m in modes:
            for z in normalize:
                d_pair = dist_(pairs[:, 0], pairs[:, 1], m, z) if len(pairs) else np.zeros(0)
                d_refs = (np.stack([dist_(pairs[:, 0], np.full(len(pairs), r), m, z) for r in refs], 1)
                          if len(pairs) else np.zeros((0, len(refs))))
                d_stain = (np.stack([dist_(stains[:, 0], stains[:, 1], m, z),
                                     dist_(stains[:, 0], stains[:, 2], m, z)], 1)
                           if len(stains) else np.zeros((0, 2)))
                for r in dist.folder_passes(d_pair, d_refs, d_stain, folder):
                    rows.append({"backbone": label, "mode": m, "normalize": z, "source": str(folder_path), **r})
    return pd.DataFrame(rows)


def flaw_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Pass rate per backbone × mode × normalisation × challenge group, and over all challenges."""
    keys = ["backbone", "mode", "normalize"]
    by_group = table.groupby(keys + ["group"], sort=False)["passed"].agg(["mean", "size"]).reset_index()
    overall = table.groupby(keys, sort=False)["passed"].agg(["mean", "size"]).reset_index().assign(group="all")
    out = pd.concat([by_group, overall], ignore_index=True).rename(columns={"mean": "pass_rate", "size": "n"})
    return out


# ------------------------------------------------------------------------------------------------ adaptation

def distortion_channels(cache_path: str | None, dataset_path: str, *, mode: str = "spatial", normalize: bool = True,
                        norm_order: str = "after", combine: str = "concat", metric: DPS | None = None,
                        batch_size: int = 64, device: torch.device | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """``s[i, k, j, C]`` comparing reference i with draw k of its distortion j (all taps concatenated), and each
    reference's split code; from the cached features of the distortion set, or (``metric`` given, no cache)
    from the metric's features of its images."""
    data = ImageDataset(dataset_path)
    draws, split = distortion_blocks(data)
    nd = len(dist.DISTORTIONS)
    k = 1 + nd * draws
    n = len(data) // k
    setting = (mode, normalize, norm_order, combine)
    per = max(1, 64 // k) if metric is None else max(1, batch_size // k)
    if metric is None:
        cache = FeatureCache(cache_path, expect={"dataset_fingerprint": data.fingerprint})
        taps = cache.taps
    else:
        taps = metric.taps
        metric = metric.to(device or torch.device("cpu"))
    parts: dict[str, list[torch.Tensor]] = {t: [] for t in taps}
    with torch.inference_mode():
        for start in range(0, n, per):
            stop = min(start + per, n)
            if metric is None:
                feats = {t: cache.load(t, slice(start * k, stop * k)) for t in taps}
            else:
                feats = metric.features(data.batch(slice(start * k, stop * k)).to(next(iter(metric.buffers())).device))
            for t in taps:
                f = feats[t].float().view(stop - start, k, *feats[t].shape[1:])
                c = torch.stack([channel_distances(f[:, 0], f[:, j], *setting) for j in range(1, k)], 1).cpu()
                parts[t].append(c.view(stop - start, draws, nd, -1))
    return torch.cat([torch.cat(parts[t]) for t in taps], 3), split


def distortion_blocks(data: ImageDataset) -> tuple[int, np.ndarray]:
    """(draws, split per reference: 0 train, 1 test, 2 other) of a distortion set, whose rows are checked to
    be blocks of (original, draws x the six distortions)."""
    draws = int(data.attrs.get("draws", 1))
    codes, ref = data.meta("distortion"), data.meta("ref")
    nd = len(dist.DISTORTIONS)
    k = 1 + nd * draws
    block = np.array([-1, *list(range(nd)) * draws])
    if len(data) % k or not (codes.reshape(-1, k) == block).all():
        raise ValueError(f"{data.path}: rows are not blocks of (original, {draws} x "
                         f"({', '.join(dist.DISTORTIONS)}))")
    codes = np.asarray(data._h5()["split"][...])[data.rows][ref.reshape(-1, k)[:, 0]]
    names = np.array(data.split_names)[codes]
    return draws, np.where(names == "train", 0, np.where(names == "test", 1, 2))


def context_labels(context: Sequence[int], pairs: np.ndarray) -> np.ndarray:
    """1 where the second distortion of a pair ranks earlier (is less disruptive, so closer) in ``context``."""
    rank = np.empty(len(context), int)
    rank[list(context)] = np.arange(len(context))
    return (rank[pairs[:, 1]] < rank[pairs[:, 0]]).astype(np.float32)


def sample_contexts(n: int, seed: int) -> list[tuple[int, ...]]:
    """``n`` distinct random orderings of the six distortions (all 720 when n ≥ 720)."""
    perms = list(itertools.permutations(range(len(dist.DISTORTIONS))))
    rng = seeds.rng(seed, "similarity.adaptation_contexts")
    pick = rng.permutation(len(perms))[:min(n, len(perms))]
    return [perms[i] for i in pick]


def fit_split(split: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, validation, test) reference indices: train images (split 0) permuted with the seed, the first
    ``val_fraction`` of them held out for validation; test = split 1 (held-out photos)."""
    train_idx = np.flatnonzero(split == 0)
    test_idx = np.flatnonzero(split == 1)
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise ValueError("the distortion set needs images of both splits (train photos and held-out test photos)")
    perm = seeds.rng(seed, "similarity.adaptation_split").permutation(train_idx)
    n_val = round(val_fraction * len(perm))
    return perm[n_val:], perm[:n_val], test_idx


PAIRS = np.array(list(itertools.combinations(range(len(dist.DISTORTIONS)), 2)))


def _pair_rows(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, 6, C)`` comparisons of n references -> every pair of distortions of every reference, ``(15 n, C)``."""
    n_chan = s.shape[-1]
    return s[:, PAIRS[:, 0]].reshape(-1, n_chan), s[:, PAIRS[:, 1]].reshape(-1, n_chan)


def _context_row(ci: int, contexts: Sequence[tuple[int, ...]], w: torch.Tensor, base: Mapping[str, Any],
                 adapted: Mapping[str, Any], backbone: str, history: Sequence[Mapping[str, float]] = ()
                 ) -> dict[str, Any]:
    """One context's scores. ``base`` / ``adapted``: ``{"test": (s0, s1), "val": (s0, s1) or None, "retained":
    {...}}``, the comparisons of the baseline network (scored uncalibrated) and of the adapted one (scored with
    ``w``); for ``lin`` both are the frozen network's."""
    names = ["<".join(dist.DISTORTIONS[k] for k in c) for c in contexts]
    n_test = len(base["test"][0]) // len(PAIRS)
    labels = [np.tile(context_labels(c, PAIRS), n_test) for c in contexts]
    b_test = (_dist(base["test"][0], None), _dist(base["test"][1], None))
    a_test = (_dist(adapted["test"][0], w), _dist(adapted["test"][1], w))
    row = {"backbone": backbone, "context": names[ci], "context_index": ci,
           "baseline": two_afc(*b_test, labels[ci]), "adapted": two_afc(*a_test, labels[ci])}
    if base.get("val") is not None:
        val_lab = np.tile(context_labels(contexts[ci], PAIRS), len(base["val"][0]) // len(PAIRS))
        row["val_baseline"] = two_afc(_dist(base["val"][0], None), _dist(base["val"][1], None), val_lab)
        row["val_adapted"] = two_afc(_dist(adapted["val"][0], w), _dist(adapted["val"][1], w), val_lab)
    others = [j for j in range(len(contexts)) if j != ci]
    if others:
        row["other_contexts_baseline"] = float(np.mean([two_afc(*b_test, labels[j]) for j in others]))
        row["other_contexts_adapted"] = float(np.mean([two_afc(*a_test, labels[j]) for j in others]))
    for name in base.get("retained") or {}:
        for kind, tensors, weights_ in (("baseline", base["retained"][name], None),
                                        ("adapted", adapted["retained"][name], w)):
            if len(tensors) == 5:
                r0, r1, judge, category, cat_names = tensors
                cat = np.asarray(category)
                per = {}
                for c_i, c_name in enumerate(cat_names):
                    sel = torch.from_numpy(cat == c_i)
                    if sel.any():
                        per[c_name] = two_afc(_dist(r0[sel], weights_), _dist(r1[sel], weights_), judge[sel])
                        row[f"{name}[{c_name}]_{kind}"] = per[c_name]
                row[f"{name}_{kind}"] = float(np.mean(list(per.values())))
            elif len(tensors) == 3:
                r0, r1, judge = tensors
                row[f"{name}_{kind}"] = two_afc(_dist(r0, weights_), _dist(r1, weights_), judge)
            else:
                rs, same = tensors
                row[f"{name}_{kind}"] = jnd_average_precision(_dist(rs, weights_), same)
    row["improved"] = row["adapted"] > row["baseline"]
    if history:  # the training loss of the first and the last epoch
        row["train_loss_first"], row["train_loss_last"] = history[0]["loss"], history[-1]["loss"]
    return row


def _fresh_pairs(n: int, n_dist: int, context: Sequence[int], gen: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """One random ordered pair of distortions per image (the first two of a random permutation, as the authors'
    AugmentRankingDataset) and its label: 1 = p1 judged closer = its distortion ranks earlier in the context."""
    rank = np.empty(n_dist, int)
    rank[list(context)] = np.arange(n_dist)
    choice = torch.stack([torch.randperm(n_dist, generator=gen)[:2] for _ in range(n)])
    lab = torch.from_numpy((rank[choice[:, 1].numpy()] < rank[choice[:, 0].numpy()]).astype(np.float32))
    return choice, lab


def adapt_contexts(s: torch.Tensor, split: np.ndarray, *, options: Mapping[str, Any], seed: int,
                   retained: Mapping[str, tuple[torch.Tensor, ...]] | None = None, backbone: str = "",
                   checkpoint: str | None = None, fingerprint: Mapping[str, Any] | None = None,
                   progress: bool = False, groups: Sequence[int] | None = None) -> pd.DataFrame:
    """Train per-channel scalars for each context and score them against the uncalibrated baseline (the ``lin``
    variant on precomputed comparisons, dropout on whole channel terms).

    ``s``: ``(n_refs, 6, C)`` distortion comparisons; ``split`` 0 = train (80 % fit, 20 % validation), 1 = test
    (held-out photos), anything else unused. ``retained``: ``{name: (s0, s1, judge)}`` or ``{name: (s0, s1, judge,
    category, category_names)}`` 2AFC sets, or ``{name: (s, same)}`` JND sets, scored with the adapted and the
    baseline weights (the distortion-strength monotonicity set; BAPPS). A 2AFC set with categories is scored per
    category (BAPPS: per subsplit, as the authors' augmentations.py tests each val subsplit on its own):
    columns ``{name}[{category}]_…``, and ``{name}_…`` is their unweighted mean. ``groups``: channels per tap
    (the default init draws one 1x1 convolution per tap).
    Resumes from ``checkpoint`` (results of the contexts done so far).
    """
    if s.dim() == 3:  # one draw
        s = s.unsqueeze(1)
    n_draws, n_dist, n_chan = s.shape[1:]
    pairs = PAIRS
    fresh = options.get("draws", "fixed") == "fresh"
    fit_idx, val_idx, test_idx = fit_split(split, options["val_fraction"], seed)

    def fresh_epochs(context, seed_):
        """Per epoch, per training image, one random ordered pair of distortions at a fresh draw of their
        parameters (draw e mod K)."""
        fit = torch.from_numpy(fit_idx)

        def resample(epoch, gen):
            choice, lab = _fresh_pairs(len(fit_idx), n_dist, context, gen)
            k = epoch % n_draws
            return s[fit, k, choice[:, 0]], s[fit, k, choice[:, 1]], lab
        return resample

    fit0, fit1 = _pair_rows(s[fit_idx, 0])
    scored = {"test": _pair_rows(s[test_idx, 0]), "val": _pair_rows(s[val_idx, 0]) if len(val_idx) else None,
              "retained": retained or {}}
    contexts = sample_contexts(options["contexts"], seed)
    fp = dict(fingerprint or {})  # the contexts follow from the seed and options.contexts
    weights: list[torch.Tensor] = []
    histories: list[list[dict[str, float]]] = []
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint, fp)
        if ckpt is not None:
            weights = list(ckpt["weights"])
            histories = list(ckpt.get("histories", [[] for _ in weights]))
            log.info("resuming adaptation after %d of %d contexts", len(weights), len(contexts))
    for ci in tqdm(range(len(weights), len(contexts)), desc=f"adapt {backbone}", disable=not progress,
                   initial=len(weights), total=len(contexts)):
        lab = torch.from_numpy(np.tile(context_labels(contexts[ci], pairs), len(fit_idx)))
        w, hist = train_channel_weights(fit0, fit1, lab, epochs=options["epochs"], decay_epochs=options["decay_epochs"],
                                     lr=options["lr"], betas=(options["beta1"], 0.999),
                                     batch_size=options["batch_size"], dropout=options["dropout"],
                                     boost=options["boost"], seed=seed + ci, init=options.get("init", "default"),
                                     groups=groups, dropout_on="channels",
                                     resample=fresh_epochs(contexts[ci], seed + ci) if fresh else None)
        weights.append(w)
        histories.append(hist)
        if checkpoint is not None:
            save_checkpoint(checkpoint, fp, weights=weights, histories=histories)
    return pd.DataFrame([_context_row(ci, contexts, w, scored, scored, backbone, h)
                         for ci, (w, h) in enumerate(zip(weights, histories))])


VARIANTS = ("lin", "tune", "scratch")
# lin shares each epoch's frozen features of the fitting images among all contexts when they take at most this
# much memory (the embedded default: ~0.2 GB); larger sets run the frozen network on every batch of every context.
LOCKSTEP_BYTES = 4 * 2 ** 30


def block_images(data: ImageDataset, refs: np.ndarray, draws: Sequence[int] = (0,)) -> torch.Tensor:
    """uint8 ``(len(refs), 1 + 6 len(draws), H, W, 3)``: each reference's original and its six distortions at
    each of ``draws`` (the set is stored as blocks of 1 + 6 K rows: the original, then draw 0, 1, ...)."""
    nd = len(dist.DISTORTIONS)
    k = 1 + nd * int(data.attrs.get("draws", 1))
    within = np.array([0, *(1 + nd * d + j for d in draws for j in range(nd))])
    rows = (np.asarray(refs, np.int64)[:, None] * k + within[None]).reshape(-1)
    arr = read_rows(data._h5()["images"], data._select(rows))
    return torch.from_numpy(arr).view(len(refs), len(within), *arr.shape[1:])


class _FitImages:
    """The fitting images' blocks by draw: all draws read once when they take at most ``budget`` bytes (the
    embedded set), else the draw asked for, read on demand (the paper's STL-10 pool)."""

    def __init__(self, data: ImageDataset, refs: np.ndarray, n_draws: int, budget: int = 2 ** 31):
        self.data, self.refs, self.n_draws = data, refs, n_draws
        h, w = data.image_shape[:2]
        size = len(refs) * (1 + len(dist.DISTORTIONS) * n_draws) * h * w * 3
        self.all = block_images(data, refs, range(n_draws)) if size <= budget else None
        self._last: tuple[int, torch.Tensor] | None = None

    def draw(self, k: int) -> torch.Tensor:
        """uint8 ``(n, 7, H, W, 3)``: the original and the six distortions of draw ``k``."""
        nd = len(dist.DISTORTIONS)
        if self.all is not None:
            return self.all[:, [0, *range(1 + nd * k, 1 + nd * (k + 1))]]
        if self._last is None or self._last[0] != k:
            self._last = (k, block_images(self.data, self.refs, [k]))
        return self._last[1]


def _images(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 ``(..., H, W, 3)`` -> float ``(N, 3, H, W)`` in [0, 1] on ``device``."""
    return x.reshape(-1, *x.shape[-3:]).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def block_comparisons(metric: DPS, blocks: torch.Tensor, setting: tuple[str, bool, str, str], *, batch_size: int,
                      device: torch.device) -> torch.Tensor:
    """``(n, 6, C)`` comparisons of each block's original with its six distortions (draw 0 of ``blocks`` from
    :func:`block_images`), all taps concatenated, through ``metric``'s features (no gradients)."""
    nd = len(dist.DISTORTIONS)
    per = max(1, batch_size // (1 + nd))
    out = []
    with torch.no_grad():
        for sl in _batches(len(blocks), per):
            f = metric.features(_images(blocks[sl, :1 + nd], device))
            m = sl.stop - sl.start
            parts = []
            for t in metric.taps:
                ft = f[t].float().view(m, 1 + nd, *f[t].shape[1:])
                parts.append(torch.stack([channel_distances(ft[:, 0], ft[:, j], *setting) for j in range(1, 1 + nd)],
                                         1))
            out.append(torch.cat(parts, 2).cpu())
    return torch.cat(out)


def retained_sets(metric: DPS, two_afc_path: str | None, jnd_path: str | None,
                  settings: Sequence[tuple[str, bool, str, str]], *, batch_size: int, device: torch.device,
                  progress: bool = False) -> dict[tuple, dict[str, tuple]]:
    """The retained sets' comparisons per setting (2AFC val with its categories, JND), one forward pass each."""
    out: dict[tuple, dict[str, tuple]] = {st: {} for st in settings}
    if two_afc_path:
        data = TwoAFCData(two_afc_path)
        got = pair_channels(metric, data, batch_size=batch_size, device=device, progress=progress, settings=settings)
        cats = data.category.numpy()
        for st in settings:
            out[st]["two_afc_val"] = (*got[st], data.judge, cats, list(data.categories))
    if jnd_path:
        data = JNDData(jnd_path)
        got = pair_channels(metric, data, batch_size=batch_size, device=device, progress=progress, settings=settings)
        for st in settings:
            out[st]["jnd"] = (got[st][0], data.same)
    return out


def adapt_in_loop(metric: DPS, data: ImageDataset, *, variant: str, setting: tuple[str, bool, str, str],
                  entry: Mapping[str, Any], options: Mapping[str, Any], seed: int, base: Mapping[str, Any],
                  retained_paths: tuple[str | None, str | None] = (None, None), backbone: str = "",
                  batch_size: int = 64, device: torch.device | None = None, allow_download: bool = False,
                  checkpoint: str | None = None, fingerprint: Mapping[str, Any] | None = None,
                  progress: bool = False) -> pd.DataFrame:
    """The adaptation with the backbone in the training loop, as the authors' Learner: every batch runs the images
    (each training image's fresh random pair at draw e mod K of the distortion set, :func:`_fresh_pairs`) through
    the network, and dropout drops single elements of the N x C x H x W difference maps before the 1x1
    weights (the calibration's :func:`percept.similarity.calibration._channel_means`).

    ``variant`` (Pihlgren, Sandin & Liwicki; augmentations.py ``--variants``):

    - ``lin``: the network frozen (``metric``), only the per-channel scalars and G trained. Its features do not
      change, so the contexts train in lockstep on each epoch's features of the fitting images, computed once
      (one forward pass per image and draw, not one per context) while they fit in :data:`LOCKSTEP_BYTES`;
    - ``tune``: the network trained with them, from the entry's weights (ImageNet: the authors' pretrained);
    - ``scratch``: the network trained with them from a seeded random initialisation (``seed + 1 + context``:
      never the baseline's own random weights).

    ``tune`` / ``scratch`` run the network in train mode (batch statistics, as the authors' Lightning training)
    with one forward pass per image role (ref, p0, p1: as the authors' two metric calls, batch norm sees one
    role at a time), are scored in eval mode, and adapt only the first ``options["network_contexts"]`` contexts
    (null: all). ``base``: the frozen network's scored comparisons (``{"test", "val", "retained"}``), the baseline
    of every variant and the adapted comparisons of ``lin``. Rows as :func:`adapt_contexts`; ``tune`` /
    ``scratch`` resume per context from ``checkpoint``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
    with torch.random.fork_rng(devices=[]):
        return _adapt_in_loop(metric, data, variant=variant, setting=setting, entry=entry, options=options, seed=seed,
                              base=base, retained_paths=retained_paths, backbone=backbone, batch_size=batch_size,
                              device=device, allow_download=allow_download, checkpoint=checkpoint,
                              fingerprint=fingerprint, progress=progress)


def _adapt_in_loop(metric: DPS, data: ImageDataset, *, variant: str, setting: tuple[str, bool, str, str],
                   entry: Mapping[str, Any], options: Mapping[str, Any], seed: int, base: Mapping[str, Any],
                   retained_paths: tuple[str | None, str | None], backbone: str, batch_size: int,
                   device: torch.device | None, allow_download: bool, checkpoint: str | None,
                   fingerprint: Mapping[str, Any] | None, progress: bool) -> pd.DataFrame:
    dev = device or torch.device("cpu")
    metric = metric.to(dev)
    nd = len(dist.DISTORTIONS)
    n_draws, split = distortion_blocks(data)
    fit_idx, val_idx, test_idx = fit_split(split, options["val_fraction"], seed)
    fit = _FitImages(data, fit_idx, n_draws)
    n_fit = len(fit_idx)
    contexts = sample_contexts(options["contexts"], seed)
    n_ctx = len(contexts) if variant == "lin" else min(len(contexts), options.get("network_contexts") or len(contexts))
    groups = [mode_width(setting[0]) * c for c in tap_channels(metric)]
    common = dict(epochs=options["epochs"], decay_epochs=options["decay_epochs"], lr=options["lr"],
                  betas=(options["beta1"], 0.999), batch_size=options["batch_size"], dropout=options["dropout"],
                  boost=options["boost"], init=options.get("init", "default"), groups=groups, dropout_on="elements")
    total = options["epochs"] + options["decay_epochs"]

    with torch.no_grad():
        probe = metric.features(_images(fit.draw(0)[:1, :1], dev))
    lockstep = variant == "lin" and n_fit * (1 + nd) * 4 * sum(v.numel() for v in probe.values()) <= LOCKSTEP_BYTES
    if lockstep:
        shared: dict[str, dict[str, torch.Tensor]] = {}

        def resample_for(ci: int):
            def resample(epoch, gen):
                choice, lab = _fresh_pairs(n_fit, nd, contexts[ci], gen)

                def maps_of(b):  # a batch's maps from the epoch's shared features (no per-epoch map of all)
                    f = shared["f"]
                    return tuple([channel_maps(f[t][b, 0], f[t][b, 1 + choice[b, side]], *setting)
                                  for t in metric.taps] for side in (0, 1))
                return maps_of, None, lab
            return resample

        trainers = [iter_channel_weights(None, None, None, seed=seed + ci, resample=resample_for(ci), **common)
                    for ci in range(n_ctx)]
        weights, histories = [None] * n_ctx, [[] for _ in range(n_ctx)]
        torch.manual_seed(seed)  # element dropout draws from the global generator (forked by adapt_in_loop)
        for epoch in tqdm(range(max(total, 1)), desc=f"adapt lin {backbone}", disable=not progress):
            if total:
                k = epoch % n_draws
                feats: dict[str, list[torch.Tensor]] = {t: [] for t in metric.taps}
                with torch.no_grad():
                    for sl in _batches(n_fit, max(1, batch_size // (1 + nd))):
                        f = metric.features(_images(fit.draw(k)[sl], dev))
                        for t in metric.taps:
                            feats[t].append(f[t].float().view(sl.stop - sl.start, 1 + nd, *f[t].shape[1:]))
                shared["f"] = {t: torch.cat(v) for t, v in feats.items()}
            for ci, trainer in enumerate(trainers):
                w, hist = next(trainer)
                weights[ci], histories[ci] = w.detach().clone(), list(hist)
        return pd.DataFrame([_context_row(ci, contexts, w, base, base, backbone, h)
                             for ci, (w, h) in enumerate(zip(weights, histories))])

    eval_blocks = block_images(data, np.concatenate([val_idx, test_idx]))
    fp = dict(fingerprint or {})
    rows: list[dict[str, Any]] = []
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint, fp)
        if ckpt is not None:
            rows = list(ckpt["rows"])
            log.info("resuming %s adaptation after %d of %d contexts", variant, len(rows), n_ctx)
    for ci in tqdm(range(len(rows), n_ctx), desc=f"adapt {variant} {backbone}", disable=not progress,
                   initial=len(rows), total=n_ctx):
        if variant == "lin":  # too large to share one epoch's features: the frozen network on every batch
            net, params = metric, []
        else:
            start = NetworkSpec.from_config(entry).weights if variant == "tune" else "random"
            net = DPS(entry["backbone"], weights=start,
                      taps=metric.taps, mode="spatial", normalize=True, scaling="backbone",
                      seed=seed if variant == "tune" else seed + 1 + ci, allow_download=allow_download).to(dev)
            params = list(net.extractor.model.parameters())
            for p in params:
                p.requires_grad_(True)
        state: dict[str, Any] = {}

        def pair_maps_of(b: torch.Tensor, net=net):
            imgs, ch = fit.draw(state["k"])[b], state["choice"][b]
            nb = torch.arange(len(b))
            roles = [imgs[:, 0], imgs[nb, 1 + ch[:, 0]], imgs[nb, 1 + ch[:, 1]]]
            if variant == "lin":
                with torch.no_grad():
                    both = net.features(_images(torch.stack(roles), dev))
                fr, f0, f1 = ({t: v[k * len(b):(k + 1) * len(b)] for t, v in both.items()} for k in range(3))
            else:
                net.extractor.model.train()
                fr, f0, f1 = (net.features(_images(x, dev)) for x in roles)
            return ([channel_maps(fr[t], f0[t], *setting) for t in net.taps],
                    [channel_maps(fr[t], f1[t], *setting) for t in net.taps])

        def resample(epoch, gen, ci=ci):
            state["choice"], lab = _fresh_pairs(n_fit, nd, contexts[ci], gen)
            state["k"] = epoch % n_draws
            return pair_maps_of, None, lab

        # element dropout: the same draws whether resumed or not
        torch.manual_seed(seeds.torch_seed(seed, "similarity.adaptation_dropout", ci))
        w, hist = train_channel_weights(None, None, None, seed=seed + ci, resample=resample, params=params,
                                        param_lr=options.get("network_lr"), **common)
        net.eval()
        if variant == "lin":
            adapted = base
        else:
            s_eval = block_comparisons(net, eval_blocks, setting, batch_size=batch_size, device=dev)
            adapted = {"test": _pair_rows(s_eval[len(val_idx):]),
                       "val": _pair_rows(s_eval[:len(val_idx)]) if len(val_idx) else None,
                       "retained": retained_sets(net, *retained_paths, [setting], batch_size=batch_size,
                                                 device=dev)[setting]}
        rows.append(_context_row(ci, contexts, w, base, adapted, backbone, hist))
        if checkpoint is not None:
            save_checkpoint(checkpoint, fp, rows=rows)
    return pd.DataFrame(rows)


def adapt_backbone(cache_path: str | None, dataset_path: str, entry: Mapping[str, Any], *, two_afc_path: str | None,
                   jnd_path: str | None, options: Mapping[str, Any], seed: int, device: str, batch_size: int,
                   allow_download: bool = False, checkpoint: str | None = None, progress: bool = False
                   ) -> pd.DataFrame:
    """The adaptation experiment for one backbone, each of ``options["modes"]`` (the authors' metric_fun) and each
    of ``options["variants"]`` (their ``lin``, ``tune``, ``scratch``); rows carry ``mode`` and ``variant``.

    The retained sets (2AFC val: the distortion-strength monotonicity set offline, BAPPS in the paper config;
    JND) go through one forward pass each. ``lin`` with ``dropout_on: elements`` (the authors' dropout on single
    elements of the difference maps) and ``tune`` / ``scratch`` run the backbone in the loop
    (:func:`adapt_in_loop`); ``lin`` with ``dropout_on: channels`` (or no dropout) trains on precomputed
    comparisons of the distortion set (:func:`adapt_contexts`: from its cached features, or straight from the
    backbone when ``cache_path`` is None). Checkpoints are removed when done."""
    network = NetworkSpec.from_config(entry)
    weights, taps = network.weights, network.default_taps()
    modes = list(options.get("modes", ["spatial"]))
    variants = list(options.get("variants", ["lin"]))
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"adaptation variants {unknown} unknown; known: {VARIANTS}")
    in_loop = options.get("dropout_on", "elements") == "elements" and options["dropout"] > 0
    if options.get("draws", "fresh") != "fresh" and (in_loop or set(variants) - {"lin"}):
        raise ValueError("adaptation.draws: fixed (one cached draw, all 15 pairs every epoch) is the earlier scheme of "
                         "the lin variant with dropout_on: channels; the backbone-in-the-loop training (dropout_on: "
                         "elements, variants tune / scratch) draws fresh pairs: set draws: fresh")
    norm_order = options.get("norm_order", "after")
    settings = [(m, True, norm_order, "concat") for m in modes]
    metric = DPS(network.backbone, weights=weights, taps=taps, mode="spatial", normalize=True, scaling="backbone",
                 seed=seed, allow_download=allow_download)
    dev = resolve_device(device)
    cache_fp = None
    if cache_path is not None:
        cache = FeatureCache(cache_path)
        if cache.taps != metric.taps:
            raise ValueError(f"{cache_path}: cached taps {cache.taps} differ from the entry's {metric.taps}")
        cache_fp = cache.meta.get("fingerprint")
    retained_all = retained_sets(metric, two_afc_path, jnd_path, settings, batch_size=batch_size, device=dev,
                                 progress=progress)
    label = network.backbone + ("" if weights == "imagenet" else f" ({weights})")
    data = ImageDataset(dataset_path)
    tables = []
    for st in settings:
        mode = st[0]
        base = None
        for variant in variants:
            fp = {"backbone": network.backbone, "weights": weights, "taps": list(metric.taps), "seed": seed,
                  "mode": mode, "variant": variant, "options": {k: v for k, v in options.items() if k != "backbones"},
                  "cache": cache_fp, "dataset": data.fingerprint}
            many = len(settings) > 1 or len(variants) > 1
            ckpt = None if checkpoint is None else f"{checkpoint}.{mode}.{variant}" if many else checkpoint
            groups = [mode_width(mode) * c for c in tap_channels(metric)]
            if variant == "lin" and not in_loop:
                s, split = distortion_channels(cache_path, dataset_path, mode=mode, norm_order=norm_order,
                                               metric=None if cache_path is not None else metric,
                                               batch_size=batch_size, device=dev)
                table = adapt_contexts(s, split, options=options, seed=seed, retained=retained_all[st],
                                       backbone=label, checkpoint=ckpt, fingerprint=fp, progress=progress,
                                       groups=groups)
            else:
                if base is None:
                    _, split = distortion_blocks(data)
                    _, val_idx, test_idx = fit_split(split, options["val_fraction"], seed)
                    s_eval = block_comparisons(metric, block_images(data, np.concatenate([val_idx, test_idx])),
                                               st, batch_size=batch_size, device=dev)
                    base = {"test": _pair_rows(s_eval[len(val_idx):]),
                            "val": _pair_rows(s_eval[:len(val_idx)]) if len(val_idx) else None,
                            "retained": retained_all[st]}
                table = adapt_in_loop(metric, data, variant=variant, setting=st, entry=entry, options=options,
                                      seed=seed, base=base, retained_paths=(two_afc_path, jnd_path), backbone=label,
                                      batch_size=batch_size, device=dev, allow_download=allow_download,
                                      checkpoint=ckpt, fingerprint=fp, progress=progress)
            tables.append(table.assign(mode=mode, variant=variant))
            if ckpt is not None:
                Path(ckpt).unlink(missing_ok=True)
    return pd.concat(tables, ignore_index=True)


__all__ = ["MODES", "VARIANTS", "adapt_backbone", "adapt_contexts", "adapt_in_loop", "build_metric", "calibrate",
           "distortion_channels", "evaluate_flaws", "evaluate_two_afc", "flaw_summary", "pair_channels",
           "sample_contexts"]
