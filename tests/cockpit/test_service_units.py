"""systemd units for the headless engine: rendered by the real CLI, checked by the real
``systemd-analyze verify`` (Debian package ``systemd``), bad inputs refused in one line."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from engine.runtime import service_units as su

ROOT = Path(__file__).resolve().parents[2]
VENV_COCKPIT = Path(sys.executable).parent / "cockpit"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cockpit.service_cli", "install-service", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _exec() -> str:
    """The real executable the units start: systemd-analyze checks that it exists."""
    return str(VENV_COCKPIT) if VENV_COCKPIT.is_file() else sys.executable


def _verify(files: list[Path]) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip(
            "systemd-analyze not installed (Debian package 'systemd'; scripts/install_system_deps.sh)"
        )
    # Plain, uncoloured output at the default level, whatever the caller's environment says.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
    env.update(SYSTEMD_LOG_LEVEL="info", SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER="cat")
    return subprocess.run(
        [analyze, "verify", "--man=no", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def _unique_data_dir(parent: str) -> str:
    # Not the pytest tmp dir: a data dir under /tmp is refused (PrivateTmp=yes would hide it).
    # verify does not need the data dir to exist.
    return f"{parent}/t{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("parent", ["/var/lib/cockpit", "/srv/cockpit", "/home/trader/cockpit"])
def test_rendered_units_pass_systemd_analyze_verify(tmp_path: Path, parent: str) -> None:
    data_dir = _unique_data_dir(parent)
    out = tmp_path / "units"
    r = _cli("--out-dir", str(out), "--name", "t1", "--data-dir", data_dir, "--exec", _exec())
    assert r.returncode == 0, r.stderr
    files = sorted(out.iterdir())
    assert [f.name for f in files] == sorted(su.unit_names("t1"))
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f
    v = _verify(files)
    assert v.returncode == 0, v.stdout + v.stderr
    # verify prints every warning (unknown key, bad value, missing binary, ...) on stderr
    assert v.stdout.strip() == ""
    assert v.stderr.strip() == ""
    engine = (out / "cockpit-t1.service").read_text()
    assert f"ReadWritePaths={data_dir}\n" in engine
    if parent == "/var/lib/cockpit":
        assert f"StateDirectory=cockpit/{data_dir.rsplit('/', 1)[1]}\n" in engine
    else:
        assert "StateDirectory=" not in engine
    want_home = "read-only" if parent.startswith("/home") else "yes"
    assert f"ProtectHome={want_home}\n" in engine


def test_verify_does_report_a_broken_unit(tmp_path: Path) -> None:
    """The silent pass above means something: the same check flags an unknown directive and a
    missing executable in our own units."""
    units = su.render_units("t2", "cockpit", "/var/lib/cockpit/t2", [_exec()], "paper")
    for file_name, text in units.items():
        if file_name == "cockpit-t2.service":
            text = text.replace("NotifyAccess=main\n", "NotifyAccess=main\nWatchdogSecs=30s\n")
        if file_name == "cockpit-t2-backup.service":
            text = text.replace(_exec(), "/nonexistent/cockpit")
        (tmp_path / file_name).write_text(text)
    v = _verify(sorted(tmp_path.iterdir()))
    assert v.returncode != 0
    assert "Unknown key 'WatchdogSecs'" in v.stderr
    assert "/nonexistent/cockpit" in v.stderr


def test_print_writes_every_unit_under_a_header() -> None:
    r = _cli("--print", "--exec", _exec())
    assert r.returncode == 0, r.stderr
    parts = re.split(r"^# ---- (\S+) ----\n", r.stdout, flags=re.MULTILINE)
    assert parts[0] == ""
    got = dict(zip(parts[1::2], parts[2::2], strict=True))
    assert got == su.render_units("main", "cockpit", "/var/lib/cockpit/main", [_exec()], "paper")
    # the follow-up steps go to stderr, so stdout can be piped as it is
    for step in (
        "useradd --system",
        "--home /var/lib/cockpit --shell /usr/sbin/nologin cockpit",
        "-m engine.security.keystore generate-key > /etc/cockpit/main.keyring-key",
        "systemctl daemon-reload",
        "systemctl enable --now cockpit-main.service cockpit-main-report.timer "
        "cockpit-main-backup.timer",
    ):
        assert step in r.stderr


def test_engine_unit_has_the_required_directives() -> None:
    units = su.render_units("main", "cockpit", "/var/lib/cockpit/main", [_exec()], "live")
    engine = units["cockpit-main.service"]
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30s",
        f"ExecStart={_exec()} --headless --profile live --data-dir /var/lib/cockpit/main",
        "LoadCredential=cockpit-keyring-key:/etc/cockpit/main.keyring-key",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/cockpit/main",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "UMask=0077",
        "User=cockpit",
        "Group=cockpit",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ):
        assert f"\n{line}\n" in engine, line
    assert re.search(r"^StartLimitBurst=\d+$", engine, re.MULTILINE)
    assert re.search(r"^TimeoutStopSec=\d+s$", engine, re.MULTILINE)
    assert re.search(r"^RestartSec=\d+s$", engine, re.MULTILINE)
    assert "\nMemoryDenyWriteExecute" not in engine  # polars cannot run under W^X
    report, backup = units["cockpit-main-report.service"], units["cockpit-main-backup.service"]
    assert (
        f"\nExecStart={_exec()} report --date yesterday --data-dir /var/lib/cockpit/main\n"
        in report
    )
    assert f"\nExecStart={_exec()} backup --data-dir /var/lib/cockpit/main\n" in backup
    for oneshot in (report, backup):
        for line in ("Type=oneshot", "User=cockpit", "ProtectSystem=strict", "NoNewPrivileges=yes"):
            assert f"\n{line}\n" in oneshot, line
        assert "\nLoadCredential=cockpit-keyring-key:/etc/cockpit/main.keyring-key\n" in oneshot
    for timer in ("cockpit-main-report.timer", "cockpit-main-backup.timer"):
        assert "\nPersistent=true\n" in units[timer]
    assert "\nOnCalendar=*-*-* 00:05:00 UTC\n" in units["cockpit-main-report.timer"]


def test_python_exec_runs_the_module() -> None:
    units = su.render_units(
        "main", "cockpit", "/var/lib/cockpit/main", ["/usr/bin/python3", "-m", "cockpit"], "paper"
    )
    assert (
        "\nExecStart=/usr/bin/python3 -m cockpit --headless --profile paper"
        in units["cockpit-main.service"]
    )
    r = _cli("--print", "--exec", sys.executable)
    assert f"\nExecStart={sys.executable} -m cockpit --headless" in r.stdout


def test_default_exec_is_the_venv_script() -> None:
    if VENV_COCKPIT.is_file():
        assert su.default_exec() == [str(VENV_COCKPIT)]
    else:
        assert su.default_exec() == [sys.executable, "-m", "cockpit"]


def test_values_are_substituted_once() -> None:
    units = su.render_units("main", "cockpit", "/srv/@USER@/main", [_exec()], "paper")
    assert "\nReadWritePaths=/srv/@USER@/main\n" in units["cockpit-main.service"]
    assert all(not re.search(r"@[A-Z_]+@", t.replace("@USER@", "")) for t in units.values())


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--name", "my svc"], "'my svc'"),
        (["--name", "Main"], "'Main'"),
        (["--data-dir", "relative/dir"], "'relative/dir'"),
        (["--data-dir", "/var/lib/co%kpit"], "'/var/lib/co%kpit'"),
        (["--data-dir", "/var/lib/cock\npit"], "'/var/lib/cock\\npit'"),
        (["--data-dir", "/var/lib/cock pit"], "'/var/lib/cock pit'"),
        (["--data-dir", "/var/lib/$HOME"], "'/var/lib/$HOME'"),
        (["--data-dir", "/var/lib/../etc"], "'/var/lib/../etc'"),
        (["--data-dir", "/tmp/cockpit"], "'/tmp/cockpit'"),
        (["--data-dir", "/var"], "'/var'"),
        (["--user", "root"], "'root'"),
        (["--user", "nobody"], "'nobody'"),
        (["--user", "1000"], "'1000'"),
        (["--group", "root"], "'root'"),
        (["--exec", "cockpit"], "'cockpit'"),
        (["--exec", "/opt/my app/cockpit"], "'/opt/my app/cockpit'"),
        (["--profile", "../live.toml"], "'../live.toml'"),
        (["--profile", "live;rm"], "'live;rm'"),
        (["--credential-file", "key"], "'key'"),
    ],
)
def test_bad_input_is_exit_2_with_one_line(tmp_path: Path, flags: list[str], named: str) -> None:
    out = tmp_path / "units"
    r = _cli("--print", "--out-dir", str(out), *flags)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("cockpit: install-service: ")
    assert named in lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists()  # nothing written


def test_render_units_raises_value_error() -> None:
    with pytest.raises(ValueError, match="is not absolute"):
        su.render_units("main", "cockpit", "data", [_exec()], "paper")
    with pytest.raises(ValueError, match="refused"):
        su.render_units("main", "root", "/var/lib/cockpit/main", [_exec()], "paper")
    with pytest.raises(ValueError, match="is not absolute"):
        su.render_units("main", "cockpit", "/var/lib/cockpit/main", ["bin/cockpit"], "paper")


def test_deploy_templates_are_the_module_templates() -> None:
    """deploy/systemd/*.in are generated copies (regenerate with
    `python -m engine.runtime.service_units write-templates deploy/systemd`)."""
    deploy = ROOT / "deploy" / "systemd"
    assert sorted(p.name for p in deploy.glob("*.in")) == sorted(su.TEMPLATES)
    for file_name, (text, _pattern) in su.TEMPLATES.items():
        assert (deploy / file_name).read_text(encoding="utf-8") == text, file_name
