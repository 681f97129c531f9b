"""The engine's alert rules: the runbook alerts, evaluated on the engine's own metric series.

Role: ``AlertEngine.evaluate`` runs once a second over the engine's private Prometheus registry —
the very series the textfile exports — so the engine's verdict and a Prometheus server loading
``deploy/prometheus/cockpit_alerts.yml`` (same names, same expressions, same thresholds) agree.
Each rule yields the label sets it fires for; the engine keeps one alert per (rule, labels):
``firing`` since when, with its value, then ``resolved``. ``alerts_firing{alertname}`` is 1 while
any of a rule's alerts fires.

Rules (mirrored one to one in the rules file; thresholds are the profile defaults there):
- BudgetDepleted: ``gate_budget_active == 1 or daily_budget_left{scope="account"} <= 0``
- SLOGateStuck: SLO gate active more than 25 of the last 30 minutes
- CanaryImbalance: ``|canary_trades_total / trades_total - canary_share| > 0.05`` (≥ 20 trades)
- FeaturesMissing ``features_missing_ratio > 0.01``; FeedDislocation ``feed_dislocation_bps > 5``;
  DataStale ``data_stale_seconds > 1``
- ModelDrift: ``model_drift_psi > PSI_HALVE``
- ReconciliationMismatch ``reconciliation_open_mismatches > 0``
- BreakerTripped: ``gate_error_rate_active == 1 or gate_slippage_active == 1``
- ClockSkew ``abs(time_skew_seconds) > MAX_TIME_SKEW_MS``; DBWriteErrors: errors in the last 5 min

Invariants: evaluation only reads the registry (it never changes a trading decision); windows are
bounded by time (30 min / 5 min of one-second samples); a rule that raises is reported as firing
``AlertRuleError`` rather than silently passing (fail loud); transitions are reported through
``on_change`` exactly once each way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

Labels = tuple[tuple[str, str], ...]
Hits = list[tuple[Labels, float]]


class Series:
    """Current samples of the registry, by metric sample name."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.by_name: dict[str, list[tuple[Labels, float]]] = {}
        for metric in registry.collect():
            for s in metric.samples:
                labels = tuple(sorted(s.labels.items()))
                self.by_name.setdefault(s.name, []).append((labels, float(s.value)))

    def all(self, name: str) -> list[tuple[Labels, float]]:
        return self.by_name.get(name, [])

    def one(self, name: str, default: float = 0.0) -> float:
        vals = self.by_name.get(name)
        return vals[0][1] if vals else default


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    severity: str  # page | warn
    summary: str
    hits: Callable[[Series, History], Hits]


class History:
    """One-second samples of a few series over the longest rule window (30 minutes)."""

    def __init__(self, horizon_s: float = 1800.0) -> None:
        self.horizon_us = int(horizon_s * 1e6)
        self.now_us = 0  # the evaluation under way
        self.samples: dict[str, deque[tuple[int, float]]] = {}

    def add(self, name: str, now_us: int, value: float) -> None:
        d = self.samples.setdefault(name, deque())
        d.append((now_us, value))
        while d and d[0][0] < now_us - self.horizon_us:
            d.popleft()

    def avg_over(self, name: str, now_us: int, window_s: float) -> tuple[float, float]:
        """(average, seconds covered) over the last ``window_s``."""
        since = now_us - int(window_s * 1e6)
        vals = [(t, v) for t, v in self.samples.get(name, ()) if t >= since]
        if not vals:
            return 0.0, 0.0
        return sum(v for _, v in vals) / len(vals), (vals[-1][0] - vals[0][0]) / 1e6

    def increase(self, name: str, now_us: int, window_s: float) -> float:
        since = now_us - int(window_s * 1e6)
        vals = [v for t, v in self.samples.get(name, ()) if t >= since]
        return vals[-1] - vals[0] if len(vals) > 1 else 0.0


def _gt(series: Iterable[tuple[Labels, float]], limit: float) -> Hits:
    return [(labels, v) for labels, v in series if v > limit]


def _above(name: str, severity: str, summary: str, metric: str, limit: float) -> Rule:
    """A rule that fires for every series of ``metric`` above ``limit`` (with its labels)."""
    return Rule(name, severity, summary, lambda s, h: _gt(s.all(metric), limit))


def standard_rules(
    *, psi_halve: float = 0.2, max_skew_s: float = 0.5, dislocation_bps: float = 5.0
) -> list[Rule]:
    """The runbook alerts (seed 002 "Alertas", SPEC §3), thresholds from the profile."""

    def budget(s: Series, h: History) -> Hits:
        gate = s.one("gate_budget_active")
        left = [v for lb, v in s.all("daily_budget_left") if ("scope", "account") in lb]
        if gate == 1 or any(v <= 0 for v in left):
            return [((), min(left, default=0.0))]
        return []

    def slo_stuck(s: Series, h: History) -> Hits:
        now = h.now_us
        avg, _covered = h.avg_over("gate_slo_active", now, 1800.0)
        return [((), avg * 30)] if avg > 25 / 30 else []

    def canary(s: Series, h: History) -> Hits:
        total, canary_n = s.one("trades_total"), s.one("canary_trades_total")
        if total < 20:
            return []
        gap = abs(canary_n / total - s.one("canary_share"))
        return [((), gap)] if gap > 0.05 else []

    def breaker(s: Series, h: History) -> Hits:
        tripped = [n for n in ("error_rate", "slippage") if s.one(f"gate_{n}_active") == 1]
        return [((("breaker", n),), 1.0) for n in tripped]

    def skew(s: Series, h: History) -> Hits:
        v = s.one("time_skew_seconds")
        return [((), v)] if abs(v) > max_skew_s else []

    def db_errors(s: Series, h: History) -> Hits:
        inc = h.increase("db_write_errors_total", h.now_us, 300.0)
        return [((), inc)] if inc > 0 else []

    return [
        Rule("BudgetDepleted", "page", "daily order budget spent", budget),
        Rule("SLOGateStuck", "warn", "SLO gate active > 25 of the last 30 min", slo_stuck),
        Rule("CanaryImbalance", "warn", "canary trade share off its setting by > 5 pts", canary),
        _above(
            "FeaturesMissing",
            "warn",
            "decisions without ready features > 1 %",
            "features_missing_ratio",
            0.01,
        ),
        _above(
            "FeedDislocation",
            "warn",
            f"websocket and REST prices disagree by > {dislocation_bps:g} bps",
            "feed_dislocation_bps",
            dislocation_bps,
        ),
        _above("DataStale", "warn", "market data older than 1 s", "data_stale_seconds", 1.0),
        _above(
            "ModelDrift",
            "warn",
            f"model drift PSI above {psi_halve:g} (size halved)",
            "model_drift_psi",
            psi_halve,
        ),
        _above(
            "ReconciliationMismatch",
            "page",
            "reconciliation left mismatches open",
            "reconciliation_open_mismatches",
            0.0,
        ),
        Rule("BreakerTripped", "page", "an execution breaker tripped", breaker),
        Rule("ClockSkew", "page", f"clock skew above {max_skew_s * 1000:g} ms", skew),
        Rule("DBWriteErrors", "page", "DB writes failed in the last 5 min", db_errors),
    ]


@dataclass(slots=True)
class Alert:
    rule: str
    severity: str
    labels: Labels
    summary: str
    state: str  # firing | resolved
    since_us: int
    value: float

    @property
    def key(self) -> tuple[str, Labels]:
        return self.rule, self.labels

    def describe(self) -> str:
        where = ",".join(f"{k}={v}" for k, v in self.labels)
        return f"{self.rule}{'{' + where + '}' if where else ''} {self.state}: {self.summary}"


ChangeFn = Callable[[Alert], None]
_HISTORY = ("gate_slo_active", "db_write_errors_total")


class AlertEngine:
    """Evaluates the rules over one registry; keeps firing and recently resolved alerts."""

    def __init__(
        self, registry: CollectorRegistry, rules: list[Rule], on_change: ChangeFn | None = None
    ) -> None:
        self.registry = registry
        self.rules = rules
        self.on_change = on_change
        self.history = History()
        self.firing: dict[tuple[str, Labels], Alert] = {}
        self.resolved: deque[Alert] = deque(maxlen=20)
        self.gauge = Gauge(
            "alerts_firing",
            "1 while the engine's alert rule fires",
            ["alertname"],
            registry=registry,
        )
        for r in rules:
            self.gauge.labels(r.name).set(0)

    def evaluate(self, now_us: int) -> None:
        s = Series(self.registry)
        h = self.history
        h.now_us = now_us
        for name in _HISTORY:
            h.add(name, now_us, s.one(name))
        for rule in self.rules:
            try:
                hits = rule.hits(s, h)
            except Exception as exc:  # noqa: BLE001 - a broken rule fires, loudly
                hits = [((("error", type(exc).__name__),), 1.0)]
            self._apply(rule, hits, now_us)

    def _apply(self, rule: Rule, hits: Hits, now_us: int) -> None:
        seen = set()
        for labels, value in hits:
            key = (rule.name, labels)
            seen.add(key)
            a = self.firing.get(key)
            if a is not None:
                a.value = value
                continue
            a = Alert(rule.name, rule.severity, labels, rule.summary, "firing", now_us, value)
            self.firing[key] = a
            self._changed(a)
        for key in [k for k in self.firing if k[0] == rule.name and k not in seen]:
            a = self.firing.pop(key)
            a.state, a.since_us = "resolved", now_us
            self.resolved.appendleft(a)
            self._changed(a)
        self.gauge.labels(rule.name).set(1 if any(k[0] == rule.name for k in self.firing) else 0)

    def _changed(self, a: Alert) -> None:
        if self.on_change is not None:
            self.on_change(a)

    def current(self) -> list[Alert]:
        """Firing first (oldest first), then the recently resolved (newest first)."""
        return sorted(self.firing.values(), key=lambda a: a.since_us) + list(self.resolved)

    def names_firing(self) -> list[str]:
        return sorted({k[0] for k in self.firing})

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "alertname": a.rule,
                "severity": a.severity,
                "labels": dict(a.labels),
                "state": a.state,
                "since_us": a.since_us,
                "value": a.value,
                "summary": a.summary,
            }
            for a in self.current()
        ]
