"""Population Stability Index of live features against the training reference.

Role: feed ``model_drift_psi`` and the drift gate (PSI > 0.3 no trade, 0.2..0.3 size halved).

Invariants:
- ``observe`` is O(n_features): a ring buffer keeps the last ``window`` bin indexes per feature
  and the per-bin counts are updated incrementally (one bisect, two counter changes per feature).
- ``psi()`` is 0.0 until ``min_samples`` observations; otherwise the max over features of
  ``sum((a - e) * ln(a / e))`` with both fractions floored at ``EPSILON`` (empty bins are finite).
- Bins are the reference's: a value equal to an edge goes to the upper bin (``bisect_right``).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right

from engine.strategy.registry import Reference

EPSILON = 1e-4


class PsiMonitor:
    """Population stability index of one feature against the model's training reference: an
    O(1) update per value over fixed bins and a rolling window; the drift gate reads `psi`."""

    __slots__ = (
        "_counts",
        "_edges",
        "_expected",
        "_log_expected",
        "_n",
        "_nf",
        "_pos",
        "_ring",
        "_seen",
        "min_samples",
        "reference",
        "window",
    )

    def __init__(self, reference: Reference, window: int = 2000, min_samples: int = 200) -> None:
        if window < 1 or not 1 <= min_samples <= window:
            raise ValueError(
                f"need window >= 1 and 1 <= min_samples <= window, got "
                f"window={window} min_samples={min_samples}"
            )
        if any(
            len(e) + 1 != len(x) for e, x in zip(reference.edges, reference.expected, strict=True)
        ):
            raise ValueError("reference: every feature needs len(edges) + 1 expected fractions")
        if max(len(x) for x in reference.expected) > 255:
            raise ValueError("reference: at most 255 bins per feature")
        self.reference = reference
        self.window = window
        self.min_samples = min_samples
        self._edges = [list(e) for e in reference.edges]
        self._expected = [[max(v, EPSILON) for v in x] for x in reference.expected]
        self._log_expected = [[math.log(v) for v in x] for x in self._expected]
        self._counts = [[0] * len(x) for x in reference.expected]
        self._nf = len(self._edges)
        # Flat ring of bin indexes: slot ``pos * nf + i`` holds feature i of one observation.
        self._ring = array("B", bytes(window * self._nf))
        self._pos = 0
        self._n = 0
        self._seen = 0

    @property
    def n(self) -> int:
        """Observations currently in the window."""
        return self._n

    @property
    def seen(self) -> int:
        """Observations since creation (or the last ``reset``)."""
        return self._seen

    def reset(self) -> None:
        for c in self._counts:
            c[:] = [0] * len(c)
        self._pos = self._n = self._seen = 0

    def observe(self, values: tuple[float, ...]) -> None:
        """Add one feature row (ordered as the reference's ``feature_names``)."""
        ring = self._ring
        base = self._pos * self._nf
        counts = self._counts
        full = self._n == self.window
        for i, edges in enumerate(self._edges):
            b = bisect_right(edges, values[i])
            c = counts[i]
            if full:
                c[ring[base + i]] -= 1
            c[b] += 1
            ring[base + i] = b
        self._pos = pos = self._pos + 1
        if pos == self.window:
            self._pos = 0
        if not full:
            self._n += 1
        self._seen += 1

    def _feature_psi(self, i: int) -> float:
        n = self._n
        total = 0.0
        for c, e, log_e in zip(
            self._counts[i], self._expected[i], self._log_expected[i], strict=True
        ):
            a = max(c / n, EPSILON)
            total += (a - e) * (math.log(a) - log_e)
        return total

    def per_feature(self) -> dict[str, float]:
        """PSI of each feature (all 0.0 until ``min_samples``)."""
        names = self.reference.feature_names
        if self._n < self.min_samples:
            return dict.fromkeys(names, 0.0)
        return {name: self._feature_psi(i) for i, name in enumerate(names)}

    def psi(self) -> float:
        """Worst feature's PSI over the window; 0.0 until ``min_samples`` observations."""
        if self._n < self.min_samples:
            return 0.0
        return max(self._feature_psi(i) for i in range(self._nf))
