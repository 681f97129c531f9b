"""The research tab's reader, and the challenger's latest campaign verdict for the promote modal.

Role: ``ResearchTab`` owns a ``widgets.research.ResearchPanel`` and feeds it from
``<data-dir>/research/campaigns.duckdb`` (``research.campaign_store``): the list on a timer and
whenever the tab is shown, the selected campaign's equity when the row cursor moves.
``promote_verdict`` is the one line the promote confirmation shows.

Invariants:
- Every read runs off the UI thread (``asyncio.to_thread``): a DuckDB open must never freeze the
  keys, ctrl+k included. Reads never overlap: the timer re-arms after a read finishes; it reads
  only while the tab is shown and no modal is open (a hidden tab costs nothing).
- A store held by a process saving a campaign (``CampaignStoreBusy``) is one line, "busy,
  retrying", retried within a second; any other failure to read is one line too (and logged).
  The research view is read-only: it must never end the cockpit (a UI failure halts trading).
- Only ``research.campaign_store`` (DuckDB) is imported from ``research``: never the training
  code (scikit-learn) — the cockpit loads this module at start.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.timer import Timer
from textual.widget import Widget

from research import campaign_store
from widgets._fmt import plain
from widgets.research import ResearchPanel, verdict_line

log = logging.getLogger("cockpit.research")

RUN_HINT = "run `cockpit campaign run ...`"


@dataclass(frozen=True)
class StoreRead:
    """One read of the campaign list: the rows (empty when unreadable), the status line, and
    whether the store was busy (then the rows shown are kept and the read is retried soon)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""
    busy: bool = False
    ok: bool = True


def _failure(exc: Exception, what: str) -> str:
    log.warning("research store: %s failed", what, exc_info=exc)
    first = (str(exc).splitlines() or [""])[0]
    return f"campaign store unreadable ({type(exc).__name__}: {first})"


def read_campaigns(data_dir: Path | None) -> StoreRead:
    """The campaign list and its status line (blocking: call it off the UI thread)."""
    if data_dir is None:
        return StoreRead(status="campaigns: no data directory known to this cockpit")
    try:
        rows = campaign_store.list_campaigns(data_dir)
    except campaign_store.CampaignStoreBusy:
        return StoreRead(
            status="campaign store busy (a campaign is being saved), retrying", busy=True
        )
    except Exception as exc:  # noqa: BLE001 - one line on screen; the traceback goes to the log
        return StoreRead(status=_failure(exc, "list"), ok=False)
    if not rows:
        where = campaign_store.store_path(data_dir)
        return StoreRead(status=f"no campaigns yet in {where}: {RUN_HINT}")
    passed = sum(1 for r in rows if r.get("verdict") == "pass")
    return StoreRead(rows=rows, status=f"{len(rows)} campaigns ({passed} pass), newest first")


def read_campaign(data_dir: Path, campaign_id: str) -> tuple[dict[str, Any] | None, str, bool]:
    """``(campaign, note, busy)``: the campaign with its equity, or None and why."""
    try:
        found = campaign_store.load(data_dir, campaign_id)
    except campaign_store.CampaignStoreBusy:
        return None, "campaign store busy (a campaign is being saved), retrying", True
    except Exception as exc:  # noqa: BLE001 - as in read_campaigns
        return None, _failure(exc, "load"), False
    if found is None:
        return None, f"campaign {plain(campaign_id)} is no longer in the store", False
    return found, "", False


def promote_verdict(data_dir: Path | None, model_id: str) -> str:
    """The challenger's latest campaign verdict in one line, for the promote confirmation
    (blocking: the modal calls it off the UI thread). Never raises."""
    if not model_id:
        return "research: there is no challenger to look up"
    if data_dir is None:
        return "research: no data directory known to this cockpit (verdict not read)"
    try:
        found = campaign_store.latest_verdict(data_dir, model_id)
    except campaign_store.CampaignStoreBusy:
        return "research: campaign store busy (a campaign is being saved); verdict not read"
    except Exception as exc:  # noqa: BLE001 - the modal must open whatever the store holds
        return f"research: {_failure(exc, 'latest verdict')}"
    if found is None:
        return f"no campaign has tested {plain(model_id)}: {RUN_HINT}"
    return verdict_line(found)


class ResearchTab(Widget):
    """The research tab's body: reads the campaign store, pushes rows and detail down."""

    DEFAULT_CSS = "ResearchTab { height: 1fr; }"

    def __init__(
        self,
        data_dir: Path | None,
        *,
        refresh_s: float = 5.0,
        busy_retry_s: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_dir = data_dir
        self.refresh_s = refresh_s
        self.busy_retry_s = busy_retry_s
        self.panel = ResearchPanel(id="research")
        self.reads = 0  # list reads done: tests read it
        self._shown = False
        self._reading = False
        self._timer: Timer | None = None
        self._detail_id: str | None = None  # the campaign whose equity is on screen
        self._loading_id: str | None = None

    def compose(self) -> ComposeResult:
        yield self.panel

    def on_show(self) -> None:
        self._shown = True
        self.reload()

    def on_hide(self) -> None:
        self._shown = False

    def reload(self) -> None:
        """Read the store now, off the UI thread; a read in progress is not doubled."""
        if self._reading or getattr(self.app, "quitting", False):
            return
        self._reading = True
        self.run_worker(self._read(), group="research-list")

    def _arm(self, delay_s: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay_s, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self._shown and self.app.screen is self.screen:
            self.reload()
        else:  # hidden or under a modal: look again later
            self._arm(self.refresh_s)

    async def _read(self) -> None:
        try:
            got = await asyncio.to_thread(read_campaigns, self.data_dir)
        finally:  # cancelled too (the app is closing): the next read may start
            self._reading = False
        self.reads += 1
        self.panel.show_status(got.status, got.busy)
        if not got.busy:  # busy: the rows shown stay, only the status line says why
            self.panel.show_campaigns(got.rows)
            if not got.rows:
                self._detail_id = None
                self.panel.show_detail(None, "")
            self._select(self.panel.selected)
        self._arm(self.busy_retry_s if got.busy else self.refresh_s)  # after the read: no overlap

    def on_research_panel_selected(self, message: ResearchPanel.Selected) -> None:
        message.stop()
        self._select(message.campaign_id)

    def _select(self, campaign_id: str | None) -> None:
        if campaign_id is None or campaign_id in (self._detail_id, self._loading_id):
            return
        if self.data_dir is None:
            return
        self._loading_id = campaign_id
        self.run_worker(self._load(self.data_dir, campaign_id), group="research-detail")

    async def _load(self, data_dir: Path, campaign_id: str) -> None:
        try:
            found, note, busy = await asyncio.to_thread(read_campaign, data_dir, campaign_id)
        finally:
            self._loading_id = None
        if self.panel.selected != campaign_id:
            self._select(self.panel.selected)  # the cursor moved on meanwhile
            return
        # a stored campaign never changes: once shown it is not read again; busy or gone, the
        # next list read selects it again (busy: what is on screen stays until then)
        self._detail_id = campaign_id if found is not None else None
        if not busy:
            self.panel.show_detail(found, note)
