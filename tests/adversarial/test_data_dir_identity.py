"""Issue 12 items 6 and 6b (storage half): a data dir remembers its profile kind and venue, and
nobody but its owner can read what the engine writes."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.helpers import query, run, start, wait_for_log


@pytest.fixture(scope="module")
def testnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tn") / "d"
    res = run("--headless", "--profile", "testnet", "--duration", "2", "--data-dir", str(d))
    assert res.returncode == 0, res.stderr
    return d


@pytest.mark.parametrize("mode", ["--headless", "tui"])
def test_start_when_profile_kind_differs_from_the_data_dirs_then_refused_exit2(
    testnet_dir: Path, tmp_path: Path, mode: str
) -> None:
    d = tmp_path / "d"
    shutil.copytree(testnet_dir, d)
    before = (d / "cockpit.duckdb").read_bytes()
    args = ["--profile", "paper", "--duration", "1", "--data-dir", str(d)]
    res = run(*args, *([mode] if mode == "--headless" else []))
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err
    assert "testnet" in err
    assert "paper" in err
    assert "--profile testnet" in err
    assert (d / "cockpit.duckdb").read_bytes() == before


def test_reconcile_when_no_profile_given_then_uses_the_recorded_one(
    testnet_dir: Path, tmp_path: Path
) -> None:
    d = tmp_path / "d"
    shutil.copytree(testnet_dir, d)
    res = run("reconcile", "--data-dir", str(d), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["ok"], report
    assert not report["alerts"], report
    last = query(d, "SELECT venue, ok FROM reconciliation_runs ORDER BY ts_us DESC LIMIT 1")[0]
    assert last[0] != "paper"
    assert last[1] is True
    health = run("healthcheck", "--data-dir", str(d), "--json")
    checks = {c["name"]: c for c in json.loads(health.stdout)["checks"]}
    assert checks["reconciliation"]["status"] != "failing"


def test_start_when_recorded_then_profile_kind_and_venue_in_engine_state(data_dir: Path) -> None:
    state = dict(query(data_dir, "SELECT key, value FROM engine_state"))
    assert (state["profile_kind"], state["profile_venue"]) == ("paper", "paper")


# --- file modes --------------------------------------------------------------------------------


def test_totp_enroll_when_data_dir_missing_then_created_0700(tmp_path: Path) -> None:
    d = tmp_path / "new" / "d"
    from cryptography.fernet import Fernet

    run("totp", "enroll", "--data-dir", str(d), COCKPIT_KEYRING_KEY=Fernet.generate_key().decode())
    assert d.exists()
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE(d.parent.stat().st_mode) == 0o700


def _as_nobody(path: Path) -> bool:
    """True when user nobody can open ``path`` for reading."""
    res = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", str(path)],
        capture_output=True,
    )
    return res.returncode == 0


@pytest.fixture
def open_parent() -> Iterator[Path]:
    """A directory in /tmp that user nobody can traverse (pytest's own tmp dirs are 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="cockpit-modes-"))
    os.chmod(parent, 0o755)
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_engine_when_data_dir_world_readable_then_warns_and_every_file_private(
    open_parent: Path, profile: str
) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as a second user")
    d = open_parent / "d"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    eng = start("--headless", "--profile", profile, "--data-dir", str(d))
    try:
        wait_for_log(d, "order submitted")
        files = [f for f in d.rglob("*") if f.is_file() and not f.is_socket()]
        wal = d / "cockpit.duckdb.wal"
        assert wal in files, sorted(map(str, files))
        readable = [str(f) for f in files if f.name != "metrics.prom" and _as_nobody(f)]
        assert readable == []
        assert _as_nobody(d / "metrics" / "metrics.prom")  # the textfile is 0644 on purpose
    finally:
        eng.terminate()
        _, err = eng.communicate(timeout=30)
    assert "readable by others" in err
    assert str(d) in err


def test_live_profile_when_data_dir_group_readable_then_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    os.chmod(d, 0o750)
    res = run("--headless", "--profile", "live", "--duration", "1", "--data-dir", str(d))
    assert res.returncode == 4, res.stderr
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1
    assert f"chmod 700 {d}" in err
    assert list(d.iterdir()) == []


def test_textfile_when_written_under_the_engine_umask_then_file_and_its_new_dirs_readable(
    tmp_path: Path,
) -> None:
    """The one deliberate exception to owner-only: node_exporter runs as another user."""
    from prometheus_client import CollectorRegistry, Counter

    from engine.core.fsutil import PRIVATE_UMASK
    from engine.obs.textfile import write_textfile

    registry = CollectorRegistry()
    Counter("probe", "probe", registry=registry).inc()
    path = tmp_path / "node" / "textfile" / "cockpit.prom"
    old = os.umask(PRIVATE_UMASK)
    try:
        write_textfile(path, registry)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [stat.S_IMODE(d.stat().st_mode) for d in (path.parent, path.parent.parent)] == [
        0o755,
        0o755,
    ]
