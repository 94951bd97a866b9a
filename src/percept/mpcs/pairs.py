"""The paper's pair sampling strategies: which two magnifications of one tissue form a positive pair.

- ordered pair (MPCS-OP): 40x→100x, 100x→200x, 200x→400x;
- random pair (MPCS-RP): any two distinct magnifications;
- fixed pair (MPCS-FP): 200x→400x.

Whose images form a pair (``within``):

- ``sequence`` (the authors' convention, the default): the same patient **and** the same image sequence number,
  only for sequence numbers present at all four magnifications. BreakHis file names end in that number
  (``SOB_B_A-14-22549AB-40-001.png``) and the reference keys its images by ``patient + '_' + sequence``,
  keeping the keys found at 40x, 100x, 200x and 400x
  (prakashchhipa/Magnification-Prior-Self-Supervised-Method, src/self_supervised/apply/datasets.py,
  ``BreakHis_Dataset_SSL``). One epoch is one pair per such key, in a random order, with the magnifications
  drawn as its ``__getitem__`` draws them: ordered picks one of four rows of
  ``[(40, 100), (100, 200), (200, 400), (200, 400)]`` (200x→400x twice as often as the others), random two
  distinct magnifications uniformly, fixed always 200x→400x.
- ``patient`` (a named option, the project's earlier behaviour): any image of the same patient at the target
  magnification (``ORDERED`` maps 400x to 200x), anchors drawn uniformly among the images that have one.
- ``field``: as ``patient`` but within a field of view (datasets with a ``field`` id, such as the embedded set).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

MAGNIFICATIONS = (40, 100, 200, 400)
ORDERED = {40: 100, 100: 200, 200: 400, 400: 200}
FIXED = {200: 400}
# The reference's ordered draw: randrange(4) picks a row; rows 2 and 3 are both 200x→400x (datasets.py).
ORDERED_ROWS = ((40, 100), (100, 200), (200, 400), (200, 400))
WITHIN = ("sequence", "patient", "field")


class PairSampler:
    """Draw positive pairs ``(anchor, partner)`` of positions into the given per-image arrays."""

    def __init__(self, strategy: str, magnification: np.ndarray, patient: np.ndarray, *, within: str = "sequence",
                 sequence: np.ndarray | None = None, field: np.ndarray | None = None):
        if strategy not in ("ordered", "random", "fixed"):
            raise ValueError(f"unknown pair strategy {strategy!r}; allowed: ordered, random, fixed")
        if within not in WITHIN:
            raise ValueError(f"within must be one of {WITHIN}, got {within!r}")
        if within == "field" and field is None:
            raise ValueError("within='field' needs the per-image field ids (meta/field), which this dataset lacks")
        if within == "sequence" and sequence is None:
            raise ValueError("within='sequence' needs the per-image sequence numbers (meta/sequence), which this "
                             "dataset lacks: regenerate it (make_magnification / prepare breakhis) or set "
                             "mpcs.pretrain.within: patient")
        self.strategy = strategy
        self.within = within
        self.magnification = np.asarray(magnification)
        self.patient = np.asarray(patient)
        if within == "sequence":
            self._init_sequence(np.asarray(sequence))
            return
        self.group = np.asarray(field if within == "field" else patient)
        tmp: dict[tuple, list[int]] = defaultdict(list)
        for i, (g, m) in enumerate(zip(self.group.tolist(), self.magnification.tolist())):
            tmp[(g, m)].append(i)
        self._members = {k: np.array(v) for k, v in tmp.items()}
        self.anchors = np.array([i for i in range(len(self.group)) if self.targets(i)], dtype=np.int64)
        if len(self.anchors) == 0:
            raise ValueError(f"no image has a {strategy}-pair partner (magnifications present: "
                             f"{sorted(set(self.magnification.tolist()))}, within the same {within})")
        self.epoch_size = len(self.magnification)

    def _init_sequence(self, sequence: np.ndarray) -> None:
        by_key: dict[tuple, dict[int, int]] = defaultdict(dict)
        for i, (p, s, m) in enumerate(zip(self.patient.tolist(), sequence.tolist(), self.magnification.tolist())):
            by_key[(p, s)][int(m)] = i  # a repeated key keeps its last image, as the reference's dict does
        keys = sorted(k for k, v in by_key.items() if all(m in v for m in MAGNIFICATIONS))
        if not keys:
            raise ValueError("no (patient, sequence number) has images at all of 40x, 100x, 200x and 400x: "
                             "nothing to pair by sequence (set mpcs.pretrain.within: patient to pair any images "
                             "of a patient)")
        self.keys = keys
        # (key, magnification) -> position; one row per complete key, one column per magnification
        self._table = np.array([[by_key[k][m] for m in MAGNIFICATIONS] for k in keys], np.int64)
        self.anchors = self._table.ravel()
        self.epoch_size = len(keys)  # the reference's len(dataset): one pair per complete key

    def targets(self, i: int) -> list[int]:
        """(``patient``/``field``) The magnifications image ``i`` may be paired with that its group has."""
        m, g = int(self.magnification[i]), self.group[i].item()
        if self.strategy == "ordered":
            wanted = [ORDERED[m]] if m in ORDERED else []
        elif self.strategy == "fixed":
            wanted = [FIXED[m]] if m in FIXED else []
        else:
            wanted = sorted(set(self.magnification.tolist()) - {m})
        return [t for t in wanted if (g, t) in self._members]

    def magnification_pairs(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(``sequence``) ``n`` (first, second) magnification column indices, drawn as the reference does."""
        if self.strategy == "fixed":
            return np.tile([2, 3], (n, 1))
        if self.strategy == "ordered":
            rows = np.array([[MAGNIFICATIONS.index(a), MAGNIFICATIONS.index(b)] for a, b in ORDERED_ROWS])
            return rows[rng.integers(0, 4, size=n)]
        first = rng.integers(0, 4, size=n)
        second = (first + rng.integers(1, 4, size=n)) % 4  # uniform over the three others, as its redraw loop
        return np.stack([first, second], 1)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` pairs of positions. ``sequence``: complete keys in shuffled epochs (each key once before any
        repeats), magnifications per :meth:`magnification_pairs`; otherwise anchors uniformly among eligible
        images and partners per the strategy."""
        if self.within == "sequence":
            reps = -(-n // len(self.keys))
            rows = np.concatenate([rng.permutation(len(self.keys)) for _ in range(reps)])[:n]
            cols = self.magnification_pairs(n, rng)
            return self._table[rows, cols[:, 0]], self._table[rows, cols[:, 1]]
        anchors = self.anchors[rng.integers(0, len(self.anchors), size=n)]
        partners = np.empty(n, np.int64)
        for k, i in enumerate(anchors):
            options = self.targets(int(i))
            target = options[int(rng.integers(len(options)))]
            pool = self._members[(self.group[i].item(), target)]
            partners[k] = pool[int(rng.integers(len(pool)))]
        return anchors, partners
