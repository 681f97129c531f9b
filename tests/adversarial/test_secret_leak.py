"""A canary secret set through every path (env, keyring, profile file) appears nowhere: no log
line, DB cell, metrics textfile, report ZIP, regulatory CSV, TUI screen (tmux, scrollback
included), crash traceback or CLI output."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
import zipfile
from pathlib import Path

import duckdb
import pytest
from cryptography.fernet import Fernet

from tests.acceptance.helpers import fast_profile, run, start, wait_for_log
from tests.conftest import PY, ROOT, clean_env, cockpit_cmd
from venuesim.botapi import serve_in_thread

ENV_CANARY = "envcanary-9f3a7c51d2"
KEYRING_CANARY = "777:kr-canary-b8e4d2a6f0"  # a bot token shape: the notifier really uses it
FILE_CANARY = "filecanary-c0ffee4242"
CANARIES = (ENV_CANARY, KEYRING_CANARY, KEYRING_CANARY.split(":")[1], FILE_CANARY)


def _leaks(text: str) -> list[str]:
    return [c for c in CANARIES if c in text]


def _files_leak(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith("keyring."):  # the encrypted file itself
            data = path.read_bytes()
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as z:
                    data = b"".join(z.read(n) for n in z.namelist())
            found += [f"{path}: {c}" for c in CANARIES if c.encode() in data]
    return found


def _db_leaks(db: Path) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        found = []
        for t in tables:
            q = f"SELECT string_agg(CAST(COLUMNS(*) AS VARCHAR), '|') FROM \"{t}\""
            row = con.execute(q).fetchone() or ()
            found += [f"{t}: {c}" for c in CANARIES for v in row if v and c in v]
        return found
    finally:
        con.close()


def test_canary_secret_when_set_through_env_keyring_and_profile_then_never_shown(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    env = {
        "COCKPIT_KEYRING_KEY": Fernet.generate_key().decode(),
        "API_KEY": ENV_CANARY,
        "API_SECRET": ENV_CANARY,
        "TELEGRAM_CHAT_ID": "99",
        "MAX_DATA_STALENESS_MS": "10000",
        "MAX_P95_PLACE_MS": "60000",
    }
    stored = subprocess.run(
        cockpit_cmd("secrets", "set", "TELEGRAM_BOT_TOKEN", "--data-dir", str(d)),
        cwd=ROOT, env=clean_env(**env), input=KEYRING_CANARY + "\n", text=True,
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    outputs = [stored.stdout + stored.stderr]
    # a secret written into a profile is refused without echoing it
    bad = tmp_path / "bad.toml"
    bad.write_text(f'kind = "paper"\n[exchange]\napi_secret = "{FILE_CANARY}"\n')
    refused = run("--headless", "--profile", str(bad), "--duration", "1", "--data-dir", str(d))
    assert refused.returncode == 2
    outputs.append(refused.stdout + refused.stderr)
    with serve_in_thread() as api:  # the canary token is refused (401): the disabled path logs
        env["TELEGRAM_API_BASE_URL"] = api.url
        prof = str(fast_profile(tmp_path))
        p = start("--headless", "--profile", prof, "--data-dir", str(d),
                  PYTHONFAULTHANDLER="1", **env)  # fmt: skip
        try:
            wait_for_log(d, "engine running")
            time.sleep(4)
            for cmd in (["status", "--json"], ["config", "show"], ["healthcheck"], ["report"],
                        ["export", "regulatory"], ["secrets", "list"], ["preflight"]):  # fmt: skip
                res = run(*cmd, "--data-dir", str(d), "--profile", prof, **env)
                outputs.append(res.stdout + res.stderr)
            # the notifier really tried the canary token: the Bot API refused it (401)
            assert [c.status for c in api.calls() if c.method == "sendMessage"][:1] == [401]
        finally:
            p.send_signal(signal.SIGABRT)  # a crash: faulthandler dumps every thread's traceback
            _out, err = p.communicate(timeout=30)
    outputs.append(_out + err)
    assert "Fatal Python error" in err or "Aborted" in err or p.returncode != 0
    offline = [run(*c, "--data-dir", str(d), **env) for c in (["report"], ["db", "check"])]
    outputs += [r.stdout + r.stderr for r in offline]
    assert [x for o in outputs for x in _leaks(o)] == []
    assert _files_leak(d) == []
    assert _db_leaks(d / "cockpit.duckdb") == []


@pytest.mark.skipif(shutil.which("tmux") is None, reason="run scripts/install_system_deps.sh")
def test_canary_secret_when_cockpit_runs_in_tmux_then_not_on_screen_or_scrollback(
    tmp_path: Path,
) -> None:
    d = tmp_path / "d"
    session = f"leak-{uuid.uuid4().hex[:8]}"
    exports = " ".join(
        f"{k}={v}" for k, v in {"API_KEY": ENV_CANARY, "API_SECRET": ENV_CANARY}.items()
    )
    cmd = f"cd {ROOT} && env {exports} {PY} -m cockpit --data-dir {d}; sleep 30"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd],
                   check=True, env={**os.environ})  # fmt: skip
    try:
        deadline = time.monotonic() + 40
        text = ""
        while time.monotonic() < deadline and "Reconciliation" not in text:
            time.sleep(0.3)
            text = subprocess.run(["tmux", "capture-pane", "-t", session, "-p", "-S", "-"],
                                  capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "Reconciliation" in text
        for key in ("2", "3", "4", "5", "1", "question_mark"):  # every tab, the help screen
            subprocess.run(["tmux", "send-keys", "-t", session, key], check=True)
            time.sleep(0.6)
            text += subprocess.run(["tmux", "capture-pane", "-t", session, "-p", "-S", "-"],
                                   capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert _leaks(text) == []
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
        deadline = time.monotonic() + 20
        while (d / "control.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    assert _files_leak(d) == []
