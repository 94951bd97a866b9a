"""Perturbation explanations as composable parts (RISE, Petsiuk et al. 2018, taken apart as in
"Which parts of RISE matter", the RISE-components paper of Luleå University of Technology).

An explanation is ``sampler × segmenter × perturbation × smoothing × calculator``:

- a **segmenter** splits the image into S segments (``grid`` = RISE's s×s cells, ``slic``, ``felzenszwalb``,
  ``quickshift``, ``watershed`` from scikit-image);
- a **sampler** draws N binary vectors z ∈ {0,1}^S of segments to keep (``bernoulli`` p — RISE; ``fixed``
  count; ``single`` — occlusion of one segment per sample; ``shapley`` — coalition sizes from the Shapley
  kernel);
- **smoothing** turns z into a pixel mask M ∈ [0,1]^{H×W}: ``hard`` segment masks, ``gaussian``-smoothed
  segment masks, or ``rise`` — the original RISE generator for the grid (s×s values upsampled bilinearly to
  (s+1)·cell and cropped at a random offset in [0, cell)); for other segmenters the same idea, a box blur of
  one cell width (what bilinear upsampling does to a cell) and a random shift in [0, cell);
- a **perturbation** fills the removed part: I·M + R·(1−M) with R the image's ``mean`` colour, ``black``,
  a ``blur``red copy or uniform ``noise``;
- a **calculator** turns model outputs f_i = f(perturbed image i) into attributions: ``rise`` — the weighted
  mean Σ f_i M_i / (N·p) (RISE eq. 6); ``difference`` of means, kept minus removed,
  Σ f M / Σ M − Σ f (1−M) / Σ (1−M); ``linear`` regression of f on the per-segment kept fractions
  (LIME-like, ordinary least squares with intercept); ``kernel_shap`` — weighted least squares with the
  Shapley kernel π(z) = (S−1) / (C(S,|z|)·|z|·(S−|z|)) (Lundberg & Lee 2017), the empty and full coalitions
  as (heavily weighted) anchors. ``rise`` and ``difference`` are per pixel on M; the regressions give one
  weight per segment, spread to pixels through the smoothed segment masks (the paper's "pixel attribution").

The samples z (and RISE's shifts) for one (segmenter, sampler, N, seed) are drawn once and reused for every
image and class; pixel masks are rendered one batch at a time, so memory holds one batch of masks whatever N
is; the model sees batches; every calculator is fed by the same forward passes (streaming sums for the
per-pixel ones, the N×S design and N×C outputs for the regressions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLERS = ("bernoulli", "fixed", "single", "shapley")
SEGMENTERS = ("grid", "slic", "felzenszwalb", "quickshift", "watershed")
PERTURBATIONS = ("mean", "black", "blur", "noise")
SMOOTHINGS = ("rise", "hard", "gaussian")
CALCULATORS = ("rise", "difference", "linear", "kernel_shap")
COMPONENTS = ("sampler", "segmenter", "perturbation", "smoothing", "calculator")


# --- segmenters -------------------------------------------------------------------------------------------
def segment(image: np.ndarray, method: str, n_segments: int, options: Mapping[str, Any] | None = None) -> np.ndarray:
    """Segment labels ``(H, W)`` in 0..S−1 of an image ``(H, W, 3)`` in [0, 1].

    ``grid``: n×n cells of side ceil(H/n) (RISE's grid, n = ``n_segments`` cells per side); the scikit-image
    segmenters aim at about n² segments.
    """
    import skimage.segmentation as seg

    h, w = image.shape[:2]
    opts = dict(options or {})
    if method == "grid":
        cell = math.ceil(h / n_segments), math.ceil(w / n_segments)
        rows = np.arange(h) // cell[0]
        cols = np.arange(w) // cell[1]
        return (rows[:, None] * n_segments + cols[None, :]).astype(np.int64)
    target = n_segments * n_segments
    if method == "slic":
        labels = seg.slic(image, n_segments=target, compactness=opts.get("compactness", 10.0), start_label=0,
                          channel_axis=-1)
    elif method == "felzenszwalb":
        scale = opts.get("scale", h * w / target)
        labels = seg.felzenszwalb(image, scale=scale, sigma=opts.get("sigma", 0.8),
                                  min_size=opts.get("min_size", max(4, h * w // (4 * target))))
    elif method == "quickshift":
        labels = seg.quickshift(image.astype(np.float64), kernel_size=opts.get("kernel_size", max(2, h // 24)),
                                max_dist=opts.get("max_dist", h / 6), ratio=opts.get("ratio", 0.5), rng=0)
    elif method == "watershed":
        from skimage.color import rgb2gray
        from skimage.filters import sobel

        labels = seg.watershed(sobel(rgb2gray(image)), markers=target, compactness=opts.get("compactness", 1e-3)) - 1
    else:
        raise ValueError(f"unknown segmenter {method!r}; choose one of {SEGMENTERS}")
    _, labels = np.unique(labels, return_inverse=True)  # consecutive ids
    return labels.reshape(h, w).astype(np.int64)


# --- samplers ---------------------------------------------------------------------------------------------
def shapley_size_weights(s: int) -> np.ndarray:
    """P(|z| = k) ∝ (S−1) / (k (S−k)) for k = 1..S−1 (the Shapley kernel summed over coalitions of size k)."""
    k = np.arange(1, s)
    w = (s - 1) / (k * (s - k))
    return w / w.sum()


def sample(sampler: str, s: int, n: int, rng: np.random.Generator, p: float = 0.5,
           keep: float = 0.5) -> np.ndarray:
    """N×S boolean samples of segments to keep (``single`` ignores ``n`` and returns S samples)."""
    if sampler == "bernoulli":
        return rng.random((n, s)) < p
    if sampler == "fixed":
        k = min(s - 1, max(1, round(keep * s)))
        z = np.zeros((n, s), bool)
        for i in range(n):
            z[i, rng.choice(s, size=k, replace=False)] = True
        return z
    if sampler == "single":
        return ~np.eye(s, dtype=bool)
    if sampler == "shapley":
        sizes = rng.choice(np.arange(1, s), size=n, p=shapley_size_weights(s))
        z = np.zeros((n, s), bool)
        for i, k in enumerate(sizes):
            z[i, rng.choice(s, size=int(k), replace=False)] = True
        return z
    raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")


def sample_log_density(sampler: str, z: np.ndarray, p: float = 0.5) -> np.ndarray:
    """log q(z) of each sample, up to a constant (importance correction of the kernel-SHAP weights)."""
    s = z.shape[1]
    k = z.sum(1)
    if sampler == "bernoulli":
        return k * math.log(p) + (s - k) * math.log(1 - p)
    if sampler in ("fixed", "single"):
        return np.zeros(len(z))
    if sampler == "shapley":
        return _log_shapley_kernel(k, s)
    raise ValueError(f"unknown sampler {sampler!r}")


def keep_probability(sampler: str, s: int, p: float = 0.5, keep: float = 0.5) -> float:
    """E[z_s], the p of RISE's normalisation N·p."""
    return {"bernoulli": p, "fixed": min(s - 1, max(1, round(keep * s))) / s, "single": (s - 1) / s,
            "shapley": 0.5}[sampler]


def _log_shapley_kernel(k: np.ndarray, s: int) -> np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    out = np.full(k.shape, np.inf)
    inner = (k > 0) & (k < s)
    kk = k[inner]
    log_binom = np.array([math.lgamma(s + 1) - math.lgamma(x + 1) - math.lgamma(s - x + 1) for x in kk])
    out[inner] = math.log(s - 1) - log_binom - np.log(kk) - np.log(s - kk)
    return out


# --- smoothing: samples → pixel masks ------------------------------------------------------------------------
def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)``, reflect padding, kernel radius 3σ."""
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad_h, pad_w = min(r, x.shape[2] - 1), min(r, x.shape[3] - 1)
    x = F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect" if pad_w else "replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1)[..., r - pad_w:r + pad_w + 1], groups=c)
    x = F.pad(x, (0, 0, pad_h, pad_h), mode="reflect" if pad_h else "replicate")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1)[..., r - pad_h:r + pad_h + 1, :], groups=c)


def box_blur(x: torch.Tensor, width: int) -> torch.Tensor:
    if width <= 1:
        return x
    return F.avg_pool2d(F.pad(x, (width // 2, (width - 1) // 2) * 2, mode="replicate"), width, stride=1)


@dataclass
class MaskRenderer:
    """Render pixel masks ``(B, 1, H, W)`` from samples ``(B, S)`` for one image's segmentation.

    ``shifts`` (per sample, in [0, cell)) are drawn with the samples and used by ``rise`` smoothing only.
    """

    labels: torch.Tensor  # (H, W) int64
    smoothing: str
    grid: int | None = None  # cells per side when the segmenter is the grid
    sigma: float = 2.0
    n_segments: int = field(init=False)
    cell: int = field(init=False)

    def __post_init__(self):
        if self.smoothing not in SMOOTHINGS:
            raise ValueError(f"unknown smoothing {self.smoothing!r}; choose one of {SMOOTHINGS}")
        self.n_segments = int(self.labels.max()) + 1
        h = self.labels.shape[0]
        self.cell = math.ceil(h / self.grid) if self.grid else max(1, round(h / math.sqrt(self.n_segments)))

    def __call__(self, z: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        z = z.float()
        h, w = self.labels.shape
        if self.smoothing == "rise" and self.grid:
            # RISE (Petsiuk et al. 2018, Sec. 3.2): s×s grid → bilinear upsampling to (s+1)·cell → random crop.
            s, c = self.grid, self.cell
            up = F.interpolate(z.view(-1, 1, s, s), size=((s + 1) * c, (s + 1) * c), mode="bilinear",
                               align_corners=False)
            if shifts is None:
                shifts = torch.full((len(z), 2), c // 2, dtype=torch.long)
            return torch.stack([up[i, :, int(dy):int(dy) + h, int(dx):int(dx) + w]
                                for i, (dy, dx) in enumerate(shifts.tolist())])
        hard = z[:, self.labels.reshape(-1)].view(-1, 1, h, w)
        if self.smoothing == "hard":
            return hard
        if self.smoothing == "gaussian":
            return gaussian_blur(hard, self.sigma)
        soft = box_blur(hard, self.cell)
        if shifts is None:
            return soft
        return torch.stack([torch.roll(soft[i], (int(dy), int(dx)), dims=(1, 2))
                            for i, (dy, dx) in enumerate(shifts.tolist())])

    def segment_masks(self) -> torch.Tensor:
        """The smoothed (unshifted) mask of each segment ``(S, H, W)``: how segment weights spread to pixels."""
        return self(torch.eye(self.n_segments))[:, 0]

    def hard_masks(self) -> torch.Tensor:
        return (self.labels.view(1, *self.labels.shape) == torch.arange(self.n_segments).view(-1, 1, 1)).float()


# --- perturbations -------------------------------------------------------------------------------------------
def replacement(image: torch.Tensor, perturbation: str, sigma: float = 4.0) -> torch.Tensor | None:
    """What fills removed pixels of ``image`` ``(3, H, W)`` (``None`` for noise: drawn per sample)."""
    if perturbation == "mean":
        return image.mean(dim=(1, 2), keepdim=True).expand_as(image)
    if perturbation == "black":
        return torch.zeros_like(image)
    if perturbation == "blur":
        return gaussian_blur(image[None], sigma)[0]
    if perturbation == "noise":
        return None
    raise ValueError(f"unknown perturbation {perturbation!r}; choose one of {PERTURBATIONS}")


def perturb(image: torch.Tensor, masks: torch.Tensor, fill: torch.Tensor | None,
            gen: torch.Generator | None = None) -> torch.Tensor:
    """I·M + R·(1−M) for a batch of masks ``(B, 1, H, W)``; R uniform noise in [0, 1] when ``fill`` is None."""
    if fill is None:
        fill = torch.rand((len(masks), *image.shape), generator=gen).to(image.device)
    return image * masks + fill * (1 - masks)


# --- calculators -------------------------------------------------------------------------------------------
def rise_weighted_mean(sum_fm: torch.Tensor, n: int, p: float) -> torch.Tensor:
    """RISE eq. 6: Σ_i f_i M_i / (N·p) from the streamed sum Σ f_i M_i ``(C, ...)``."""
    return sum_fm / (n * p)


def difference_of_means(sum_fm: torch.Tensor, sum_m: torch.Tensor, sum_f: torch.Tensor, n: int) -> torch.Tensor:
    """Mean output where a pixel/segment is kept minus where it is removed (mask-weighted)."""
    kept = sum_fm / sum_m.clamp_min(1e-8)
    removed = (sum_f.view(-1, *[1] * sum_m.dim()) - sum_fm) / (n - sum_m).clamp_min(1e-8)
    return kept - removed


def least_squares(x: np.ndarray, f: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(Weighted) least squares of f ``(N, C)`` on x ``(N, S)`` with an intercept; returns slopes ``(S, C)``.

    Solved by ``lstsq`` on the √w-scaled system: the minimum-norm solution when the design is rank-deficient
    (e.g. a fixed-count sampler, whose Σz is constant)."""
    a = np.hstack([x.astype(np.float64), np.ones((len(x), 1))])
    w = np.ones(len(x)) if weights is None else weights.astype(np.float64)
    r = np.sqrt(w)[:, None]
    coef = np.linalg.lstsq(a * r, f.astype(np.float64) * r, rcond=None)[0]
    return coef[:-1]


def kernel_shap(x: np.ndarray, f: np.ndarray, log_q: np.ndarray, f_empty: np.ndarray, f_full: np.ndarray) -> np.ndarray:
    """Kernel SHAP (Lundberg & Lee 2017, Thm. 2): weighted least squares with the Shapley kernel.

    Samples are weighted by π(z)/q(z) (π the Shapley kernel, q the sampler's density, so that any sampler
    estimates the same regression); the empty and full coalitions enter as anchors with a weight 10⁶ times the
    largest, which enforces φ₀ = f(∅) and Σφ = f(full) − f(∅) as the exact solution does.
    """
    s = x.shape[1]
    k = x.sum(1)
    inner = (k > 1e-9) & (k < s - 1e-9)
    logw = _log_shapley_kernel(np.round(k[inner]).clip(1, s - 1), s) - log_q[inner]
    w = np.exp(logw - logw.max()) if inner.any() else np.zeros(0)
    big = 1e6 * (w.max() if len(w) else 1.0)
    xs = np.vstack([x[inner], np.zeros((1, s)), np.ones((1, s))])
    fs = np.vstack([f[inner], f_empty[None], f_full[None]])
    return least_squares(xs, fs, np.r_[w, big, big])


# --- the explanation ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One combination of components (the calculator list shares one set of forward passes)."""

    sampler: str = "bernoulli"
    segmenter: str = "grid"
    perturbation: str = "black"
    smoothing: str = "rise"
    n_masks: int = 500
    grid: int = 7
    p: float = 0.5
    keep: float = 0.5
    gaussian_sigma: float = 2.0
    blur_sigma: float = 4.0
    segmenter_options: tuple = ()

    def __post_init__(self):
        for name, allowed in (("sampler", SAMPLERS), ("segmenter", SEGMENTERS), ("perturbation", PERTURBATIONS),
                              ("smoothing", SMOOTHINGS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    def key(self) -> str:
        return f"{self.sampler}-{self.segmenter}-{self.perturbation}-{self.smoothing}"


class SampleBank:
    """Samples z (and RISE shifts) drawn once per (segmenter's S, sampler, N, seed) and reused everywhere."""

    def __init__(self, seed: int):
        self.seed = seed
        self._bank: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, setting: Setting, s: int, cell: int) -> tuple[np.ndarray, np.ndarray]:
        key = (setting.sampler, s, setting.n_masks, setting.p, setting.keep, cell)
        if key not in self._bank:
            rng = np.random.default_rng([self.seed, SAMPLERS.index(setting.sampler), s, setting.n_masks])
            z = sample(setting.sampler, s, setting.n_masks, rng, p=setting.p, keep=setting.keep)
            shifts = rng.integers(0, max(1, cell), size=(len(z), 2))
            self._bank[key] = (z, shifts)
        return self._bank[key]


@dataclass
class Attribution:
    """Per-class pixel maps ``(C, H, W)`` for each calculator, and how many model calls they took."""

    maps: dict[str, torch.Tensor]
    model_calls: int
    n_segments: int


class PerturbationExplainer:
    """``attribute(image, calculators)`` — every component from :class:`Setting`; the model maps images in
    [0, 1] to class scores (probabilities for RISE: the classifier's sigmoid outputs)."""

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], setting: Setting, bank: SampleBank,
                 batch_size: int = 64, device: torch.device | str = "cpu"):
        self.model = model
        self.setting = setting
        self.bank = bank
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._grid_renderer: MaskRenderer | None = None

    def renderer(self, image: torch.Tensor) -> MaskRenderer:
        st = self.setting
        if st.segmenter == "grid":  # image-independent: built once
            if self._grid_renderer is None or self._grid_renderer.labels.shape != image.shape[1:]:
                labels = torch.from_numpy(segment(np.zeros((*image.shape[1:], 3)), "grid", st.grid))
                self._grid_renderer = MaskRenderer(labels, st.smoothing, grid=st.grid, sigma=st.gaussian_sigma)
            return self._grid_renderer
        labels = segment(image.permute(1, 2, 0).cpu().numpy().astype(np.float64), st.segmenter, st.grid,
                         dict(st.segmenter_options))
        return MaskRenderer(torch.from_numpy(labels), st.smoothing, sigma=st.gaussian_sigma)

    def attribute(self, image: torch.Tensor, calculators: Sequence[str] = ("rise",)) -> Attribution:
        """Maps ``(C, H, W)`` per calculator for one image ``(3, H, W)`` in [0, 1]."""
        unknown = [c for c in calculators if c not in CALCULATORS]
        if unknown:
            raise ValueError(f"unknown calculator(s) {unknown}; choose from {CALCULATORS}")
        st = self.setting
        rend = self.renderer(image)
        s = rend.n_segments
        z_all, shifts_all = self.bank.get(st, s, rend.cell)
        shifts_t = torch.from_numpy(shifts_all) if st.smoothing == "rise" else None
        image = image.to(self.device)
        fill = replacement(image, st.perturbation, st.blur_sigma)
        gen = torch.Generator().manual_seed(self.bank.seed + 7919)
        hard = rend.hard_masks().to(self.device).view(s, -1)
        seg_size = hard.sum(1)
        n = len(z_all)
        sum_fm = sum_m = sum_f = None
        xs, fs = [], []
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                z = torch.from_numpy(z_all[start:start + self.batch_size])
                m = rend(z, None if shifts_t is None else shifts_t[start:start + self.batch_size]).to(self.device)
                f = self.model(perturb(image, m, fill, gen)).float()  # (B, C)
                m2 = m[:, 0]
                bsum = torch.einsum("bc,bhw->chw", f, m2)
                sum_fm = bsum if sum_fm is None else sum_fm + bsum
                sum_m = m2.sum(0) if sum_m is None else sum_m + m2.sum(0)
                sum_f = f.sum(0) if sum_f is None else sum_f + f.sum(0)
                xs.append((m2.reshape(len(m2), -1) @ hard.T / seg_size).cpu().numpy())  # kept fraction per segment
                fs.append(f.cpu().numpy())
            calls = n
            anchors = None
            if any(c in ("kernel_shap",) for c in calculators):
                ends = torch.stack([torch.zeros_like(image[:1]), torch.ones_like(image[:1])])
                anchors = self.model(perturb(image, ends, fill, gen)).float().cpu().numpy()
                calls += 2
        x, fv = np.concatenate(xs), np.concatenate(fs)
        p = keep_probability(st.sampler, s, st.p, st.keep)
        spread = rend.segment_masks().to(self.device)
        norm = spread.sum(0).clamp_min(1e-8)
        maps: dict[str, torch.Tensor] = {}
        for calc in calculators:
            if calc == "rise":
                maps[calc] = rise_weighted_mean(sum_fm, n, p)
            elif calc == "difference":
                maps[calc] = difference_of_means(sum_fm, sum_m, sum_f, n)
            else:
                if calc == "linear":
                    w = least_squares(x, fv)
                else:
                    w = kernel_shap(x, fv, sample_log_density(st.sampler, x > 0.5, st.p), anchors[0], anchors[1])
                wt = torch.from_numpy(w).float().to(self.device)  # (S, C)
                maps[calc] = torch.einsum("sc,shw->chw", wt, spread) / norm
        return Attribution({k: v.cpu() for k, v in maps.items()}, calls, s)


def probabilities(classifier: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The multi-label classifier's class probabilities (sigmoid of its logits): RISE's f."""

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(classifier(x))

    return f
