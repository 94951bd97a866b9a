"""The paper's pair sampling strategies: which two magnifications of one tissue form a positive pair.

- ordered pair (MPCS-OP): 40x→100x, 100x→200x, 200x→400x, 400x→200x;
- random pair (MPCS-RP): any two distinct magnifications;
- fixed pair (MPCS-FP): 200x→400x.

Both images of a pair always come from the same patient; with ``within="field"`` (datasets that record
which images show the same field of view, such as the embedded ``magnification`` set) the partner is an
image of the same field.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

ORDERED = {40: 100, 100: 200, 200: 400, 400: 200}
FIXED = {200: 400}


class PairSampler:
    """Draw positive pairs ``(anchor, partner)`` of positions into the given per-image arrays."""

    def __init__(self, strategy: str, magnification: np.ndarray, patient: np.ndarray,
                 field: np.ndarray | None = None, within: str = "patient"):
        if strategy not in ("ordered", "random", "fixed"):
            raise ValueError(f"unknown pair strategy {strategy!r}; allowed: ordered, random, fixed")
        if within not in ("patient", "field"):
            raise ValueError(f"within must be 'patient' or 'field', got {within!r}")
        if within == "field" and field is None:
            raise ValueError("within='field' needs the per-image field ids (meta/field), which this dataset lacks")
        self.strategy = strategy
        self.magnification = np.asarray(magnification)
        self.patient = np.asarray(patient)
        self.group = np.asarray(field if within == "field" else patient)
        self.within = within
        self._members: dict[tuple, np.ndarray] = {}
        tmp: dict[tuple, list[int]] = defaultdict(list)
        for i, (g, m) in enumerate(zip(self.group.tolist(), self.magnification.tolist())):
            tmp[(g, m)].append(i)
        self._members = {k: np.array(v) for k, v in tmp.items()}
        self.anchors = np.array([i for i in range(len(self.group)) if self.targets(i)], dtype=np.int64)
        if len(self.anchors) == 0:
            raise ValueError(f"no image has a {strategy}-pair partner (magnifications present: "
                             f"{sorted(set(self.magnification.tolist()))}, within the same {within})")

    def targets(self, i: int) -> list[int]:
        """The magnifications that image ``i`` may be paired with and that its patient/field has."""
        m, g = int(self.magnification[i]), self.group[i].item()
        if self.strategy == "ordered":
            wanted = [ORDERED[m]] if m in ORDERED else []
        elif self.strategy == "fixed":
            wanted = [FIXED[m]] if m in FIXED else []
        else:
            wanted = sorted(set(self.magnification.tolist()) - {m})
        return [t for t in wanted if (g, t) in self._members]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` pairs: anchors uniformly among eligible images, partners per the strategy."""
        anchors = self.anchors[rng.integers(0, len(self.anchors), size=n)]
        partners = np.empty(n, np.int64)
        for k, i in enumerate(anchors):
            options = self.targets(int(i))
            target = options[int(rng.integers(len(options)))]
            pool = self._members[(self.group[i].item(), target)]
            partners[k] = pool[int(rng.integers(len(pool)))]
        return anchors, partners
