"""Curated mutation testing of the core numeric modules: how many realistic bugs do the unit tests catch?

Each mutant is one small, semantics-changing edit of the kind a person really makes (a flipped sign, swapped
axes, a sum for a mean, a forgotten option, an off-by-one boundary), written as ``(file, exact old snippet, new
snippet)``. The runner copies the working tree to a temporary directory once, then for each mutant alone:
applies it to the copy, runs only that module's test files there (``pytest -x``, in a subprocess with
``PYTHONPATH`` pointing at the copy's ``src``), and restores the file. A mutant is *killed* when the tests fail
(or time out), *survived* when they pass. A snippet that no longer occurs exactly once in its file is reported
as STALE (the code moved: update the mutant) and makes the exit status non-zero.

    cd <worktree> && OMP_NUM_THREADS=1 nice -n 10 python bench/mutants.py                # every module
    python bench/mutants.py --module similarity.scoring --module h5io                    # some modules
    python bench/mutants.py --mutant scoring-no-envelope                                 # one mutant
    python bench/mutants.py --tests-rev 32d55f3                  # today's code against older tests
    python bench/mutants.py --list                               # the mutants, nothing run
    python bench/mutants.py --check                              # every snippet applies, nothing run

Exit status: 0 when every module kills at least ``--target`` (default 0.9) of its mutants and nothing is
stale; 1 when a module falls short; 2 on a stale mutant or a module whose unmutated tests fail.

Why curated rather than PyPI ``mutmut``: mutmut generates thousands of mostly trivial mutants (string
literals, log messages) and runs for hours on a 2-core machine; these ~70 stand for the bugs that matter in
numeric code, run in well under an hour even on a loaded machine, and each names the bug it stands for. See
docs/testing.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    id: str
    old: str
    new: str
    bug: str  # the real bug this edit stands for


@dataclass(frozen=True)
class Module:
    name: str
    file: str  # relative to the repository root
    tests: tuple[str, ...]  # its own test files, fastest-failing first (-x stops there); a missing one is skipped
    mutants: tuple[Mutant, ...]


M = Mutant
MODULES: tuple[Module, ...] = (
    Module("similarity.metric", "src/percept/similarity/metric.py",
           ("tests/test_behaviour_similarity.py", "tests/test_similarity.py"), (
        M("metric-backbone-shift-sign", "a, b = 1.0 / std, -mean / std", "a, b = 1.0 / std, mean / std",
          'DPS(scaling="backbone") adds the ImageNet mean instead of subtracting it'),
        M("metric-resize-ignored", "if self.resize is not None and tuple(x.shape[-2:])",
          "if False and tuple(x.shape[-2:])", "DPS ignores its resize option"),
        M("metric-2afc-d1-is-d0", "d1 = self.distance(fr, {t: v[2 * n:] for t, v in feats.items()})",
          "d1 = self.distance(fr, {t: v[n:2 * n] for t, v in feats.items()})",
          "two_afc_distances scores p0 twice (d1 = d(ref, p0))"),
        M("metric-sort-one-side", "s1 = b1.flatten(2).sort(-1).values", "s1 = b1.flatten(2)",
          "sort mode sorts only one side's activations"),
        M("metric-normalize-over-space", "return x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)",
          "return x / (x.pow(2).sum((2, 3), keepdim=True).sqrt() + eps)",
          "unit normalisation over positions instead of channels"),
        M("metric-map-ignores-weights",
          'm = d.sum(1, keepdim=True) if w is None else torch.einsum("nchw,c->nhw", d, w).unsqueeze(1)',
          "m = d.sum(1, keepdim=True)", "the spatial distance map ignores the linear weights"),
    )),
    Module("similarity.scoring", "src/percept/similarity/scoring.py",
           ("tests/test_behaviour_similarity.py", "tests/test_similarity.py"), (
        M("scoring-no-envelope", "mpre = np.maximum.accumulate(mpre[::-1])[::-1]", "mpre = mpre",
          "JND average precision without the running-max precision envelope"),
        M("scoring-weighted-mean-unweighted", '"score": float((vals * n).sum() / n.sum()),',
          '"score": float(vals.mean()),', "the category-weighted mean computed unweighted"),
        M("scoring-unweighted-mean-weighted",
          '"category": "mean (unweighted)", "score": float(vals.mean())',
          '"category": "mean (unweighted)", "score": float((vals * n).sum() / n.sum())',
          "the unweighted mean over categories computed weighted"),
        M("scoring-empty-category-row", "if sel.any():", "if True:",
          "a category without rows gets a NaN row and counts in the means"),
        M("scoring-2afc-judge-swapped", "(d0 < d1) * (1 - j) + (d1 < d0) * j", "(d0 < d1) * j + (d1 < d0) * (1 - j)",
          "2AFC reads the judgement as the fraction preferring p0"),
        M("scoring-jnd-no-same-pairs", "if total <= 0:", "if total < 0:",
          "JND AP of a set without any 'same' pair returns NaN instead of an error"),
    )),
    Module("explain.perturbation", "src/percept/explain/perturbation.py",
           ("tests/test_behaviour_explain.py", "tests/test_explain.py"), (
        M("perturbation-crop-dx-dy",
          "rows = mh[shifts[:, :1] + torch.arange(h)]  # (B, H, s)\n        cols = mw[shifts[:, 1:] + torch.arange(w)]",
          "rows = mh[shifts[:, 1:] + torch.arange(h)]  # (B, H, s)\n        cols = mw[shifts[:, :1] + torch.arange(w)]",
          "the RISE crop reads its shift as (dx, dy)"),
        # perturbation-shap-logq-sign ("kernel SHAP multiplies by the sampling density instead of dividing") is
        # retired: since issue 15 kernel SHAP weights each draw by the Shapley kernel alone, as the authors'
        # SHAPAttributer (no log q(z) enters it), so there is no density whose sign could flip. The same kind of
        # bug in the weight that remains, a flipped sign of its binomial term:
        M("perturbation-shap-binomial-sign", "math.log(s - 1) - log_binom - np.log(kk)",
          "math.log(s - 1) + log_binom - np.log(kk)",
          "the Shapley kernel multiplies by C(S, |z|) instead of dividing"),
        M("perturbation-bernoulli-density-swapped", "return k * math.log(p) + (s - k) * math.log(1 - p)",
          "return k * math.log(1 - p) + (s - k) * math.log(p)", "log q(z) of a Bernoulli sampler with p and 1-p swapped"),
        M("perturbation-difference-denominator", "/ (n - sum_m).clamp_min(1e-8)", "/ (n - sum_m + 1).clamp_min(1e-8)",
          "difference of means with an off-by-one count of removals"),
        M("perturbation-shapley-kernel-size", "- np.log(kk) - np.log(s - kk)", "- np.log(kk)",
          "the Shapley kernel without its (S - |z|) factor"),
        M("perturbation-lstsq-weights-unsquared", "r = np.sqrt(w)[:, None]", "r = w[:, None]",
          "weighted least squares with the weights applied twice"),
    )),
    Module("explain.metrics", "src/percept/explain/metrics.py",
           ("tests/test_behaviour_explain.py", "tests/test_explain.py"), (
        M("metrics-pointing-side", "y, x = divmod(idx, saliency.shape[1])", "y, x = divmod(idx, saliency.shape[0])",
          "the pointing game unravels its argmax with the wrong side length"),
        M("metrics-auc-normalisation", "/ (len(curve) - 1))", "/ len(curve))", "AUC divided by the sample count"),
        M("metrics-pointing-tolerance-strict", "<= tolerance ** 2)", "< tolerance ** 2)",
          "a hit exactly at the tolerance distance is a miss"),
        M("metrics-mae-unnormalised", "return float((normalise(saliency) - mask.float()).abs().mean())",
          "return float((saliency - mask.float()).abs().mean())", "MAE on the raw map, not the normalised one"),
        M("metrics-saliency-area-binary", 'saliency_metric(float(norm.mean()), float(sig[0]))',
          'saliency_metric(float(kept.mean()), float(sig[0]))',
          "the saliency metric's area taken from the thresholded map"),
        M("metrics-insertion-swapped", "image * (1 - keep) + blurred * keep", "image * keep + blurred * (1 - keep)",
          "insertion starts from the image and blurs the salient pixels"),
    )),
    Module("explain.explainer", "src/percept/explain/explainer.py",
           ("tests/test_behaviour_explain.py", "tests/test_explain.py"), (
        M("explainer-entropy-kept", '"entropy": opts["entropy"] * entropy_loss(logits_removed)',
          '"entropy": opts["entropy"] * entropy_loss(logits_kept)',
          "the entropy term computed on the kept instead of the removed region"),
        M("explainer-area-summed", "return torch.stack(per_image).mean()", "return torch.stack(per_image).sum()",
          "the class-area loss summed instead of averaged over the batch"),
        M("explainer-non-target-selection", "non_target = torch.where(~sel, masks, low).amax(1)",
          "non_target = torch.where(sel, masks, low).amax(1)", "the non-target mask merges the target classes"),
        M("explainer-tv-no-vertical", "return (right.sum() + down.sum()) / n", "return right.sum() / n",
          "total variation without the vertical differences (the zero border, an option since issue 15)"),
        M("explainer-tv-reflect-no-vertical", "return (right + down).mean()", "return right.mean()",
          "total variation without the vertical differences (the reflect border, the default since issue 15)"),
        M("explainer-area-min-uses-max", "(idx < int(n * min_area)).float() - v", "(idx < int(n * max_area)).float() - v",
          "the minimum-area bound reads the maximum area"),
        M("explainer-entropy-softmax-axis", "probs = F.softmax(logits, dim=-1).clamp_min(1e-16)",
          "probs = F.softmax(logits, dim=0).clamp_min(1e-16)", "entropy of a softmax over the batch, not the classes"),
    )),
    Module("explain.gradcam", "src/percept/explain/gradcam.py",
           ("tests/test_behaviour_explain.py", "tests/test_explain.py"), (
        M("gradcam-align-corners", 'size=images.shape[-2:], mode="bilinear", align_corners=False)',
          'size=images.shape[-2:], mode="bilinear", align_corners=True)', "Grad-CAM upsampled with align_corners=True"),
        M("gradcam-no-relu", "maps.append(F.relu((alpha * a).sum(1)))", "maps.append((alpha * a).sum(1))", "Grad-CAM without its ReLU (eq. 2)"),
        M("gradcam-first-target-only", "torch.tensor([t[j] for t in targets])", "torch.tensor([t[0] for t in targets])",
          "every map explains the first target"),
        M("gradcam-alpha-max", "alpha = grad.mean(dim=(2, 3), keepdim=True)",
          "alpha = grad.amax(dim=(2, 3), keepdim=True)", "α from the largest gradient, not the spatial mean (eq. 1)"),
    )),
    Module("mpcs.loss", "src/percept/mpcs/loss.py", ("tests/test_behaviour_training.py", "tests/test_mpcs.py"), (
        M("ntxent-no-self-mask", 'sim = sim.masked_fill(self_mask, float("-inf"))', "sim = sim",
          "NT-Xent counts each view as its own negative"),
        M("ntxent-temperature-multiplies", "sim = (z @ z.T) / temperature", "sim = (z @ z.T) * temperature",
          "the temperature multiplies the similarities"),
        M("ntxent-no-normalize", "z = F.normalize(torch.cat([z1, z2]), dim=1)", "z = torch.cat([z1, z2])",
          "dot products instead of cosine similarities"),
        M("ntxent-partner-offset",
          "targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)\n    return F.cross_entropy",
          "targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).roll(1).to(z.device)\n"
          "    return F.cross_entropy", "the partner of view i is view i+N-1"),
        M("pair-accuracy-no-diagonal", '(z @ z.T).fill_diagonal_(float("-inf"))', "(z @ z.T)",
          "pair accuracy lets each view find itself"),
    )),
    Module("mpcs.pairs", "src/percept/mpcs/pairs.py", ("tests/test_behaviour_training.py", "tests/test_mpcs.py"), (
        M("pairs-ordered-400", "ORDERED = {40: 100, 100: 200, 200: 400, 400: 200}",
          "ORDERED = {40: 100, 100: 200, 200: 400, 400: 100}", "the ordered strategy pairs 400x with 100x"),
        M("pairs-random-same-magnification", "wanted = sorted(set(self.magnification.tolist()) - {m})",
          "wanted = sorted(set(self.magnification.tolist()))", "a random pair may repeat the magnification"),
        M("pairs-field-ignored", 'self.group = np.asarray(field if within == "field" else patient)',
          "self.group = np.asarray(patient)", 'within="field" pairs across fields of view'),
        M("pairs-partner-always-first", "partners[k] = pool[int(rng.integers(len(pool)))]", "partners[k] = pool[0]",
          "the partner is always the first image of the pool, never drawn"),
        M("pairs-last-anchor-never-drawn", "anchors = self.anchors[rng.integers(0, len(self.anchors), size=n)]",
          "anchors = self.anchors[rng.integers(0, len(self.anchors) - 1, size=n)]",
          "the last eligible anchor is never drawn"),
        M("pairs-target-not-present", "return [t for t in wanted if (g, t) in self._members]", "return wanted",
          "an anchor whose patient lacks the target magnification is kept"),
    )),
    Module("autoencoders.losses", "src/percept/autoencoders/losses.py",
           ("tests/test_behaviour_training.py", "tests/test_autoencoders.py"), (
        M("ae-loss-network-ignores-resize", "prepare_input(x, self.spec, self.resize,",
          "prepare_input(x, self.spec, None,",
          "the loss network ignores its resize option"),
        M("ae-kl-logvar-sign", "terms = 1 + logvar - mu.pow(2) - logvar.exp()",
          "terms = 1 - logvar - mu.pow(2) - logvar.exp()",
          "KL with the log-variance sign flipped"),
        M("ae-kl-batch-summed", ".flatten(1).sum(1)).mean()", ".flatten(1).sum(1)).sum()",
          "KL summed over the batch instead of averaged"),
        M("ae-perceptual-target-from-output", "want = self.network(target)", "want = self.network(output)",
          "the perceptual loss compares the output with itself"),
        M("ae-pixel-l1", "return F.mse_loss(reconstruction, image)", "return F.l1_loss(reconstruction, image)",
          "the pixel loss is L1"),
        M("ae-loss-network-trains", "return super().train(False)", "return super().train(mode)",
          "the loss network's batch norm leaves eval mode during training"),
    )),
    Module("features", "src/percept/features.py", ("tests/test_behaviour_core.py", "tests/test_features.py"), (
        M("features-min-size-exclusive", "if min(x.shape[-2:]) < spec.min_input_size:",
          "if min(x.shape[-2:]) <= spec.min_input_size:", "an input of exactly the minimum size is refused"),
        M("features-no-antialias", 'mode="bilinear", antialias=True, align_corners=False)',
          'mode="bilinear", antialias=False, align_corners=False)', "downsizing without antialiasing"),
        M("features-resize-height-only", "if resize is not None and tuple(x.shape[-2:]) != (resize, resize):",
          "if resize is not None and x.shape[-2] != resize:",
          "a non-square input whose height already matches is not resized"),
        M("features-stop-after-first-tap", "if self.stop_early and len(self._out) == len(self.taps):",
          "if self.stop_early and len(self._out) >= 1:", "the forward pass stops after the first tap"),
        M("features-nan-accepted", "if not bool(torch.isfinite(x.detach().sum())):", "if False:",
          "NaN images reach the network"),
        M("features-damaged-rows-unchecked", "if f[f\"taps/{tap}\"].shape[0] != len(self.rows):", "if False:",
          "a cache with a truncated tap is read"),
    )),
    Module("h5io", "src/percept/h5io.py", ("tests/test_behaviour_core.py", "tests/test_h5io.py"), (
        M("h5io-sweep-misses", 'path.parent.glob(f".{glob.escape(path.name)}.*.{suffix}")',
          'path.parent.glob(f"{glob.escape(path.name)}.*.{suffix}")', "the stale-temporary sweep misses its files"),
        M("h5io-sweep-not-called", "        os.replace(tmp, path)\n        remove_stale_temporaries(path)",
          "        os.replace(tmp, path)", "a successful write leaves stale temporaries behind"),
        M("h5io-sweep-unescaped", 'path.parent.glob(f".{glob.escape(path.name)}.*.{suffix}")',
          'path.parent.glob(f".{path.name}.*.{suffix}")', "the sweep reads [ ] in a file name as a glob class"),
        M("h5io-sweep-too-broad", 'path.parent.glob(f".{glob.escape(path.name)}.*.{suffix}")',
          'path.parent.glob(f".*.{suffix}")', "the sweep deletes other files' live temporaries"),
        M("h5io-incomplete-accepted", 'if not bool(f.attrs.get("complete", False)):', "if False:",
          "an unfinished file is read"),
        M("h5io-expect-no-roundtrip", "if json.loads(json.dumps(want, sort_keys=True)) != have:", "if want != have:",
          "a tuple in expect never matches the recorded list"),
        M("h5io-failed-temp-kept", "        with contextlib.suppress(FileNotFoundError):\n            tmp.unlink()",
          "        pass", "a failed write leaves its temporary"),
    )),
    Module("translation.losses", "src/percept/translation/losses.py",
           ("tests/test_behaviour_training.py", "tests/test_translation.py"), (
        M("translation-similarity-crossed", 'similarity(xa, fake["AB"]) + similarity(xb, fake["BA"])',
          'similarity(xa, fake["BA"]) + similarity(xb, fake["AB"])',
          "the similarity term compares each input with the other translation"),
        M("translation-cycle-crossed", "cycle_loss(xa, cyc_a) + cycle_loss(xb, cyc_b)",
          "cycle_loss(xa, cyc_b) + cycle_loss(xb, cyc_a)", "the cycle term compares each input with the other cycle"),
        M("translation-gan-discriminators-swapped",
          'gan_generator_loss(discriminators["B"](fake["AB"]), gan_kind)',
          'gan_generator_loss(discriminators["A"](fake["AB"]), gan_kind)',
          "the translation into B is judged by domain A's discriminator"),
        M("translation-reconstruction-wrong-decoder", "reconstruction_loss(x[d], model.decode(z[d], d))",
          'reconstruction_loss(x[d], model.decode(z[d], "A"))', "domain B is reconstructed by decoder A"),
        M("translation-colour-batch-summed", "return (dm + ds).mean()", "return (dm + ds).sum()",
          "colour statistics summed over the batch"),
        M("translation-discriminator-not-halved", "return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())",
          "return (real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean()", "the LSGAN discriminator loss not halved"),
        M("translation-weights-ignored", "total = total + float(weights[name]) * value", "total = total + value",
          "the weighted sum ignores the weights"),
    )),
)


# ------------------------------------------------------------------------------------------------ the runner

def tree_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files (what a commit of the working tree would hold)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True,
                         capture_output=True).stdout.decode()
    return [p for p in out.split("\0") if p]


def make_copy(root: Path, dest: Path, tests_rev: str | None) -> None:
    for rel in tree_files(root):
        src = root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if tests_rev:
        shutil.rmtree(dest / "tests", ignore_errors=True)
        archive = subprocess.run(["git", "archive", tests_rev, "tests"], cwd=root, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def env_for(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy / "src")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a restored file must never meet its mutant's cached bytecode
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    return env


PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not e2e", "--no-header", "-W", "ignore"]
# Imported once by the runner so that each forked test run starts without paying for them (never percept itself,
# which every run must import afresh from the mutated copy).
PRELOAD = ("numpy", "scipy", "torch", "torchvision", "h5py", "hdf5plugin", "pandas", "skimage.segmentation",
           "skimage.filters", "sklearn", "yaml", "jsonschema", "matplotlib.pyplot", "PIL.Image", "pytest")


def preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # pragma: no cover - an optional library; the tests will say if they need it
            pass


def run_tests(copy: Path, tests: list[str], timeout: float, fork: bool = True) -> tuple[int, float, str]:
    """pytest on ``tests`` inside ``copy``: (return code, seconds, output); -9 on a timeout.

    ``fork``: run pytest in a forked child of this (preloaded) process instead of a fresh interpreter — the
    same tests, without importing torch & co. for every mutant (most of a killed mutant's cost)."""
    t0 = time.perf_counter()
    if not fork:
        cmd = [sys.executable, "-m", "pytest", *PYTEST_ARGS, *tests]
        try:
            proc = subprocess.run(cmd, cwd=copy, env=env_for(copy), capture_output=True, text=True, timeout=timeout)
            rc, out = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out = -9, f"timed out after {timeout:.0f} s\n{exc.stdout or ''}"
        return rc, time.perf_counter() - t0, out
    if "percept" in sys.modules:
        raise RuntimeError("percept is imported in the runner: a forked run would not see the mutant")
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as log:
        pid = os.fork()
        if pid == 0:  # the child: never returns
            try:
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                os.chdir(copy)
                os.environ.update(env_for(copy))
                sys.path.insert(0, str(copy / "src"))
                sys.dont_write_bytecode = True
                import pytest

                code = int(pytest.main([*PYTEST_ARGS, *tests]))
                where = getattr(sys.modules.get("percept"), "__file__", "") or ""
                if not where.startswith(str(copy)):
                    print(f"percept was imported from {where!r}, not from the copy {copy}")
                    code = 4
            except BaseException:  # noqa: BLE001 - anything that escapes counts as a failed run
                import traceback

                traceback.print_exc()
                code = 3
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        deadline = t0 + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                rc = -9
                break
            time.sleep(0.1)
        log.seek(0)
        out = log.read().decode(errors="replace")
    if rc == -9:
        out = f"timed out after {timeout:.0f} s\n{out}"
    return rc, time.perf_counter() - t0, out


def first_failure(out: str) -> str:
    for line in out.splitlines():
        if line.startswith(("FAILED", "ERROR")):
            return line[:160]
    return out.strip().splitlines()[-1][:160] if out.strip() else ""


def apply(text: str, mutant: Mutant) -> str | None:
    """The mutated text, or None when the snippet does not occur exactly once (the code moved)."""
    if text.count(mutant.old) != 1:
        return None
    return text.replace(mutant.old, mutant.new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", action="append", help="run only this module (repeatable)")
    ap.add_argument("--mutant", action="append", help="run only this mutant id (repeatable)")
    ap.add_argument("--tests-rev", help="take tests/ from this git revision (e.g. to measure older tests)")
    ap.add_argument("--root", type=Path, default=REPO, help="the working tree to copy (default: this one)")
    ap.add_argument("--target", type=float, default=0.9, help="kill rate every module must reach (default 0.9)")
    ap.add_argument("--json", type=Path, help="write the per-mutant results here")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--check", action="store_true", help="check that every snippet applies and exit")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    ap.add_argument("--no-fork", dest="fork", action="store_false",
                    help="a fresh interpreter per test run instead of a forked child of a preloaded one (slower)")
    args = ap.parse_args(argv)

    names = {m.name for m in MODULES}
    unknown = set(args.module or ()) - names
    if unknown:
        ap.error(f"unknown module(s) {sorted(unknown)}; choose from {sorted(names)}")
    ids = [mu.id for m in MODULES for mu in m.mutants]
    if len(ids) != len(set(ids)):
        raise SystemExit("duplicate mutant ids")
    if set(args.mutant or ()) - set(ids):
        ap.error(f"unknown mutant(s) {sorted(set(args.mutant) - set(ids))}")
    modules = [m for m in MODULES if not args.module or m.name in args.module]
    if args.mutant:
        modules = [Module(m.name, m.file, m.tests, tuple(mu for mu in m.mutants if mu.id in args.mutant))
                   for m in modules]
        modules = [m for m in modules if m.mutants]

    if args.list or args.check:
        stale = 0
        for m in modules:
            text = (args.root / m.file).read_text()
            print(f"{m.name}  ({m.file}; tests: {', '.join(m.tests)})")
            for mu in m.mutants:
                ok = apply(text, mu) is not None
                stale += not ok
                print(f"  {'ok   ' if ok else 'STALE'} {mu.id:42s} {mu.bug}")
        print(f"{sum(len(m.mutants) for m in modules)} mutants in {len(modules)} modules, {stale} stale")
        return 2 if stale else 0

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before torch is imported (preload)
        os.environ.setdefault(var, "1")
    if args.fork:
        preload()
    tmp = Path(tempfile.mkdtemp(prefix="percept-mutants-"))
    copy = tmp / "tree"
    make_copy(args.root, copy, args.tests_rev)
    where = subprocess.run([sys.executable, "-c", "import percept; print(percept.__file__)"], cwd=copy,
                           env=env_for(copy), capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(copy)):
        raise SystemExit(f"percept imports from {where!r}, not from the copy {copy}: PYTHONPATH does not win")
    print(f"copy of {args.root} in {copy}" + (f" (tests from {args.tests_rev})" if args.tests_rev else ""), flush=True)

    results: list[dict] = []
    summary: list[tuple[str, int, int, int]] = []
    status = 0
    try:
        for m in modules:
            tests = [t for t in m.tests if (copy / t).is_file()]
            missing = [t for t in m.tests if t not in tests]
            print(f"\n== {m.name}: {len(m.mutants)} mutants; tests {' '.join(tests)}"
                  + (f" (missing, skipped: {' '.join(missing)})" if missing else ""), flush=True)
            if not tests:
                print("   no test file: every mutant survives")
            rc, secs, out = run_tests(copy, tests, 1800, args.fork) if tests else (0, 0.0, "")
            if rc != 0:
                print(f"   the unmutated tests fail (rc {rc}): {first_failure(out)}\n{out[-3000:]}")
                status = 2
                continue
            timeout = max(120.0, 4 * secs)
            path = copy / m.file
            original = path.read_text()
            killed = stale = 0
            for mu in m.mutants:
                mutated = apply(original, mu)
                if mutated is None:
                    stale += 1
                    status = 2
                    print(f"   STALE    {mu.id}: the old snippet occurs {original.count(mu.old)} times in {m.file}")
                    results.append({"module": m.name, "mutant": mu.id, "result": "stale"})
                    continue
                try:
                    path.write_text(mutated)
                    rc, secs, out = run_tests(copy, tests, timeout, args.fork) if tests else (0, 0.0, "")
                finally:
                    path.write_text(original)
                dead = rc != 0
                killed += dead
                why = first_failure(out) if dead else mu.bug
                print(f"   {'killed  ' if dead else 'SURVIVED'} {mu.id:42s} {secs:5.1f}s  {why}", flush=True)
                results.append({"module": m.name, "mutant": mu.id, "result": "killed" if dead else "survived",
                                "rc": rc, "seconds": round(secs, 1), "detail": why, "bug": mu.bug})
                if args.json:  # as it goes, so an interrupted run keeps what it measured
                    args.json.write_text(json.dumps({"tests_rev": args.tests_rev, "results": results}, indent=1))
            n = len(m.mutants) - stale
            summary.append((m.name, killed, n, stale))
            if n and killed / n < args.target:
                status = max(status, 1)
    finally:
        if args.keep:
            print(f"kept {copy}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print("\nmodule                     killed / mutants   rate" + ("   (stale)" if any(s[3] for s in summary) else ""))
    for name, killed, n, stale in summary:
        rate = f"{100 * killed / n:5.1f} %" if n else "    -"
        print(f"{name:26s} {killed:6d} / {n:<7d} {rate}" + (f"   ({stale} stale)" if stale else ""))
    k, n = sum(s[1] for s in summary), sum(s[2] for s in summary)
    if n:
        print(f"{'total':26s} {k:6d} / {n:<7d} {100 * k / n:5.1f} %")
    if args.json:
        args.json.write_text(json.dumps({"tests_rev": args.tests_rev, "results": results}, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main())
