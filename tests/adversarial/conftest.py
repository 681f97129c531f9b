"""Fixtures for the storage reproductions: a data dir an engine really wrote, copied per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.acceptance.helpers import fast_profile, run


@pytest.fixture(scope="session")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real 2 s paper run (orders, fills, audit rows, head, key), made once per session."""
    base = tmp_path_factory.mktemp("seed")
    d = base / "d"
    res = run(
        "--headless", "--profile", str(fast_profile(base)), "--duration", "2", "--data-dir", str(d)
    )
    assert res.returncode == 0, res.stderr
    return d


@pytest.fixture
def data_dir(seeded_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the seeded data dir (modes kept) for a test to damage."""
    d = tmp_path / "d"
    shutil.copytree(seeded_dir, d, symlinks=True)
    (d / "engine.lock").unlink(missing_ok=True)
    shutil.rmtree(d / "logs")  # tests wait for this run's log lines, not the seeding run's
    return d


@pytest.fixture
def profile(tmp_path: Path) -> str:
    return str(fast_profile(tmp_path))
