"""`cockpit report` and `cockpit export regulatory` from a shell, engine running and stopped."""

from __future__ import annotations

import csv
import json
import signal
import time
import zipfile
from pathlib import Path

from tests.acceptance.helpers import fast_profile, query, run, start, wait_for_log


def test_report_and_regulatory_when_engine_running_then_stopped_then_both_written(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    calm = {"MAX_DATA_STALENESS_MS": "10000", "MAX_P95_PLACE_MS": "60000"}
    p = start("--headless", "--profile", str(fast_profile(tmp_path)), "--data-dir", str(d), **calm)
    try:
        wait_for_log(d, "engine running")
        time.sleep(6)  # a few decisions, orders and fills
        live = run("report", "--data-dir", str(d), "--json")
        live_reg = run("export", "regulatory", "--data-dir", str(d), "--json")
        over_db = run("report", "--data-dir", str(d), "--out", str(d / "cockpit.duckdb"))
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    assert live.returncode == 0, live.stderr
    assert live_reg.returncode == 0, live_reg.stderr
    assert over_db.returncode == 2
    assert "only reports/ may be written" in over_db.stderr
    assert "Traceback" not in over_db.stderr
    rows = json.loads(live.stdout)["rows"]
    assert rows["fills.csv"] > 0, "the fast profile trades within seconds"

    # stopped: same commands, answered from the DB under the lock; two runs, same CSV bytes
    offline = [run("report", "--data-dir", str(d), "--json") for _ in range(2)]
    for res in offline:
        assert res.returncode == 0, res.stderr
    path = Path(json.loads(offline[0].stdout)["report"])
    assert path.parent == d / "reports"
    z = zipfile.ZipFile(path)
    fills_db = query(d, "SELECT count(*) FROM fills")[0][0]
    assert json.loads(z.read("metadata.json"))["rows"]["fills.csv"] == fills_db
    assert len(z.read("fills.csv").splitlines()) == fills_db + 1
    reg = run("export", "regulatory", "--data-dir", str(d), "--json")
    assert reg.returncode == 0, reg.stderr
    with Path(json.loads(reg.stdout)["export"]).open() as f:
        records = list(csv.DictReader(f))
    executions = [r for r in records if r["record_type"] == "execution"]
    assert len(executions) == fills_db
    for r in executions:
        stamps = [int(r[k]) for k in ("decision_ts_us", "submit_ts_us", "ack_ts_us", "fill_ts_us")]
        assert stamps == sorted(stamps), r
    bad = run("report", "--data-dir", str(d), "--date", "2026-02-30")
    assert bad.returncode == 2
    assert "2026-02-30" in bad.stderr
