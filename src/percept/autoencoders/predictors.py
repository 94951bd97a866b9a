"""Predictors on frozen embeddings: linear and small MLPs, trained for classification and object
positioning (early stopping on a validation part of the train split), several seeds; one tidy row per
(predictor, seed, task).

The papers' predictors (guspih/Perceptual-Autoencoders experiment.py ``main``): hidden layers [], [32], [64],
[32, 32], [64, 32], [64, 64], [128, 128] with LeakyReLU, a linear output trained with MSE on the one-hot
labels (``classification_loss: mse_onehot``, the default; ``cross_entropy`` — softmax / per-class sigmoid —
and ReLU are options).

Classification: single-label data → the arg-max output (softmax logits with cross-entropy), ``accuracy`` = top-1 accuracy (what the perceptual-autoencoder
papers report on SVHN and STL-10). Multi-label data (``shapes``: 1-2 of 4 shape classes per image) → a
sigmoid per class, and the headline ``accuracy`` is the **mean per-label accuracy** (the fraction of
(image, class) present/absent decisions that are right — top-1 accuracy's analogue when every class is a
yes/no question). Two more metrics are recorded for multi-label data: ``exact_match`` (every class of an
image right; harsh: an under-trained embedding scores ~0 on it) and ``mean_ap`` (macro average precision
over classes, threshold-free; chance = the class frequency).

Positioning: the normalised (x, y) centre of each class's object (``positions``; absent objects are
masked out), ``position_error`` = mean Euclidean distance in units of the image side.

Every row also carries ``chance``: the same metric of the constant predictor fitted on the train split
(the majority answer per class, the train mean position), the level an uninformative embedding reaches.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from percept.data.store import ImageDataset
from percept.h5io import get_json_attr, open_h5
from percept.ranking import average_precision

TASK_METRICS = {"classification": "accuracy", "position": "position_error"}
MULTI_LABEL_METRICS = ("accuracy", "exact_match", "mean_ap")


def predictor_name(hidden: Sequence[int]) -> str:
    return "linear" if not hidden else "mlp" + "x".join(str(int(h)) for h in hidden)


ACTIVATIONS = {"leaky_relu": nn.LeakyReLU, "relu": nn.ReLU}


def make_predictor(in_dim: int, out_dim: int, hidden: Sequence[int], activation: str = "leaky_relu") -> nn.Sequential:
    """Linear layers of the ``hidden`` sizes with ``activation`` (LeakyReLU(0.01), torch's default slope, as
    the papers' ``nn.LeakyReLU``), and a linear output."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, int(h)), ACTIVATIONS[activation]()]
        in_dim = int(h)
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class Target:
    """One prediction target: its loss and its test metric (lower or higher is better)."""

    def __init__(self, task: str, y: torch.Tensor, label_kind: str = "single", loss: str = "mse_onehot"):
        if loss not in ("mse_onehot", "cross_entropy"):
            raise ValueError(f"classification_loss must be mse_onehot or cross_entropy, got {loss!r}")
        self.task, self.y, self.label_kind, self.loss_kind = task, y, label_kind, loss
        if task == "classification":
            self.out_dim = int(y.max()) + 1 if label_kind == "single" else y.shape[1]
        else:
            self.out_dim = y.shape[1] * 2

    @property
    def _mse(self) -> bool:
        return self.task == "classification" and self.loss_kind == "mse_onehot"

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self._mse:  # the papers': MSE between the linear output and the one-hot (multi-hot) labels
            hot = F.one_hot(y, self.out_dim).float() if self.label_kind == "single" else y
            return F.mse_loss(out, hot)
        if self.task == "classification":
            if self.label_kind == "single":
                return F.cross_entropy(out, y)
            return F.binary_cross_entropy_with_logits(out, y)
        present = torch.isfinite(y)
        return F.mse_loss(out.view_as(y)[present], y[present])

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Test metrics of the outputs ``out`` (logits, or positions) against ``y``; the first is the headline."""
        if self.task == "classification":
            if self.label_kind == "single":
                return {"accuracy": float((out.argmax(1) == y).float().mean())}
            right = (out > (0.5 if self._mse else 0.0)) == (y > 0.5)
            aps = [average_precision(out[:, c], y[:, c] > 0.5) for c in range(y.shape[1])]
            return {"accuracy": float(right.float().mean()), "exact_match": float(right.all(1).float().mean()),
                    "mean_ap": float(np.nanmean(aps)) if not np.isnan(aps).all() else float("nan")}
        present = torch.isfinite(y[..., 0])
        dist = (out.view_as(y) - torch.nan_to_num(y)).norm(dim=-1)
        return {"position_error": float(dist[present].mean())}

    def metric(self, out: torch.Tensor, y: torch.Tensor) -> float:
        """The headline metric (:data:`TASK_METRICS`)."""
        return self.metrics(out, y)[TASK_METRICS[self.task]]

    def constant_output(self, y_train: torch.Tensor) -> torch.Tensor:
        """The output of the constant predictor fitted on ``y_train``: the majority answer per class (single
        label: the most frequent class; multi-label: the log-odds of each class's train frequency), or the
        train mean position of each object (the chance level of the metrics)."""
        if self.task == "classification":
            if self.label_kind == "single":
                counts = torch.bincount(y_train, minlength=self.out_dim).double()
                if self._mse:  # the MSE-optimal constant: the class frequencies
                    return (counts / counts.sum()).float()
                return torch.log(counts + 1e-9).float()
            if self._mse:
                return y_train.float().mean(0)
            p = y_train.double().mean(0).clamp(1e-6, 1 - 1e-6)
            return torch.log(p / (1 - p)).float()
        mean = torch.nanmean(y_train.double(), dim=0)
        return torch.nan_to_num(mean).float().reshape(-1)


def targets(ds: ImageDataset, classification_loss: str = "mse_onehot") -> dict[str, Target]:
    """The prediction targets the dataset supports, one entry per image of ``ds`` (in its row order)."""
    out = {}
    labels = ds.labels()
    if labels is not None and ds.label_kind in ("single", "multi"):
        out["classification"] = Target("classification", labels.long() if ds.label_kind == "single"
                                       else labels.float(), ds.label_kind, classification_loss)
    if ds.has_positions:
        out["position"] = Target("position", ds.positions().float())
    return out


def train_predictor(x: torch.Tensor, target: Target, train: np.ndarray, val: np.ndarray, hidden: Sequence[int], *,
                    seed: int, epochs: int, lr: float, weight_decay: float, batch_size: int,
                    patience: int, activation: str = "leaky_relu") -> tuple[nn.Module, int]:
    """Adam with early stopping on the validation loss, starting from the constant predictor (see
    :meth:`Target.constant_output`); returns the best model and the epochs trained."""
    torch.manual_seed(seed)
    model = make_predictor(x.shape[1], target.out_dim, hidden, activation)
    # Start from the constant predictor (zero output weights, the train prior as bias): a default-initialised
    # output layer on a standardised embedding adds noise of the targets' own scale that early stopping on a
    # small validation part may never remove (a linear position predictor then ends worse than the mean).
    with torch.no_grad():
        model[-1].weight.zero_()
        model[-1].bias.copy_(target.constant_output(target.y[torch.from_numpy(train)]))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    y = target.y
    best, best_state, since, epoch = float("inf"), None, 0, 0
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.from_numpy(train)[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = target.loss(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            v = float(target.loss(model(x[val]), y[val]))
        if v < best - 1e-6:
            best, best_state, since = v, copy.deepcopy(model.state_dict()), 0
        else:
            since += 1
            if since >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), epoch


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Predictors are tiny MLPs: intra-op threads only add synchronisation (several times slower on a busy CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_embeddings(embeddings: np.ndarray, ds: ImageDataset, split_codes: np.ndarray,
                        hidden_list: Iterable[Sequence[int]], seeds: Iterable[int], options: Mapping[str, Any],
                        tasks: Sequence[str] | None = None) -> pd.DataFrame:
    """Train every predictor for every seed and target on the train split; score on the test split.

    ``embeddings`` and ``split_codes`` are per image of ``ds`` (opened without a split); embeddings are
    standardised with the train split's statistics; a seeded ``val_fraction`` of train is validation.
    """
    train_code, test_code = ds.split_names.index("train"), ds.split_names.index("test")
    rows = np.arange(len(embeddings))
    x = torch.from_numpy(np.asarray(embeddings, np.float32))
    tr_all = rows[split_codes == train_code]
    te = rows[split_codes == test_code]
    mean, std = x[tr_all].mean(0), x[tr_all].std(0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # a constant dimension stays as it is
    x = (x - mean) / std
    found = targets(ds, options.get("classification_loss", "mse_onehot"))
    with single_thread():
        records = _train_all(x, found, tr_all, te, hidden_list, seeds, options, tasks)
    return pd.DataFrame.from_records(records)


def _train_all(x, found, tr_all, te, hidden_list, seeds, options, tasks) -> list[dict[str, Any]]:
    records = []
    for name, target in found.items():
        if tasks is not None and name not in tasks:
            continue
        const = target.constant_output(target.y[tr_all])
        chance = target.metrics(const.expand(len(te), -1), target.y[te])
        for seed in seeds:
            perm = np.random.default_rng(seed).permutation(tr_all)
            n_val = max(1, int(round(len(perm) * float(options["val_fraction"]))))
            train, val = np.sort(perm[n_val:]), np.sort(perm[:n_val])
            for hidden in hidden_list:
                model, trained = train_predictor(
                    x, target, train, val, hidden, seed=int(seed), epochs=int(options["epochs"]),
                    lr=float(options["lr"]), weight_decay=float(options["weight_decay"]),
                    batch_size=int(options["batch_size"]), patience=int(options["patience"]),
                    activation=options.get("activation", "leaky_relu"))
                with torch.inference_mode():
                    values = target.metrics(model(x[te]), target.y[te])
                for metric, value in values.items():
                    records.append({"task": name, "metric": metric, "predictor": predictor_name(hidden),
                                    "seed": int(seed), "value": value, "chance": chance[metric],
                                    "epochs_trained": trained, "train_size": len(train), "test_size": len(te)})
    return records


def evaluate_embedding_file(embeddings_path: str, dataset_path: str, hidden_list: Iterable[Sequence[int]],
                            seeds: Iterable[int], options: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`evaluate_embeddings` on a cached embeddings file, with its recorded metadata as columns."""
    ds = ImageDataset(dataset_path)
    with open_h5(embeddings_path, "embeddings", expect={"dataset_fingerprint": ds.fingerprint}) as f:
        emb = f["embeddings"][...]
        file_rows = f["rows"][...]
        meta = {k: get_json_attr(f, k) for k in ("loss", "embedding_size", "dataset")}
    if not np.array_equal(file_rows, np.arange(len(ds))):
        raise ValueError(f"{embeddings_path}: embeddings do not cover every row of {dataset_path}")
    with open_h5(dataset_path, "dataset") as f:
        codes = f["split"][...]
    df = evaluate_embeddings(emb, ds, codes, hidden_list, seeds, options)
    for k, v in reversed(list(meta.items())):
        df.insert(0, k, v)
    return df
