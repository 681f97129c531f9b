"""The Prometheus alerting rules in deploy/prometheus: ``promtool check rules`` and ``promtool test
rules`` pass, the unit tests can fail (a changed threshold breaks them), and every alert has a
firing and a silent case."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT, promtool

RULES = ROOT / "deploy" / "prometheus" / "cockpit_alerts.yml"
UNIT = ROOT / "deploy" / "prometheus" / "cockpit_alerts_test.yml"


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_check_rules_when_run_on_rules_file_then_clean() -> None:
    res = _run("check", "rules", RULES)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 11 rules found" in res.stdout


def test_unit_tests_when_run_then_every_case_passes() -> None:
    res = _run("test", "rules", UNIT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_unit_tests_when_threshold_changed_then_they_fail(tmp_path: Path) -> None:
    rules = RULES.read_text()
    mutated = rules.replace("canary_share) > 0.05", "canary_share) > 0.5")
    assert mutated != rules
    (tmp_path / RULES.name).write_text(mutated)
    shutil.copy(UNIT, tmp_path / UNIT.name)
    res = _run("test", "rules", tmp_path / UNIT.name)
    assert res.returncode != 0, res.stdout
    assert "CanaryImbalance" in res.stdout + res.stderr


def test_unit_tests_when_read_then_every_alert_fires_once_and_is_silent_once() -> None:
    alerts = set(re.findall(r"^\s*- alert:\s*(\w+)", RULES.read_text(), re.MULTILINE))
    assert len(alerts) == 11
    text = UNIT.read_text()
    cases = re.findall(r"alertname:\s*(\w+)\n\s*exp_alerts:(\s*\[\])?", text, flags=re.MULTILINE)
    silent = {name for name, empty in cases if empty}
    firing = {name for name, empty in cases if not empty}
    assert alerts == silent, alerts ^ silent
    assert alerts == firing, alerts ^ firing
