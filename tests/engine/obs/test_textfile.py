"""Tests for engine.textfile: promtool-clean output, atomic replace, 0644, stale temp cleanup."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from engine.obs.textfile import clean_stale_temps, write_textfile
from tests.conftest import promtool


def _check_metrics(text: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), "check", "metrics"],
        input=text.decode(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    orders = Counter(
        "orders_sent", "Orders sent to the venue.", ["symbol"], registry=reg
    )  # exported as orders_sent_total
    orders.labels(symbol="BTC/USDT").inc(3)
    skew = Gauge("time_skew_seconds", "Clock skew against the reference.", registry=reg)
    skew.set(0.012)
    stale = Gauge("data_stale_seconds", "Age of the last tick.", ["symbol"], registry=reg)
    stale.labels(symbol="BTC/USDT").set(0.25)
    stale.labels(symbol='ETH/"USDT"').set(1.5)  # label escaping goes through promtool too
    lat = Histogram(
        "order_place_latency_seconds",
        "Intent to venue ack.",
        buckets=(0.01, 0.05, 0.1, 0.3, 1.0),
        registry=reg,
    )
    for v in (0.004, 0.07, 0.2, 2.0):
        lat.observe(v)
    return reg


class _Raising(Collector):
    def collect(self) -> Iterable[Metric]:
        raise RuntimeError("collector broke")


class _Timestamped(Collector):
    def collect(self) -> Iterable[Metric]:
        g = GaugeMetricFamily("feed_dislocation_bps", "Dislocation between two sources.")
        g.add_metric([], 3.0, timestamp=1_700_000_000.5)
        yield g


def test_write_when_registry_has_counter_gauge_histogram_then_promtool_clean(
    tmp_path: Path,
) -> None:
    path = tmp_path / "metrics" / "metrics.prom"  # directory does not exist yet
    write_textfile(path, _registry())
    text = path.read_bytes()
    assert b'orders_sent_total{symbol="BTC/USDT"} 3.0' in text
    assert b'order_place_latency_seconds_bucket{le="+Inf"} 4.0' in text
    res = _check_metrics(text)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_promtool_when_bad_names_then_complains_so_the_check_is_real() -> None:
    bad = (
        b"# HELP orders_sent Orders.\n# TYPE orders_sent counter\norders_sent 3\n"
        b"# HELP place_latency_ms Latency.\n# TYPE place_latency_ms gauge\nplace_latency_ms 12\n"
    )
    res = _check_metrics(bad)
    assert res.returncode != 0
    assert 'orders_sent counter metrics should have "_total" suffix' in res.stderr
    assert "place_latency_ms metric names should not contain abbreviated units" in res.stderr


def test_write_when_collector_sets_timestamp_then_output_has_none(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    reg.register(_Timestamped())
    path = tmp_path / "metrics.prom"
    write_textfile(path, reg)
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    assert lines == ["feed_dislocation_bps 3.0"]


def test_write_when_umask_077_then_file_mode_0644(tmp_path: Path) -> None:
    path = tmp_path / "metrics.prom"
    old = os.umask(0o077)
    try:
        write_textfile(path, _registry())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_when_file_exists_then_replaced_atomically_with_new_inode(tmp_path: Path) -> None:
    path = tmp_path / "metrics.prom"
    path.write_text("old\n")
    reader = path.open()  # a scraper mid-read keeps seeing the complete old file
    try:
        old_inode = path.stat().st_ino
        write_textfile(path, _registry())
        assert reader.read() == "old\n"
    finally:
        reader.close()
    assert path.stat().st_ino != old_inode
    assert b"orders_sent_total" in path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.prom"]


def test_write_when_collector_raises_then_previous_file_intact_and_no_temp(
    tmp_path: Path,
) -> None:
    path = tmp_path / "metrics.prom"
    write_textfile(path, _registry())
    before = path.read_bytes()
    reg = _registry()
    reg.register(_Raising())
    with pytest.raises(RuntimeError, match="collector broke"):
        write_textfile(path, reg)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.prom"]


def test_write_when_rename_fails_then_previous_file_intact_and_temp_removed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "metrics.prom"
    write_textfile(path, _registry())
    before = path.read_bytes()
    # Make the target a non-empty directory: os.replace onto it fails after the temp is written.
    path.unlink()
    path.mkdir()
    (path / "keep").write_bytes(before)
    with pytest.raises(OSError):  # noqa: PT011 - any OSError: the point is the old file survives
        write_textfile(path, _registry())
    assert (path / "keep").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.prom"]


def test_write_when_own_stale_temp_exists_then_overwritten_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "metrics.prom"
    (tmp_path / f".metrics.prom.{os.getpid()}.tmp").write_text("garbage")
    write_textfile(path, _registry())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.prom"]
    assert b"garbage" not in path.read_bytes()


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_clean_when_temps_of_dead_and_live_pids_then_only_dead_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    live = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        names = {
            f".metrics.prom.{dead}.tmp": False,
            f".metrics.prom.{live.pid}.tmp": True,
            f".metrics.prom.{os.getpid()}.tmp": True,
            ".metrics.prom.tmp": True,  # no pid part: not ours
            f".other.prom.{dead}.tmp": True,  # another file's temp
            "metrics.prom": True,
        }
        for name in names:
            (tmp_path / name).write_text("x")
        assert clean_stale_temps(tmp_path, "metrics.prom") == 1
        assert {p.name for p in tmp_path.iterdir()} == {n for n, keep in names.items() if keep}
    finally:
        live.communicate(b"")


def test_clean_when_name_is_prefix_of_other_file_then_other_temps_untouched(
    tmp_path: Path,
) -> None:
    dead = _dead_pid()
    (tmp_path / f".metrics.prom.{dead}.tmp").write_text("x")
    assert clean_stale_temps(tmp_path, "metrics") == 0
    assert clean_stale_temps(tmp_path / "missing", "metrics.prom") == 0
    assert (tmp_path / f".metrics.prom.{dead}.tmp").exists()
