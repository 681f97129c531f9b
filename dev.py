#!/usr/bin/env python3
"""Bootstrap and task runner: the README's two commands go through here.

    python3 dev.py cockpit [ARGS...]   start the cockpit (paper profile, embedded simulator)
    python3 dev.py test [PYTEST ARGS]  checks (ruff, mypy, import contracts) + the whole test suite
    python3 dev.py check               the checks only

Needs only python3 (3.11+): it creates ``.venv`` and installs the project from ``pyproject.toml``
(the one source of dependencies) the first time, and again whenever ``pyproject.toml`` changes.
``test`` also installs the Debian packages the acceptance tests use (promtool, tmux) when missing.
``cockpit`` first brings the project's bytecode up to date (``precompile``).
"""

from __future__ import annotations

import compileall
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".installed-pyproject-sha256"


def _say(msg: str) -> None:
    print(f"dev.py: {msg}", file=sys.stderr, flush=True)


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"dev.py: Python 3.11+ required, this is {sys.version.split()[0]}")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest and (BIN / "cockpit").exists():
        return
    if not (BIN / "python").exists():
        _say("creating .venv")
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except Exception as exc:  # noqa: BLE001 - e.g. Debian without python3-venv
            sys.exit(
                f"dev.py: cannot create .venv ({exc}); on Debian: apt-get install python3-venv"
            )
    _say("installing the project and its dev dependencies into .venv (first run or changed)")
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(digest)


def precompile() -> None:
    """Write the project's ``__pycache__`` (a no-op when current). The project is installed
    editable, so nothing compiles it at install time, and where ``PYTHONDONTWRITEBYTECODE`` is set
    Python never caches it either: every start recompiled ~70 modules, ~0.25 s of the first
    frame. ``.venv`` runs this same interpreter (created from it), so the caches match."""
    for pkg in ("engine", "cockpit", "widgets"):
        compileall.compile_dir(ROOT / pkg, quiet=1)


def system_deps() -> None:
    from shutil import which

    if which("promtool") and which("tmux") and which("systemd-analyze"):
        return
    subprocess.run(["bash", str(ROOT / "scripts" / "install_system_deps.sh")], check=True)


def check() -> int:
    code = ["engine", "cockpit", "widgets", "venuesim", "research", "tests", "scripts", "dev.py"]
    steps = [
        [str(BIN / "ruff"), "format", "--check", *code],
        [str(BIN / "ruff"), "check", *code],
        [str(BIN / "mypy"), "engine", "cockpit", "widgets", "venuesim", "research"],
        [str(BIN / "lint-imports")],
    ]
    for cmd in steps:
        _say("check: " + " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)))
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        if rc != 0:
            _say(f"check failed: {' '.join(cmd)} (exit {rc})")
            return rc
    return 0


def test(args: list[str]) -> int:
    system_deps()
    rc = check()
    if rc != 0:
        return rc
    rc = subprocess.run([str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT).returncode
    if rc == 5:
        _say("pytest collected no tests: that is a failure here")
        return 1
    return rc


def main(argv: list[str]) -> int:
    cmd, rest = (argv[0], argv[1:]) if argv else ("cockpit", [])
    ensure_venv()
    if cmd == "cockpit":
        precompile()
        os.execv(str(BIN / "cockpit"), [str(BIN / "cockpit"), *rest])
    if cmd == "test":
        return test(rest)
    if cmd == "check":
        return check()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
