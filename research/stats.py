"""Campaign statistics: per-period metrics, the deflated Sharpe ratio and the probability of
backtest overfitting.

Role: pure functions over equity curves and return matrices; no I/O.

Invariants:
- Returns are simple per-candle returns of the equity curve; Sharpe is annualised with the
  candles per year of the interval; an empty or flat series has Sharpe 0, never NaN.
- ``deflated_sharpe`` follows Bailey & López de Prado (2014): the probability that the true
  Sharpe exceeds the best one expected from ``n_trials`` unskilled trials, given the sample's
  length, skew and kurtosis (one trial: the probabilistic Sharpe against 0).
- ``pbo`` is combinatorially symmetric cross-validation (Bailey et al. 2017): split the periods
  into ``blocks`` groups, for every half as in-sample pick the best candidate there and rank it
  out of sample; PBO is the share of splits where it ranks below the median. None with fewer
  than two candidates or too few periods.
"""

from __future__ import annotations

import math
from itertools import combinations, pairwise
from typing import Any

import numpy as np
from scipy.stats import kurtosis, norm, skew

EULER_GAMMA = 0.5772156649015329


def returns(equity: list[float]) -> list[float]:
    return [b / a - 1.0 for a, b in pairwise(equity) if a > 0]


def sharpe(rets: list[float], periods_per_year: float) -> float:
    if len(rets) < 2:
        return 0.0
    sd = float(np.std(rets, ddof=1))
    return 0.0 if sd <= 0 else float(np.mean(rets)) / sd * math.sqrt(periods_per_year)


def max_drawdown(equity: list[float]) -> float:
    peak, worst = -math.inf, 0.0
    for v in equity:
        peak = max(peak, v)
        if peak > 0:
            worst = max(worst, 1.0 - v / peak)
    return worst


def drawdown_curve(equity: list[float]) -> list[float]:
    peak, out = -math.inf, []
    for v in equity:
        peak = max(peak, v)
        out.append(1.0 - v / peak if peak > 0 else 0.0)
    return out


def deflated_sharpe(rets: list[float], trial_sharpes: list[float]) -> float:
    """DSR of ``rets`` (per-period Sharpe, not annualised) given the per-period Sharpes of all
    trials (``rets``' own included)."""
    t = len(rets)
    if t < 3:
        return 0.0
    sd = float(np.std(rets, ddof=1))
    if sd <= 0:
        return 0.0
    sr = float(np.mean(rets)) / sd
    n = len(trial_sharpes)
    sr0 = 0.0
    if n > 1:
        v = float(np.var(trial_sharpes, ddof=1))
        sr0 = math.sqrt(v) * (
            (1 - EULER_GAMMA) * norm.ppf(1 - 1.0 / n)
            + EULER_GAMMA * norm.ppf(1 - 1.0 / (n * math.e))
        )
    g3 = float(skew(rets))
    g4 = float(kurtosis(rets, fisher=False))
    denom = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr
    if not math.isfinite(denom) or denom <= 0:
        return 0.0
    return float(norm.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(denom)))


def pbo(matrix: list[list[float]], blocks: int = 8) -> float | None:
    """PBO of the candidates whose per-period returns are the columns of ``matrix``."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[1] < 2 or m.shape[0] < 2 * blocks:
        return None
    groups = np.array_split(np.arange(m.shape[0]), blocks)
    n = m.shape[1]
    below = total = 0
    for ins in combinations(range(blocks), blocks // 2):
        is_rows = np.concatenate([groups[i] for i in ins])
        oos_rows = np.concatenate([groups[i] for i in range(blocks) if i not in ins])
        best = int(np.argmax(_sharpes(m[is_rows])))
        oos = _sharpes(m[oos_rows])
        rank = float((oos < oos[best]).sum() + 1)  # 1 = worst out of sample
        omega = rank / (n + 1)
        below += math.log(omega / (1 - omega)) <= 0
        total += 1
    return below / total


def _sharpes(m: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    sd = m.std(axis=0, ddof=1)
    mean = m.mean(axis=0)
    return np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), 0.0)
