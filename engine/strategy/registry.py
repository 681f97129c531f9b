"""In-memory model registry (champion / challenger / retired) and the training reference for drift.

Role: know which model is champion, which is challenger, which is pinned, the canary share and
the promote history, so promote / rollback / pin are one call each; the lead's store persists it
through ``to_rows`` / ``from_rows`` and ``state_dict`` / ``load_state``.

Invariants:
- At most one champion and one challenger at any time; every other entry is ``retired``.
- ``promote`` swaps champion and challenger and pushes the previous pair onto the history;
  ``rollback`` pops it. Entries are never deleted, so the history always resolves.
- Errors are ``ValueError`` with a one-line message (the caller turns it into a denial).
- ``Reference`` is immutable and JSON-serialisable; ``build_reference`` is deterministic and
  cached. The built-in models' reference ships precomputed (``builtin_reference.json``, checked
  against ``build_reference`` by a test): computing it costs ~0.5 s of a fresh install's start.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from engine.core.events import QuoteTick
from engine.sim.marketsim import MarketSimulator
from engine.strategy.features import FEATURE_NAMES, FeatureState
from engine.strategy.signal_models import Model

Role = Literal["champion", "challenger", "retired"]
_ROLES: tuple[str, ...] = ("champion", "challenger", "retired")
N_BINS = 10


@dataclass(frozen=True, slots=True)
class Reference:
    """Training distribution: per feature, interior bin edges and the expected fraction per bin.

    Bin ``i`` of a feature holds values ``v`` with ``bisect_right(edges, v) == i``, so a feature
    with ``len(edges)`` edges has ``len(edges) + 1`` bins and as many expected fractions.
    """

    feature_names: tuple[str, ...]
    edges: tuple[tuple[float, ...], ...]
    expected: tuple[tuple[float, ...], ...]
    n_samples: int
    source: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "feature_names": list(self.feature_names),
                "edges": [list(e) for e in self.edges],
                "expected": [list(x) for x in self.expected],
                "n_samples": self.n_samples,
                "source": self.source,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Reference:
        d = json.loads(text)
        return cls(
            feature_names=tuple(d["feature_names"]),
            edges=tuple(tuple(float(v) for v in e) for e in d["edges"]),
            expected=tuple(tuple(float(v) for v in x) for x in d["expected"]),
            n_samples=int(d["n_samples"]),
            source=str(d.get("source", "")),
        )


def reference_from_samples(
    samples: Iterable[tuple[float, ...]],
    feature_names: tuple[str, ...] = FEATURE_NAMES,
    n_bins: int = N_BINS,
    source: str = "",
) -> Reference:
    """Quantile bins of each feature over ``samples`` (rows ordered as ``feature_names``)."""
    columns = [sorted(col) for col in zip(*samples, strict=False)]
    if len(columns) != len(feature_names) or not columns[0]:
        raise ValueError(f"need non-empty samples with {len(feature_names)} features")
    n = len(columns[0])
    edges_all: list[tuple[float, ...]] = []
    expected_all: list[tuple[float, ...]] = []
    for col in columns:
        # Deduplicated quantile cut points: a feature with ties gets fewer, wider bins.
        edges = tuple(sorted({col[(n * k) // n_bins] for k in range(1, n_bins)}))
        counts = [0] * (len(edges) + 1)
        for v in col:
            counts[bisect_right(edges, v)] += 1
        edges_all.append(edges)
        expected_all.append(tuple(c / n for c in counts))
    return Reference(tuple(feature_names), tuple(edges_all), tuple(expected_all), n, source)


def simulate_features(
    seed: int, n_ticks: int, symbol: str = "BTC/USDT", **sim_kwargs: Any
) -> list[tuple[float, ...]]:
    """Feature rows of ``n_ticks`` simulated quotes of ``symbol`` (rows only once ready)."""
    sim = MarketSimulator((symbol,), seed=seed, trade_prob=0.0, **sim_kwargs)
    f = FeatureState()
    rows: list[tuple[float, ...]] = []
    for _ in range(n_ticks):
        for tick in sim.step():
            if isinstance(tick, QuoteTick):
                f.update((tick.bid_e8 + tick.ask_e8) * 0.5e-8, tick.ts_ns)
                if f.ready:
                    rows.append(f.values())
    return rows


def _source(seed: int, n_ticks: int, symbol: str) -> str:
    return f"marketsim seed={seed} n={n_ticks} {symbol}"


@lru_cache(maxsize=16)
def build_reference(seed: int = 7, n_ticks: int = 20_000, symbol: str = "BTC/USDT") -> Reference:
    """The training reference: features of the embedded simulator run offline (deterministic)."""
    rows = simulate_features(seed, n_ticks, symbol)
    return reference_from_samples(rows, source=_source(seed, n_ticks, symbol))


BUILTIN_REFERENCE = Path(__file__).with_name("builtin_reference.json")


def builtin_reference(n_ticks: int, path: Path = BUILTIN_REFERENCE) -> Reference:
    """``build_reference(n_ticks=n_ticks)``, read from the shipped file when it was built with
    these parameters (computed otherwise: a stale or unreadable file only costs time)."""
    try:
        ref = Reference.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        ref = None
    if ref is not None and ref.source == _source(7, n_ticks, "BTC/USDT"):
        return ref
    return build_reference(n_ticks=n_ticks)


def write_builtin_reference(n_ticks: int, path: Path = BUILTIN_REFERENCE) -> None:
    """Regenerate the shipped reference (after changing the simulator, features or n_ticks)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(build_reference(n_ticks=n_ticks).to_json() + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class ModelEntry:
    model_id: str
    name: str
    version: int
    role: Role
    reference: Reference
    created_us: int
    updated_us: int


class ModelRegistry:
    """Champion / challenger bookkeeping with pin, canary share and promote history."""

    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}
        self._pinned: str | None = None
        self._canary_share = 0.05
        self._history: list[tuple[str, str]] = []  # (champion, challenger) before each promote
        self.models_dir: Path | None = None  # where trained bundles live (``candle_model``)

    # --- queries ---------------------------------------------------------------------------

    def _with_role(self, role: Role) -> str:
        for e in self._entries.values():
            if e.role == role:
                return e.model_id
        return ""

    @property
    def champion_id(self) -> str:
        """Id of the champion, ``""`` when none is registered."""
        return self._with_role("champion")

    @property
    def challenger_id(self) -> str:
        """Id of the challenger, ``""`` when none is registered."""
        return self._with_role("challenger")

    @property
    def pinned(self) -> str | None:
        return self._pinned

    @property
    def canary_share(self) -> float:
        return self._canary_share

    @property
    def history(self) -> tuple[tuple[str, str], ...]:
        return tuple(self._history)

    def entry(self, model_id: str) -> ModelEntry:
        self._check_known(model_id)
        return self._entries[model_id]

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def resolve(self, route: str) -> tuple[str, str]:
        """(model_id, routed label) for a canary route; a pin overrides the router."""
        if self._pinned is not None:
            return self._pinned, "pinned"
        if route == "challenger" and self.challenger_id:
            return self.challenger_id, "challenger"
        return self.champion_id, "champion"

    # --- changes ---------------------------------------------------------------------------

    def _check_known(self, model_id: str) -> None:
        if model_id not in self._entries:
            known = ", ".join(self._entries) or "none"
            raise ValueError(f"unknown model {model_id!r}; registered: {known}")

    def _set_role(self, model_id: str, role: Role, ts_us: int) -> None:
        e = self._entries[model_id]
        if e.role != role:
            self._entries[model_id] = replace(e, role=role, updated_us=ts_us)

    def register(self, model: Model, role: Role, reference: Reference, ts_us: int) -> ModelEntry:
        """Add (or re-register) ``model`` with ``role``; a displaced holder of the role retires."""
        if role not in _ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(_ROLES)}")
        if role != "retired":
            holder = self._with_role(role)
            if holder and holder != model.model_id:
                self._set_role(holder, "retired", ts_us)
        old = self._entries.get(model.model_id)
        entry = ModelEntry(
            model_id=model.model_id,
            name=model.name,
            version=model.version,
            role=role,
            reference=reference,
            created_us=old.created_us if old is not None else ts_us,
            updated_us=ts_us,
        )
        self._entries[model.model_id] = entry
        return entry

    def pin(self, model_id: str | None) -> None:
        """Route every decision to ``model_id`` (None unpins)."""
        if model_id is not None:
            self._check_known(model_id)
        self._pinned = model_id

    def promote(self, ts_us: int) -> None:
        """Challenger becomes champion and the old champion becomes challenger."""
        champion, challenger = self.champion_id, self.challenger_id
        if not challenger:
            raise ValueError("no challenger to promote")
        self._history.append((champion, challenger))
        self._set_role(challenger, "champion", ts_us)
        if champion:
            self._set_role(champion, "challenger", ts_us)

    def rollback(self, ts_us: int) -> None:
        """Restore the champion/challenger pair from before the last promote."""
        if not self._history:
            raise ValueError("nothing to roll back: no promote in the history")
        champion, challenger = self._history.pop()
        for model_id in (self.champion_id, self.challenger_id):
            if model_id and model_id not in (champion, challenger):
                self._set_role(model_id, "retired", ts_us)
        if champion:
            self._set_role(champion, "champion", ts_us)
        self._set_role(challenger, "challenger", ts_us)

    def set_canary_share(self, share: float) -> None:
        share = float(share)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"canary share must be within 0..1, got {share}")
        self._canary_share = share

    # --- persistence -----------------------------------------------------------------------

    def to_rows(self) -> list[tuple[str, str, int, str, str, int, int]]:
        """One row per entry: (model_id, name, version, role, reference_json, created, updated)."""
        return [
            (
                e.model_id,
                e.name,
                e.version,
                e.role,
                e.reference.to_json(),
                e.created_us,
                e.updated_us,
            )
            for e in self._entries.values()
        ]

    @classmethod
    def from_rows(cls, rows: Iterable[Iterable[Any]]) -> ModelRegistry:
        """Rebuild from ``to_rows`` output (pin, canary share and history: ``load_state``)."""
        reg = cls()
        for row in rows:
            model_id, name, version, role, ref_json, created_us, updated_us = row
            if role not in _ROLES:
                raise ValueError(f"model {model_id!r}: unknown role {role!r} in stored row")
            reg._entries[str(model_id)] = ModelEntry(
                str(model_id),
                str(name),
                int(version),
                role,
                Reference.from_json(ref_json),
                int(created_us),
                int(updated_us),
            )
        return reg

    def state_dict(self) -> dict[str, Any]:
        return {
            "pinned": self._pinned,
            "canary_share": self._canary_share,
            "history": [list(pair) for pair in self._history],
        }

    def load_state(self, d: dict[str, Any]) -> None:
        pinned = d.get("pinned")
        if pinned is not None:
            self._check_known(pinned)
        self.set_canary_share(d.get("canary_share", self._canary_share))
        self._pinned = pinned
        self._history = [(str(a), str(b)) for a, b in d.get("history", [])]
