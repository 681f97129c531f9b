"""Reusable cockpit widgets, one per module, fed only by ``engine.snapshot.EngineSnapshot``.

Every widget exposes ``update_snapshot(snap)``; it skips all work when the part of the snapshot it
shows is unchanged, updates tables in place by row key, and renders outside text literally.
"""

from widgets._base import SnapshotMixin
from widgets._fmt import lit, plain
from widgets.alerts import AlertsPanel
from widgets.audit import AuditPanel
from widgets.budgets import BudgetsPanel
from widgets.feeds import FeedsPanel
from widgets.fills import FillsPanel
from widgets.gates import GatesPanel
from widgets.golive import AlertRulesPanel, DecisionsPanel, PreflightPanel, StopsPanel
from widgets.incidents import IncidentsPanel
from widgets.kpi import KpiPanel
from widgets.model import ModelPanel, canary_imbalance
from widgets.orders import OrdersPanel
from widgets.pnl import PnlPanel
from widgets.positions import PositionsPanel
from widgets.price_sparklines import PriceSparklines
from widgets.recon import ReconPanel
from widgets.skew import SkewPanel
from widgets.status_bar import StatusBar
from widgets.table import KeyedTable

SNAPSHOT_WIDGETS = (
    StatusBar,
    GatesPanel,
    BudgetsPanel,
    SkewPanel,
    ReconPanel,
    FeedsPanel,
    KpiPanel,
    OrdersPanel,
    FillsPanel,
    PositionsPanel,
    PriceSparklines,
    PnlPanel,
    ModelPanel,
    DecisionsPanel,
    PreflightPanel,
    StopsPanel,
    AlertRulesPanel,
    AlertsPanel,
    IncidentsPanel,
    AuditPanel,
)

__all__ = [
    "SNAPSHOT_WIDGETS",
    "AlertRulesPanel",
    "AlertsPanel",
    "AuditPanel",
    "BudgetsPanel",
    "DecisionsPanel",
    "FeedsPanel",
    "FillsPanel",
    "GatesPanel",
    "IncidentsPanel",
    "KeyedTable",
    "KpiPanel",
    "ModelPanel",
    "OrdersPanel",
    "PnlPanel",
    "PositionsPanel",
    "PreflightPanel",
    "PriceSparklines",
    "ReconPanel",
    "SkewPanel",
    "SnapshotMixin",
    "StatusBar",
    "StopsPanel",
    "canary_imbalance",
    "lit",
    "plain",
]
