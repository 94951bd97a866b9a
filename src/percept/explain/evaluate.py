"""Run every saliency method on the same held-out images and score them with one metrics module.

Maps are stored in ``kind="saliency"`` HDF5 files: ``rows`` (dataset file rows of the explained images),
``maps/<setting id>`` float16 ``(n_images, K, H, W)`` for every class, with the setting's components, model
calls and seconds as JSON attributes. ``score_maps`` turns them into the tidy table (one row per image ×
explained class × method × setting), ``summarise`` into means per method and setting.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from percept import seeds
from percept.data.store import ImageDataset
from percept.explain import metrics as M
from percept.explain.attributor import Attributor, ConstantMap, all_classes, attribute_methods
from percept.explain.perturbation import (
    COMPONENTS,
    PerturbationExplainer,
    SampleBank,
    Setting,
    compatible,
    probabilities,
)
from percept.explain.maps import read_maps, write_maps  # noqa: F401 (re-exported: the stage's map files)

log = logging.getLogger(__name__)
COMPONENT_KEYS = ("sampler", "segmenter", "perturbation", "smoothing", "attribution")


def evaluation_positions(dataset_path: str | Path, n_images: int, seed: int) -> tuple[ImageDataset, np.ndarray]:
    """The explained images: ``n_images`` test-split positions drawn from the stream ``explain.evaluation_images``
    (sorted)."""
    test = ImageDataset(dataset_path, split="test")
    pool = np.arange(len(test))
    if "has_segmentation" in test.meta_keys:  # VOC 2007: only images with a segmentation mask are scored
        pool = pool[test.meta("has_segmentation").astype(bool)]
    n = min(n_images, len(pool))
    return test, np.sort(seeds.rng(seed, "explain.evaluation_images").choice(pool, size=n, replace=False))


def rise_settings(opts: Mapping[str, Any]) -> list[Setting]:
    """The base setting and, per component, each listed alternative (``one_at_a_time``), or every
    combination of base and alternatives (``full``)."""
    common = {"n_masks": opts["n_masks"], "grid": opts["grid"], "p": opts["p"], "keep": opts["keep"],
              "gaussian_sigma": opts["gaussian_sigma"], "blur_sigma": opts["blur_sigma"],
              "pda_mode": opts["pda"]["mode"], "pda_divide_weight": opts["pda"]["divide_weight"],
              "pda_laplace": (opts["pda"]["laplace_classes"], opts["pda"]["laplace_train"]),
              "add_all": opts["add_all"], "add_none": opts["add_none"]}
    base = {k: opts["base"][k] for k in COMPONENT_KEYS}
    if opts["design"] == "full":
        choices = [[base[k], *opts["vary"].get(k, [])] for k in COMPONENT_KEYS]
        combos = [dict(zip(COMPONENT_KEYS, c)) for c in itertools.product(*choices)]
    else:
        combos = [base] + [{**base, k: v} for k in COMPONENT_KEYS for v in opts["vary"].get(k, []) if v != base[k]]
    out = []
    for c in combos:
        st = Setting(**c, **common)
        if st not in out:
            out.append(st)
    return out


def base_calculator(calculators: Sequence[str]) -> str:
    """The base setting's calculator: RISE's weighted mean when it is computed, else the first listed."""
    return "rise" if "rise" in calculators else calculators[0]


def setting_id(method: str, components: Mapping[str, Any] | None = None) -> str:
    if not components:
        return method
    return method + ":" + "-".join(str(components[k]) for k in COMPONENTS)


def run_rise(dataset_path: str, classifier: torch.nn.Module, out_path: str, opts: Mapping[str, Any],
             n_images: int, *, seed: int = 0, device: str | torch.device = "cpu", progress: bool = True) -> dict:
    """Every RISE-component setting × calculator on the evaluation images."""
    test, positions = evaluation_positions(dataset_path, n_images, seed)
    f = probabilities(classifier.to(device).eval())
    bank = SampleBank(seed)
    images = test.batch(positions)
    maps: dict[str, np.ndarray] = {}
    meta: dict[str, dict] = {}
    settings = rise_settings(opts)
    base = {k: opts["base"][k] for k in COMPONENT_KEYS}
    base["calculator"] = base_calculator(opts["calculators"])
    for st in tqdm(settings, desc="RISE settings", disable=not progress):
        explainer = PerturbationExplainer(f, st, bank, batch_size=opts["batch_size"], device=device,
                                          normalisation_mean=classifier.spec.mean)
        calcs = [c for c in opts["calculators"] if compatible(c, st.sampler)]
        if not calcs:
            continue
        out = {c: np.zeros((len(positions), test.num_classes, *images.shape[2:]), np.float32) for c in calcs}
        t0 = time.perf_counter()
        calls, segs = 0, []
        for i, img in enumerate(images):  # one image, every calculator: one set of forward passes for all
            att = explainer.attribute_calculators(img, calcs)
            calls += att.model_calls
            segs.append(att.n_segments)
            for c, m in att.maps.items():
                out[c][i] = m.numpy()
        seconds = time.perf_counter() - t0
        for c, arr in out.items():
            comp = {"sampler": st.sampler, "segmenter": st.segmenter, "perturbation": st.perturbation,
                    "smoothing": st.smoothing, "attribution": st.attribution, "calculator": c}
            key = setting_id("rise", comp)
            maps[key] = arr
            meta[key] = {"method": "rise", **comp, "base": comp == base, "n_masks": st.n_masks, "model_calls": calls,
                         "seconds": seconds, "mean_segments": float(np.mean(segs))}
        log.info("%s: %d model calls in %.1fs (%.0f img/s), %.1f segments", st.key(), calls, seconds,
                 calls / max(seconds, 1e-9), np.mean(segs))
    write_maps(out_path, test.rows[positions], maps, meta, {"method": "rise", "dataset": test.name,
                                                              "dataset_fingerprint": test.fingerprint})
    return meta


def run_baselines(dataset_path: str, classifier: torch.nn.Module, explainer: torch.nn.Module | None,
                  channel_maps: Attributor | None, out_path: str, n_images: int, *, seed: int = 0,
                  device: str | torch.device = "cpu", batch_size: int = 16) -> dict:
    """Grad-CAM, the trained explainer, the relevant-channel heatmaps and a constant map on the evaluation
    images, every class of each, through the one interface (:func:`attributor.attribute_methods`)."""
    from percept.explain.gradcam import GradCAM

    test, positions = evaluation_positions(dataset_path, n_images, seed)
    images = test.batch(positions)
    methods: dict[str, Attributor] = {"gradcam": GradCAM(classifier.to(device).eval(), classifier.gradcam_layer)}
    if explainer is not None:
        methods["explainer"] = explainer.to(device).eval()
    # the floor every method must beat on the ground-truth metrics: a constant map (its maximum the first pixel)
    methods["constant"] = ConstantMap()
    if channel_maps is not None:
        methods["channels"] = channel_maps
    done = attribute_methods(methods, images, all_classes(len(images), test.num_classes), batch_size=batch_size,
                             device=device)
    maps = {name: arr for name, (arr, _) in done.items()}
    meta = {name: {"method": name, "seconds": seconds} for name, (_, seconds) in done.items()}
    write_maps(out_path, test.rows[positions], maps, meta, {"method": "baselines", "dataset": test.name,
                                                              "dataset_fingerprint": test.fingerprint})
    return meta


def score_image(f: torch.nn.Module, image: torch.Tensor, maps: Mapping[int, torch.Tensor], labels: torch.Tensor,
                masks: torch.Tensor | None, opts: Mapping[str, Any], fill: torch.Tensor | None = None,
                logits: torch.Tensor | None = None, anchors: torch.Tensor | None = None) -> list[dict[str, Any]]:
    """One method's maps of one image scored: a row per class :func:`metrics.explained_classes` picks (the
    ground-truth classes, plus the top-1 class under ``target: top1``), with ``class``, ``present``, ``top1``,
    ``causal`` and the metrics that apply to it: the ground-truth ones where ``present``, deletion, insertion
    and SRG where ``causal`` (the others absent, empty in the table). ``maps[c]`` ``(H, W)``; ``masks``
    ``(K, H, W)``; ``logits`` of the unperturbed image (computed when None); ``anchors`` the logits of
    :func:`image_anchors` (the curves' fixed ends; computed by every :func:`metrics.score_map` call when None)."""
    if logits is None:
        with torch.inference_mode():
            logits = f(image[None])[0]
    rows = []
    for c, kind in M.explained_classes(logits, labels, opts["target"]).items():
        scores = M.score_map(f, image, maps[c], c, masks[c] if (masks is not None and kind["present"]) else None,
                             threshold=opts["threshold"], tolerance=opts["pointing_tolerance"], steps=opts["steps"],
                             blur_sigma=opts["insertion_blur_sigma"], fill=fill, blur=opts["insertion_blur"],
                             output=opts["output"], srg_steps=opts["srg_steps"], srg_colour=opts["srg_colour"],
                             causal=kind["causal"], ground_truth=kind["present"], anchors=anchors)
        rows.append({"class": c, **kind, **scores})
    return rows


def image_anchors(f: torch.nn.Module, image: torch.Tensor, opts: Mapping[str, Any],
                  fill: torch.Tensor | None = None) -> torch.Tensor:
    """Logits ``(4, K)`` of :func:`metrics.anchor_inputs` of one image: the ends of its deletion, insertion and
    SRG curves, the same for every map, computed once per image rather than once per map and class."""
    with torch.inference_mode():
        return f(M.anchor_inputs(image, opts["insertion_blur_sigma"], fill, opts["insertion_blur"],
                                 opts["srg_colour"]))


class BatchedScoring:
    """Many :func:`score_image` calls sharing forward passes: each call is first run against a recorder that
    keeps the images it would send the model (returning zeros), the recorded images of a group of calls go
    through the model in batches of ``batch_size``, and the calls run again against their logits. At the
    miniature's sizes a call sends 8 images and the fixed cost of a forward pass (the weights read again for
    every call) outweighs them; the rows are those of one call at a time (the logits to float rounding)."""

    def __init__(self, f: torch.nn.Module, batch_size: int = 64):
        self.f, self.batch_size = f, batch_size
        self.pending: list[tuple[tuple, dict]] = []
        self.images = 0

    def add(self, *args, **kwargs) -> bool:
        """Queue ``score_image(f, *args, **kwargs)``; True when a batch's worth of images waits (:meth:`flush`)."""
        recorded: list[torch.Tensor] = []

        def record(x: torch.Tensor) -> torch.Tensor:
            recorded.append(x)
            return torch.zeros(len(x), self.num_classes, device=x.device)

        self.num_classes = len(args[2])  # the maps' classes
        score_image(record, *args, **kwargs)
        self.pending.append((args, kwargs, recorded))
        self.images += sum(len(x) for x in recorded)
        return self.images >= self.batch_size

    def flush(self) -> list[list[dict[str, Any]]]:
        """The queued calls' rows, in order."""
        batch = [x for _, _, rec in self.pending for x in rec]
        if not batch:
            return []
        x = torch.cat(batch)
        with torch.inference_mode():
            logits = torch.cat([self.f(x[j:j + self.batch_size]) for j in range(0, len(x), self.batch_size)])
        out, start = [], 0
        for args, kwargs, rec in self.pending:
            sizes = [len(r) for r in rec]
            chunks = list(torch.split(logits[start:start + sum(sizes)], sizes))
            start += sum(sizes)
            out.append(score_image(lambda _x, _c=iter(chunks): next(_c), *args, **kwargs))
        self.pending, self.images = [], 0
        return out


def score_maps(dataset_path: str, classifier: torch.nn.Module, map_paths: Sequence[str], opts: Mapping[str, Any],
               *, classifier_name: str, device: str | torch.device = "cpu", progress: bool = True,
               batch_size: int = 64) -> pd.DataFrame:
    """The tidy table: one row per image × scored class (:func:`score_image`) × method × setting; the model
    sees the images of several maps at once (:class:`BatchedScoring`, ``batch_size`` images a pass)."""
    full = ImageDataset(dataset_path)
    f = classifier.to(device).eval()
    fill = None if opts["fill"] == "black" else torch.tensor(classifier.spec.mean, device=device)
    rows_out = []
    anchors: dict[int, torch.Tensor] = {}  # per dataset row: the curves' fixed ends, shared by every map
    for path in map_paths:
        rows, maps, meta = read_maps(path)
        pos = np.searchsorted(full.rows, rows)
        images = full.batch(pos)
        masks = full.masks(pos)
        labels = full.labels()[pos]
        with torch.inference_mode():  # the unperturbed images' logits pick the top-1 class (evaluation.target)
            logits = torch.cat([f(images[j:j + 32].to(device)).float().cpu() for j in range(0, len(images), 32)])
        scoring, keys = BatchedScoring(f, batch_size), []

        def emit():
            for (key, r), found in zip(keys, scoring.flush()):
                info = meta[key]
                for row in found:
                    rows_out.append({"classifier": classifier_name, "image": int(r), "class": row["class"],
                                     "class_name": full.class_names[row["class"]], "setting": key,
                                     "method": info["method"],
                                     **{k: info.get(k, "") for k in COMPONENTS}, "base": bool(info.get("base")),
                                     "n_masks": info.get("n_masks", ""), **row})
            keys.clear()

        for key in tqdm(sorted(maps), desc=f"scoring {Path(path).name}", disable=not progress):
            for i, r in enumerate(rows):
                if int(r) not in anchors:
                    anchors[int(r)] = image_anchors(f, images[i].to(device), opts, fill)
                sal = {c: torch.from_numpy(m).to(device) for c, m in enumerate(maps[key][i])}
                keys.append((key, r))
                if scoring.add(images[i].to(device), sal, labels[i], masks[i].to(device), opts, fill, logits[i],
                               anchors[int(r)]):
                    emit()
        emit()
    return pd.DataFrame(rows_out)


METRICS = ("iou", "pointing", "mae", "saliency", "deletion", "insertion", "kept_probability", "lif", "mif", "srg",
           "srg_normalised")


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean (and standard error) of every metric per classifier × method × setting, over the rows it applies
    to (``present`` rows for the ground-truth metrics, ``causal`` rows for deletion, insertion and SRG)."""
    keys = ["classifier", "method", "setting", *COMPONENTS, "base"]
    g = scores.fillna({k: "" for k in COMPONENTS}).groupby(keys, sort=False)
    mean = g[list(METRICS)].mean()
    sem = g[list(METRICS)].sem().add_suffix("_sem")
    out = mean.join(sem).join(g.size().rename("n")).reset_index()
    return out

