"""Incremental per-symbol features computed from the mid price, one O(1) update per quote.

Role: the model inputs. ``FeatureState.values()`` is ordered as ``FEATURE_NAMES``; the drift
monitor and the training reference use the same order.

Invariants:
- Plain floats and ``__slots__``: ``update`` allocates nothing but floats (hot path, ~0.3 µs).
- Warm-up: EMAs and the variance use ``alpha = max(alpha, 1/n)`` for the first ticks (a running
  mean), so early values are unbiased instead of anchored to the first price; ``ready`` turns
  true after ``min_ticks`` updates.
- Non-positive or non-finite mids are ignored (a bad tick must not poison every later value).
- Times are passed in (``ts_ns``); nothing here reads a clock.
"""

from __future__ import annotations

import math

FEATURE_NAMES: tuple[str, ...] = ("ret_bps", "vol_bps", "trend_bps", "zscore")

DEFAULT_ALPHA_FAST = 2.0 / 21.0  # ~20-tick EMA
DEFAULT_ALPHA_SLOW = 2.0 / 101.0  # ~100-tick EMA
DEFAULT_ALPHA_VAR = 2.0 / 101.0  # ~100-tick EW variance of log returns
DEFAULT_MIN_TICKS = 50

_log = math.log
_sqrt = math.sqrt
_isfinite = math.isfinite


class FeatureState:
    """Features of one symbol. Call ``update(mid, ts_ns)`` for every quote."""

    __slots__ = (
        "alpha_fast",
        "alpha_slow",
        "alpha_var",
        "ema_fast",
        "ema_slow",
        "last_mid",
        "last_ret",
        "last_ts_ns",
        "min_ticks",
        "n",
        "var",
        "warm_n",
    )

    def __init__(
        self,
        alpha_fast: float = DEFAULT_ALPHA_FAST,
        alpha_slow: float = DEFAULT_ALPHA_SLOW,
        alpha_var: float = DEFAULT_ALPHA_VAR,
        min_ticks: int = DEFAULT_MIN_TICKS,
    ) -> None:
        for name, a in (
            ("alpha_fast", alpha_fast),
            ("alpha_slow", alpha_slow),
            ("alpha_var", alpha_var),
        ):
            if not 0.0 < a <= 1.0:
                raise ValueError(f"{name} must be within (0, 1], got {a}")
        self.alpha_fast = alpha_fast
        self.alpha_slow = alpha_slow
        self.alpha_var = alpha_var
        self.min_ticks = min_ticks
        # Past this count every 1/n is below its alpha, so the warm-up branch is a no-op.
        self.warm_n = int(1.0 / min(alpha_fast, alpha_slow, alpha_var)) + 2
        self.ema_fast = 0.0
        self.ema_slow = 0.0
        self.var = 0.0
        self.last_mid = 0.0
        self.last_ret = 0.0
        self.n = 0
        self.last_ts_ns = 0

    def update(self, mid: float, ts_ns: int) -> None:
        if not (mid > 0.0 and _isfinite(mid)):
            return
        n = self.n + 1
        self.n = n
        self.last_ts_ns = ts_ns
        if n == 1:
            self.ema_fast = self.ema_slow = self.last_mid = mid
            return
        r = _log(mid / self.last_mid)
        self.last_mid = mid
        self.last_ret = r
        if n > self.warm_n:
            # Steady state: plain EMAs, no warm-up branch (the hot path).
            self.ema_fast += self.alpha_fast * (mid - self.ema_fast)
            self.ema_slow += self.alpha_slow * (mid - self.ema_slow)
            self.var += self.alpha_var * (r * r - self.var)
            return
        # Warm-up: alpha = max(alpha, 1/count) is a running mean until the EMA takes over.
        self.ema_fast += max(self.alpha_fast, 1.0 / n) * (mid - self.ema_fast)
        self.ema_slow += max(self.alpha_slow, 1.0 / n) * (mid - self.ema_slow)
        # n - 1 returns so far; zero-mean EW variance (drift is negligible at tick scale).
        self.var += max(self.alpha_var, 1.0 / (n - 1)) * (r * r - self.var)

    @property
    def ready(self) -> bool:
        return self.n >= self.min_ticks

    @property
    def ret_bps(self) -> float:
        return self.last_ret * 1e4

    @property
    def vol_bps(self) -> float:
        return _sqrt(self.var) * 1e4

    @property
    def trend_bps(self) -> float:
        slow = self.ema_slow
        return (self.ema_fast - slow) / slow * 1e4 if slow else 0.0

    @property
    def zscore(self) -> float:
        """Distance of the mid from the slow EMA, in units of one tick's volatility (vol × mid)."""
        scale = _sqrt(self.var) * self.last_mid
        return (self.last_mid - self.ema_slow) / scale if scale else 0.0

    def values(self) -> tuple[float, ...]:
        """Current features in ``FEATURE_NAMES`` order."""
        var = self.var
        mid = self.last_mid
        slow = self.ema_slow
        sd = _sqrt(var)
        scale = sd * mid
        return (
            self.last_ret * 1e4,
            sd * 1e4,
            (self.ema_fast - slow) / slow * 1e4 if slow else 0.0,
            (mid - slow) / scale if scale else 0.0,
        )
