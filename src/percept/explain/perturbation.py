"""Perturbation explanations as composable parts (RISE, Petsiuk et al. 2018, taken apart as in
"Which parts of RISE matter", the RISE-components paper of Luleå University of Technology).

An explanation is ``sampler × segmenter × perturbation × smoothing × attribution × calculator``:

- a **segmenter** splits the image into S segments (``grid`` = RISE's s×s cells, ``slic``, ``felzenszwalb``,
  ``quickshift``, ``watershed`` from scikit-image);
- a **sampler** draws N binary vectors z ∈ {0,1}^S of segments to keep (``bernoulli`` p — RISE; ``fixed``
  count; ``single`` — one segment removed per sample; ``single_inverse`` — one segment kept per sample;
  ``shapley`` — coalition sizes from the Shapley kernel; ``shapley_coalitions`` — the components repository's
  deterministic coalitions, best-weighted sizes first; ``uniform`` / ``normal`` / ``beta`` — its
  sample-probability sampler, a removal probability per sample from that distribution; ``add_all`` /
  ``add_none`` append the all-removed / nothing-removed samples);
- **smoothing** turns z into a pixel mask M ∈ [0,1]^{H×W}: ``hard`` segment masks, ``gaussian``-smoothed
  segment masks, or ``rise`` — the original RISE generator for the grid (s×s values upsampled linearly with
  a mirror boundary to (s+1)·cell, as ``skimage.transform.resize(order=1, mode='reflect')`` in eclique/RISE,
  and cropped at a random offset in [0, cell)); for other segmenters the same idea, a box blur of one cell
  width and a random shift in [0, cell) with the border continued (no wrap-around);
- a **perturbation** fills the removed part: I·M + R·(1−M) with R the classifier's normalisation mean
  (``norm_zero``, 0 in its normalised input space — RISE's convention and the default), ``grey`` 0.5, the
  image's ``mean`` colour, pixel-space ``black``, a ``blur``red copy, uniform ``noise``, a ``random_colour``
  pixel, a colour-``histogram`` bin's median per sample, or OpenCV inpainting (``inpaint_telea``,
  ``inpaint_ns``);
- **attribution** (the components paper's attribution type): segment weights are spread to pixels through the
  smoothed (``pixels``) or the hard (``segments``) segment masks, normalised by their sum per pixel;
- a **calculator** turns model outputs f_i = f(perturbed image i) into attributions. ``rise`` with ``rise``
  smoothing is eclique/RISE's weighted mean Σ f_i M_i / (N·p) per pixel (eq. 6); otherwise the calculators
  work on the binary samples as post-hoc-image-perturbation's attributers (``rise`` too with ``segments``
  attribution) (arXiv 2409.04116): ``rise`` per
  segment Σ z f / Σ z; ``linear`` least squares of f on z with an intercept (LIME); ``kernel_shap`` the same
  weighted by the Shapley kernel π(|z|) = (S−1)/(C(S,|z|)·|z|·(S−|z|)) with f(∅) and f(full) added at weight
  10⁵; ``pda`` prediction difference analysis; ``ciu`` / ``ciu_inverse`` contextual importance × (utility −
  0.5); ``difference`` of means, kept minus removed, Σ f M / Σ M − Σ f (1−M) / Σ (1−M), per pixel.

The samples z (and RISE's shifts) for one (segmenter, sampler, N, seed) are drawn once and reused for every
image and class; pixel masks are rendered one batch at a time, so memory holds one batch of masks whatever N
is; the model sees batches; every calculator is fed by the same forward passes (streaming sums for the
per-pixel ones, the N×S design and N×C outputs for the regressions).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from percept import seeds
from percept.explain.attributor import Targets, target_lists
from percept.filters import gaussian_blur

SAMPLERS = ("bernoulli", "fixed", "single", "single_inverse", "shapley", "shapley_coalitions", "uniform", "normal",
            "beta")
SEGMENTERS = ("grid", "slic", "felzenszwalb", "quickshift", "watershed")
PERTURBATIONS = ("norm_zero", "grey", "mean", "black", "blur", "noise", "random_colour", "histogram", "inpaint_telea",
                 "inpaint_ns")
SMOOTHINGS = ("rise", "hard", "gaussian")
ATTRIBUTIONS = ("pixels", "segments")
CALCULATORS = ("rise", "difference", "linear", "kernel_shap", "pda", "ciu", "ciu_inverse")
COMPONENTS = ("sampler", "segmenter", "perturbation", "smoothing", "attribution", "calculator")
# The calculators that need one kind of samples (post-hoc-image-perturbation's OriginalCIUAttributer raises
# otherwise; its experiment then drops the explainer for that pipeline, as run_rise does).
SAMPLERS_OF = {"ciu": ("single",), "ciu_inverse": ("single_inverse",)}


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
    if sampler == "single_inverse":  # SingleFeatureSampler(inverse=True): one segment kept per sample
        return np.eye(s, dtype=bool)
    if sampler == "shapley_coalitions":
        return shapley_coalitions(s, n)
    if sampler in ("uniform", "normal", "beta"):
        return sample_probability(sampler, s, n, rng)
    if sampler == "shapley":
        sizes = rng.choice(np.arange(1, s), size=n, p=shapley_size_weights(s))
        z = np.zeros((n, s), bool)
        for i, k in enumerate(sizes):
            z[i, rng.choice(s, size=int(k), replace=False)] = True
        return z
    raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")


def shapley_coalitions(s: int, n: int) -> np.ndarray:
    """The components repository's deterministic ``ShapSampler``: coalitions by the number r of removed
    segments in the order r = 0, S, 1, S−1, 2, … (the best-weighted sizes of the Shapley kernel first), each
    size's combinations in lexicographic order, until ``n`` samples."""
    out = np.ones((n, s), bool)
    i = 0
    for j in range(s + 1):
        r = j // 2 if j % 2 == 0 else s - (j - 1) // 2
        for idx in itertools.combinations(range(s), r):
            if i == n:
                return out
            out[i, list(idx)] = False
            i += 1
    return out[:i]


def sample_probability(distribution: str, s: int, n: int, rng: np.random.Generator, normal_scale: float = 1.0,
                       beta: tuple[float, float] = (1.5, 1.5)) -> np.ndarray:
    """``SampleProbabilitySampler``: per sample a removal probability q from ``uniform`` [0, 1], a ``normal``
    (mean 0.5, σ ``normal_scale``) truncated to [0, 1], or ``beta`` (1.5, 1.5); each segment kept when q < u,
    u uniform."""
    if distribution == "uniform":
        q = rng.random((n, 1))
    elif distribution == "normal":
        from scipy.stats import truncnorm

        q = truncnorm(-0.5 / normal_scale, 0.5 / normal_scale, 0.5, normal_scale).rvs(size=(n, 1), random_state=rng)
    elif distribution == "beta":
        q = rng.beta(*beta, size=(n, 1))
    else:
        raise ValueError(f"unknown sample-probability distribution {distribution!r}")
    return q < rng.random((n, s))


def keep_probability(sampler: str, s: int, p: float = 0.5, keep: float = 0.5) -> float:
    """E[z_s], the p of RISE's normalisation N·p."""
    return {"bernoulli": p, "fixed": min(s - 1, max(1, round(keep * s))) / s, "single": (s - 1) / s,
            "single_inverse": 1 / s, "shapley": 0.5,
            "shapley_coalitions": 0.5, "uniform": 0.5, "normal": 0.5, "beta": 0.5}[sampler]


def _log_shapley_kernel(k: np.ndarray, s: int) -> np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    out = np.full(k.shape, np.inf)
    inner = (k > 0) & (k < s)
    kk = k[inner]
    log_binom = np.array([math.lgamma(s + 1) - math.lgamma(x + 1) - math.lgamma(s - x + 1) for x in kk])
    out[inner] = math.log(s - 1) - log_binom - np.log(kk) - np.log(s - kk)
    return out


# --- smoothing: samples → pixel masks ------------------------------------------------------------------------
def gaussian_filter(x: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter`` over the last two axes of ``(B, C, H, W)`` (its defaults: 'reflect'
    = symmetric boundary, the edge pixel repeated; radius round(truncate·σ)) — the components repository's
    ``FadeMaskSegmenter`` smoothing."""
    if sigma <= 0:
        return x
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    for dim in (-1, -2):
        n = x.shape[dim]
        j = torch.remainder(torch.arange(-r, n + r, device=x.device), 2 * n)
        idx = torch.where(j < n, j, 2 * n - 1 - j)
        x = x.index_select(dim, idx).unfold(dim, 2 * r + 1, 1) @ k
    return x


def fade_sigma(n_segments: int, height: int) -> float:
    """The components repository's σ of the faded masks: 70/√S pixels at 224 px (``experiment.py``: 'to get
    similar blur to bilinear in GridSegmenter'), scaled with the image height."""
    return 70.0 / max(1, round(math.sqrt(n_segments))) * height / 224.0


def linear_resize_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``(n_out, n_in)`` weights of linear interpolation with pixel-centre alignment and mirror boundary.

    ``skimage.transform.resize(order=1, mode='reflect', anti_aliasing=False)`` (what eclique/RISE's
    ``generate_masks`` calls): scikit-image's 'reflect' is scipy.ndimage's 'mirror', so a coordinate left of the
    first centre interpolates towards the *second* value (x[-1] = x[1]), not the first (torch's clamp).
    """
    pos = (torch.arange(n_out, dtype=torch.float64) + 0.5) * n_in / n_out - 0.5
    lo = torch.floor(pos)
    frac = pos - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    period = max(1, 2 * n_in - 2)

    def mirror(i: torch.Tensor) -> torch.Tensor:
        if n_in == 1:
            return torch.zeros_like(i)
        i = torch.remainder(i, period)
        return torch.where(i >= n_in, period - i, i)

    m.index_put_((rows, mirror(lo.long())), 1 - frac, accumulate=True)
    m.index_put_((rows, mirror(lo.long() + 1)), frac, accumulate=True)
    return m.float()


def box_blur(x: torch.Tensor, width: int) -> torch.Tensor:
    if width <= 1:
        return x
    return F.avg_pool2d(F.pad(x, (width // 2, (width - 1) // 2) * 2, mode="replicate"), width, stride=1)


@dataclass
class MaskRenderer:
    """Render pixel masks ``(B, 1, H, W)`` from samples ``(B, S)`` for one image's segmentation.

    ``shifts`` (per sample, row and column offsets in [0, cell)) are drawn with the samples and used by ``rise``
    smoothing only. ``cell`` is (rows, columns) per cell: RISE's ceil(H/s), ceil(W/s) for the grid.
    """

    labels: torch.Tensor  # (H, W) int64
    smoothing: str
    grid: int | None = None  # cells per side when the segmenter is the grid
    sigma: float | None = 2.0  # None: fade_sigma (σ scaled with the segment count, as the repository)
    n_segments: int = field(init=False)
    cell: tuple[int, int] = field(init=False)

    def __post_init__(self):
        if self.smoothing not in SMOOTHINGS:
            raise ValueError(f"unknown smoothing {self.smoothing!r}; choose one of {SMOOTHINGS}")
        self.n_segments = int(self.labels.max()) + 1
        h, w = self.labels.shape
        if self.grid:
            self.cell = (math.ceil(h / self.grid), math.ceil(w / self.grid))
        else:
            side = max(1, round(math.sqrt(h * w / self.n_segments)))
            self.cell = (side, side)
        self._rise_matrices: tuple[torch.Tensor, torch.Tensor] | None = None

    def _rise_grid(self, z: torch.Tensor, shifts: torch.Tensor | None) -> torch.Tensor:
        # RISE (Petsiuk et al. 2018, Sec. 3.2; eclique/RISE generate_masks): the s×s grid upsampled linearly
        # (mirror boundary) to (s+1)·cell, then cropped at the shift: one matrix product per side.
        s, (ch, cw) = self.grid, self.cell
        h, w = self.labels.shape
        if self._rise_matrices is None:
            self._rise_matrices = (linear_resize_matrix(s, (s + 1) * ch), linear_resize_matrix(s, (s + 1) * cw))
        mh, mw = self._rise_matrices
        if shifts is None:
            shifts = torch.tensor([[ch // 2, cw // 2]]).expand(len(z), 2)
        shifts = shifts.long()
        rows = mh[shifts[:, :1] + torch.arange(h)]  # (B, H, s)
        cols = mw[shifts[:, 1:] + torch.arange(w)]  # (B, W, s)
        return torch.einsum("bhs,bst,bwt->bhw", rows, z.view(-1, s, s), cols)[:, None]

    def __call__(self, z: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        z = z.float()
        h, w = self.labels.shape
        if self.smoothing == "rise" and self.grid:
            return self._rise_grid(z, shifts)
        if self.smoothing == "hard":
            return z[:, self.labels.reshape(-1)].view(-1, 1, h, w)
        # both blurs are linear: blur each segment's mask once, then every sample is a weighted sum of them
        soft = torch.einsum("bs,shw->bhw", z, self._smoothed_segments())[:, None]
        if self.smoothing == "gaussian":
            return soft
        if shifts is None:
            return soft
        # a random shift in [0, cell) as RISE's crop, the border continued (no wrap-around: a segment at the
        # bottom edge must not reappear at the top)
        ch, cw = self.cell
        padded = F.pad(soft, (cw, 0, ch, 0), mode="replicate")
        return torch.stack([padded[i, :, ch - int(dy):ch - int(dy) + h, cw - int(dx):cw - int(dx) + w]
                            for i, (dy, dx) in enumerate(shifts.tolist())])

    def _smoothed_segments(self) -> torch.Tensor:
        if getattr(self, "_smoothed", None) is None:
            hard = self.hard_masks()[:, None]
            if self.smoothing == "gaussian":
                h = self.labels.shape[0]
                soft = gaussian_filter(hard, self.sigma if self.sigma is not None else fade_sigma(self.n_segments, h))
            else:
                soft = box_blur(hard, self.cell[0])
            self._smoothed = soft[:, 0]
        return self._smoothed

    def segment_masks(self) -> torch.Tensor:
        """The smoothed (unshifted) mask of each segment ``(S, H, W)``: how segment weights spread to pixels."""
        return self(torch.eye(self.n_segments))[:, 0]

    def hard_masks(self) -> torch.Tensor:
        return (self.labels.view(1, *self.labels.shape) == torch.arange(self.n_segments).view(-1, 1, 1)).float()


# --- perturbations -------------------------------------------------------------------------------------------
class HistogramFill:
    """``ColorHistogramPerturber``: the image's pixels binned ``bins`` per channel; per sample the median colour
    of one occupied bin, drawn with probability ∝ its pixel count (the bins are computed once per image)."""

    def __init__(self, image: torch.Tensor, gen: torch.Generator | None = None, bins: int = 8):
        flat = image.reshape(3, -1).T  # (P, 3)
        edges = torch.linspace(0, 1, bins + 1, device=image.device)[1:-1]
        ids = torch.bucketize(flat.contiguous(), edges, right=True)  # np.digitize
        key = (ids[:, 0] * bins + ids[:, 1]) * bins + ids[:, 2]
        _, inv, self.counts = torch.unique(key, return_inverse=True, return_counts=True)
        # every bin's median per channel at once: sort by (bin, value), take the middle one or two of each bin
        start = torch.cumsum(self.counts, 0) - self.counts
        lo, hi = start + (self.counts - 1) // 2, start + self.counts // 2
        medians = []
        for c in range(3):
            v = flat[torch.argsort(inv.double() * 2 + flat[:, c].double()), c]
            medians.append((v[lo] + v[hi]) / 2)
        self.medians = torch.stack(medians, 1)
        self.gen = gen

    def colours(self, n: int) -> torch.Tensor:
        pick = torch.multinomial(self.counts.float().cpu(), n, replacement=True, generator=self.gen)
        return self.medians[pick.to(self.medians.device)].view(n, 3, 1, 1)

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        return self.colours(len(masks))


def histogram_colours(image: torch.Tensor, n: int, gen: torch.Generator | None, bins: int = 8) -> torch.Tensor:
    """``n`` colours ``(n, 3, 1, 1)`` drawn as :class:`HistogramFill` does."""
    return HistogramFill(image, gen, bins).colours(n)


class InpaintFill:
    """OpenCV inpainting (``Cv2InpaintPerturber``): per sample the removed pixels (mask rounded to 0) are
    inpainted from the rest with Telea's or the Navier–Stokes method, radius 1, on the 8-bit image."""

    def __init__(self, image: torch.Tensor, method: str, radius: int = 1):
        import cv2

        self.cv2 = cv2
        self.flag = {"inpaint_telea": cv2.INPAINT_TELEA, "inpaint_ns": cv2.INPAINT_NS}[method]
        self.radius = radius
        self.image = image
        self.u8 = (image.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        out = []
        for m in masks[:, 0].cpu().numpy():
            hole = (1 - np.round(m)).astype(np.uint8)
            out.append(self.cv2.inpaint(self.u8, hole, self.radius, self.flag))
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(self.image) / 255.0


def replacement(image: torch.Tensor, perturbation: str, sigma: float = 4.0,
                normalisation_mean: Sequence[float] | None = None,
                gen: torch.Generator | None = None) -> torch.Tensor | Callable | None:
    """What fills removed pixels of ``image`` ``(3, H, W)`` (``None`` for noise: drawn per sample).

    ``norm_zero``: 0 in the classifier's normalised input space, i.e. its normalisation mean colour (RISE
    multiplies the *normalised* image by the mask; post-hoc-image-perturbation's 'norm_zero' perturber);
    ``grey``: 0.5 (the components paper's SRG perturber); ``mean``: the image's mean colour; ``black``: 0 in
    [0, 1] pixel space; ``blur``: a Gaussian-blurred copy; ``noise``: uniform noise; ``random_colour``: the
    colour of one random pixel of the image (``RandomColorPerturber``); ``histogram``: per sample a colour-
    histogram bin's median (:func:`histogram_colours`); ``inpaint_telea`` / ``inpaint_ns``: OpenCV inpainting
    per sample (:class:`InpaintFill`). Per-sample fills are callables of the masks.
    """
    if perturbation == "random_colour":
        idx = int(torch.randint(image.shape[1] * image.shape[2], (1,), generator=gen))
        return image.reshape(3, -1)[:, idx].view(3, 1, 1).expand_as(image)
    if perturbation == "histogram":
        return HistogramFill(image, gen)
    if perturbation in ("inpaint_telea", "inpaint_ns"):
        return InpaintFill(image, perturbation)
    if perturbation == "norm_zero":
        if normalisation_mean is None:
            raise ValueError("the norm_zero perturbation needs the classifier's normalisation mean")
        return torch.tensor(list(normalisation_mean), dtype=image.dtype, device=image.device).view(3, 1, 1).expand_as(image)
    if perturbation == "grey":
        return torch.full_like(image, 0.5)
    if perturbation == "mean":
        return image.mean(dim=(1, 2), keepdim=True).expand_as(image)
    if perturbation == "black":
        return torch.zeros_like(image)
    if perturbation == "blur":
        return gaussian_blur(image[None], sigma)[0]
    if perturbation == "noise":
        return None
    raise ValueError(f"unknown perturbation {perturbation!r}; choose one of {PERTURBATIONS}")


def perturb(image: torch.Tensor, masks: torch.Tensor, fill: torch.Tensor | Callable | None,
            gen: torch.Generator | None = None) -> torch.Tensor:
    """I·M + R·(1−M) for a batch of masks ``(B, 1, H, W)``; R uniform noise in [0, 1] when ``fill`` is None,
    ``fill(masks)`` when it is callable (a fill per sample)."""
    if fill is None:
        fill = torch.rand((len(masks), *image.shape), generator=gen).to(image.device)
    elif callable(fill):
        fill = fill(masks)
    return image * masks + fill * (1 - masks)


# --- calculators -------------------------------------------------------------------------------------------
# The segment calculators follow post-hoc-image-perturbation (arXiv 2409.04116, post_hoc/explainers.py):
# f ``(N, C)`` model outputs, z ``(N, S)`` binary samples (1 = segment kept); each returns ``(S, C)``.
def rise_weighted_mean(sum_fm: torch.Tensor, n: int, p: float) -> torch.Tensor:
    """RISE eq. 6: Σ_i f_i M_i / (N·p) from the streamed sum Σ f_i M_i ``(C, ...)`` (eclique/RISE, per pixel)."""
    return sum_fm / (n * p)


def rise_segments(z: np.ndarray, f: np.ndarray) -> np.ndarray:
    """RISE per segment: Σ_i z_is f_i / Σ_i z_is, the mean output when segment s is kept (RISEAttributer)."""
    z = z.astype(np.float64)
    return (z.T @ f) / np.maximum(z.sum(0), 1e-12)[:, None]


def difference_of_means(sum_fm: torch.Tensor, sum_m: torch.Tensor, sum_f: torch.Tensor, n: int) -> torch.Tensor:
    """Mean output where a pixel/segment is kept minus where it is removed (mask-weighted)."""
    kept = sum_fm / sum_m.clamp_min(1e-8)
    removed = (sum_f.view(-1, *[1] * sum_m.dim()) - sum_fm) / (n - sum_m).clamp_min(1e-8)
    return kept - removed


def least_squares(x: np.ndarray, f: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(Weighted) least squares of f ``(N, C)`` on x ``(N, S)`` with an intercept; returns slopes ``(S, C)``
    (LinearLIMEAttributer on binary samples).

    Solved by ``lstsq`` on the √w-scaled system: the minimum-norm solution when the design is rank-deficient
    (e.g. a fixed-count sampler, whose Σz is constant)."""
    return least_squares_with_intercept(x, f, weights)[0]


def least_squares_with_intercept(x: np.ndarray, f: np.ndarray,
                                 weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    a = np.hstack([x.astype(np.float64), np.ones((len(x), 1))])
    w = np.ones(len(x)) if weights is None else weights.astype(np.float64)
    r = np.sqrt(w)[:, None]
    coef = np.linalg.lstsq(a * r, f.astype(np.float64) * r, rcond=None)[0]
    return coef[:-1], coef[-1]


def shapley_kernel(s: int, k: np.ndarray) -> np.ndarray:
    """π(|z|) = (S−1) / (C(S,|z|)·|z|·(S−|z|)) (Lundberg & Lee 2017, Thm. 2); the infinite weights of the empty
    and full coalitions become 10⁵ as in post-hoc-image-perturbation's ``shap_kernel``."""
    k = np.asarray(k, dtype=np.float64)
    out = np.full(k.shape, 1e5)
    inner = (k > 0) & (k < s)
    if inner.any():  # a single segment (S = 1) has only the two ends
        out[inner] = np.exp(_log_shapley_kernel(k[inner], s))
    return out


def kernel_shap(z: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kernel SHAP (Lundberg & Lee 2017): least squares of f on the binary samples with an intercept, each
    sample weighted by the Shapley kernel of its size (SHAPAttributer). Returns (φ ``(S, C)``, φ₀ ``(C,)``)."""
    k = np.round(z.sum(1)).astype(int)
    return least_squares_with_intercept(z, f, shapley_kernel(z.shape[1], k))


PDA_MODES = ("probdiff", "infodiff", "evidence")


def pda(z: np.ndarray, f: np.ndarray, f_full: np.ndarray, mode: str = "probdiff", divide_weight: bool = False,
        laplace_classes: int = 1000, laplace_train: int = 1281167) -> np.ndarray:
    """Prediction difference analysis (Robnik-Šikonja & Kononenko 2008; Zintgraf et al. 2017) adapted to
    multi-segment perturbation as PDAAttributer: f(full) minus the mean output over the samples where segment s
    is removed (each sample weighted 1/#removed with ``divide_weight``). ``infodiff`` and ``evidence`` take
    log₂ p and log₂ p/(1−p) after the Laplace correction p ← (p·n + 1)/(n + c) (c classes, n training images).
    Outputs above 1 are divided by their maximum first, as the repository does."""
    if mode not in PDA_MODES:
        raise ValueError(f"PDA mode must be one of {PDA_MODES}, got {mode!r}")
    f = np.asarray(f, np.float64)
    f_full = np.asarray(f_full, np.float64)
    top = f.max()
    if top > 1.0:
        f, f_full = f / top, f_full / top
    removed = 1.0 - z.astype(np.float64)
    if divide_weight:
        count = removed.sum(1, keepdims=True)
        removed = np.divide(removed, count, out=np.zeros_like(removed), where=count > 0)
    weight = removed.sum(0)[:, None]
    true = np.broadcast_to(f_full, f.shape[1:])[None]
    # A segment that no sample removed carries no evidence: its average is the full output (difference 0), where
    # the repository divides 0 by 0 (few samples, many segments: e.g. SLIC at 224 px with a small budget).
    avg = np.divide(removed.T @ f, weight, out=np.repeat(true, len(weight), 0), where=weight > 0)
    if mode != "probdiff":
        n, c = laplace_train, laplace_classes
        true, avg = (true * n + 1) / (n + c), (avg * n + 1) / (n + c)
        if mode == "evidence":
            true, avg = true / (1 - true), avg / (1 - avg)
        true, avg = np.log2(true), np.log2(avg)
    return true - avg


def ciu(z: np.ndarray, f: np.ndarray, f_full: np.ndarray, inverse: bool = False,
        expected_utility: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contextual importance and utility (Främling 1996; py.ciu.image) without intermediate concepts, as
    OriginalCIUAttributer: from samples with exactly one segment removed (``inverse``: exactly one kept, outputs
    taken as 1−f), CI_s = (max − min of f over {full, s changed}) / (max f − min f over all samples),
    CU_s = (f(full) − min) / (max − min); the influence CI·(CU − E[CU]). Returns (CI, CU, influence), each
    ``(S, C)``."""
    s = z.shape[1]
    f = np.asarray(f, np.float64)
    f_full = np.asarray(f_full, np.float64).reshape(1, -1)
    point = z.astype(bool) if inverse else ~z.astype(bool)
    count = point.sum(1)
    if ((count > 1) & (count < s)).any():
        raise ValueError("CIU needs samples with all, none or exactly one segment "
                         + ("kept (the single_inverse sampler)" if inverse else "removed (the single sampler)"))
    lo = np.repeat(f_full, s, 0)
    hi = lo.copy()
    one = count == 1
    if one.any():
        idx = point[one].argmax(1)
        vals = 1 - f[one] if inverse else f[one]
        np.minimum.at(lo, idx, vals)
        np.maximum.at(hi, idx, vals)
    importance = hi - lo
    utility = (f_full - lo) / (importance + 1e-12)
    span = np.vstack([f, f_full])
    importance = importance / (span.max(0) - span.min(0) + 1e-12)
    return importance, utility, importance * (utility - expected_utility)


# --- the explanation ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One combination of components (the calculator list shares one set of forward passes).

    ``attribution``: how segment weights become a pixel map (the components paper's attribution type):
    ``pixels`` spreads them through the smoothed segment masks, ``segments`` through the hard ones; both
    normalised by the masks' sum per pixel (post_hoc.image_segmenters.perturbation_masks).
    """

    sampler: str = "bernoulli"
    segmenter: str = "grid"
    perturbation: str = "norm_zero"
    smoothing: str = "rise"
    attribution: str = "pixels"
    n_masks: int = 500
    grid: int = 7
    p: float = 0.5
    keep: float = 0.5
    gaussian_sigma: float | None = None
    blur_sigma: float = 4.0
    segmenter_options: tuple = ()
    pda_mode: str = "probdiff"
    pda_divide_weight: bool = False
    pda_laplace: tuple = (1000, 1281167)
    add_all: bool = False  # append the all-removed sample (SingleFeatureSampler add_all)
    add_none: bool = False  # append the nothing-removed sample (add_none)

    def __post_init__(self):
        for name, allowed in (("sampler", SAMPLERS), ("segmenter", SEGMENTERS), ("perturbation", PERTURBATIONS),
                              ("smoothing", SMOOTHINGS), ("attribution", ATTRIBUTIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    def key(self) -> str:
        return f"{self.sampler}-{self.segmenter}-{self.perturbation}-{self.smoothing}-{self.attribution}"


class SampleBank:
    """Samples z (and RISE shifts) drawn once per (segmenter's S, sampler, N, seed) and reused everywhere: the
    random stream ``explain.samples`` at (sampler, S, N)."""

    def __init__(self, seed: int):
        self.seed = seed
        self._bank: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, setting: Setting, s: int, cell: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        cell = (cell, cell) if isinstance(cell, int) else tuple(cell)
        key = (setting.sampler, s, setting.n_masks, setting.p, setting.keep, cell, setting.add_all, setting.add_none)
        if key not in self._bank:
            rng = seeds.rng(self.seed, "explain.samples", SAMPLERS.index(setting.sampler), s, setting.n_masks)
            z = sample(setting.sampler, s, setting.n_masks, rng, p=setting.p, keep=setting.keep)
            ends = [np.zeros((1, s), bool)] * setting.add_all + [np.ones((1, s), bool)] * setting.add_none
            z = np.vstack([z, *ends])
            shifts = np.stack([rng.integers(0, max(1, c), size=len(z)) for c in cell], 1)
            self._bank[key] = (z, shifts)
        return self._bank[key]


@dataclass
class Attribution:
    """Per-class pixel maps ``(C, H, W)`` for each calculator, and how many model calls they took."""

    maps: dict[str, torch.Tensor]
    model_calls: int
    n_segments: int


def compatible(calculator: str, sampler: str) -> bool:
    """Whether ``calculator`` can use ``sampler``'s samples (CIU needs single-segment changes)."""
    return sampler in SAMPLERS_OF.get(calculator, SAMPLERS)


class PerturbationExplainer:
    """Every component from :class:`Setting`; the model maps images in [0, 1] to class scores (probabilities
    for RISE: the classifier's sigmoid outputs). ``normalisation_mean`` is the classifier's input normalisation
    mean (the ``norm_zero`` fill).

    Two calls: :meth:`attribute` (the :class:`~percept.explain.attributor.Attributor` of every method: the
    ``calculator``'s maps of the targets) and :meth:`attribute_calculators` (one image, several calculators fed
    by the same forward passes, every class: what makes the RISE-components stage affordable)."""

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], setting: Setting, bank: SampleBank,
                 batch_size: int = 64, device: torch.device | str = "cpu",
                 normalisation_mean: Sequence[float] | None = None, calculator: str = "rise"):
        if calculator not in CALCULATORS:
            raise ValueError(f"unknown calculator {calculator!r}; choose from {CALCULATORS}")
        if not compatible(calculator, setting.sampler):
            raise ValueError(f"the {calculator} calculator cannot use the {setting.sampler} sampler's samples "
                             f"(it needs {SAMPLERS_OF[calculator]})")
        self.model = model
        self.setting = setting
        self.calculator = calculator
        self.bank = bank
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.normalisation_mean = normalisation_mean
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

    def attribute(self, images: torch.Tensor, targets: Targets) -> torch.Tensor:
        """The ``calculator``'s maps of the targets ``(N, T, H, W)`` on the CPU, one image at a time (each
        image's samples are the bank's, whatever the batch)."""
        rows = target_lists(targets, len(images))
        return torch.stack([self.attribute_calculators(image, [self.calculator]).maps[self.calculator][row]
                            for image, row in zip(images, rows)])

    def attribute_calculators(self, image: torch.Tensor, calculators: Sequence[str] = ("rise",)) -> Attribution:
        """Maps ``(C, H, W)`` per calculator for one image ``(3, H, W)`` in [0, 1]; calculators that cannot
        use this setting's sampler (:func:`compatible`) are left out of the result."""
        unknown = [c for c in calculators if c not in CALCULATORS]
        if unknown:
            raise ValueError(f"unknown calculator(s) {unknown}; choose from {CALCULATORS}")
        st = self.setting
        calculators = [c for c in calculators if compatible(c, st.sampler)]
        rend = self.renderer(image)
        s = rend.n_segments
        z_all, shifts_all = self.bank.get(st, s, rend.cell)
        shifts_t = torch.from_numpy(shifts_all) if st.smoothing == "rise" else None
        image = image.to(self.device)
        gen = seeds.torch_generator(self.bank.seed, "explain.perturbation_fill")  # the same draws for every image
        fill = replacement(image, st.perturbation, st.blur_sigma, self.normalisation_mean, gen)
        n = len(z_all)
        sum_fm = sum_m = sum_f = None
        fs = []
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                z = torch.from_numpy(z_all[start:start + self.batch_size])
                m = rend(z, None if shifts_t is None else shifts_t[start:start + self.batch_size]).to(self.device)
                f = self.model(perturb(image, m, fill, gen)).float()  # (B, C)
                if "difference" in calculators or ("rise" in calculators and st.smoothing == "rise"
                                                   and st.attribution == "pixels"):
                    m2 = m[:, 0]
                    bsum = torch.einsum("bc,bhw->chw", f, m2)
                    sum_fm = bsum if sum_fm is None else sum_fm + bsum
                    sum_m = m2.sum(0) if sum_m is None else sum_m + m2.sum(0)
                    sum_f = f.sum(0) if sum_f is None else sum_f + f.sum(0)
                fs.append(f.cpu().numpy())
            calls = n
            anchors = None
            if any(c in ("kernel_shap", "pda", "ciu", "ciu_inverse") for c in calculators):
                # f(∅) and f(full): the repository's samplers add them (add_none / add_all), PDA and CIU need f(full)
                ends = torch.stack([torch.zeros_like(image[:1]), torch.ones_like(image[:1])])
                anchors = self.model(perturb(image, ends, fill, gen)).float().cpu().numpy()
                calls += 2
        zb, fv = z_all.astype(np.float64), np.concatenate(fs)
        p = keep_probability(st.sampler, s, st.p, st.keep)
        spread = (rend.segment_masks() if st.attribution == "pixels" else rend.hard_masks()).to(self.device)
        norm = spread.sum(0).clamp_min(1e-8)
        maps: dict[str, torch.Tensor] = {}
        for calc in calculators:
            if calc == "rise" and st.smoothing == "rise" and st.attribution == "pixels":
                maps[calc] = rise_weighted_mean(sum_fm, n, p)
                continue
            if calc == "difference":
                maps[calc] = difference_of_means(sum_fm, sum_m, sum_f, n)
                continue
            if calc == "rise":
                w = rise_segments(zb, fv)
            elif calc == "linear":
                w = least_squares(zb, fv)
            elif calc == "kernel_shap":
                w = kernel_shap(np.vstack([zb, np.zeros((1, s)), np.ones((1, s))]), np.vstack([fv, anchors]))[0]
            elif calc == "pda":
                w = pda(zb, fv, anchors[1], st.pda_mode, st.pda_divide_weight, *st.pda_laplace)
            else:
                w = ciu(np.vstack([zb, np.ones((1, s))]), np.vstack([fv, anchors[1:]]), anchors[1],
                        inverse=calc == "ciu_inverse")[2]
            wt = torch.from_numpy(np.asarray(w)).float().to(self.device)  # (S, C)
            maps[calc] = torch.einsum("sc,shw->chw", wt, spread) / norm
        return Attribution({k: v.cpu() for k, v in maps.items()}, calls, s)


def probabilities(classifier: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The multi-label classifier's class probabilities (sigmoid of its logits): RISE's f."""

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(classifier(x))

    return f
