"""Who may use a running engine from a shell: Unix users mapped to roles.

``<data-dir>/roles.toml`` (optional)::

    [roles]
    alice = "operator"    # a user name ...
    1001 = "observer"     # ... or a numeric uid

Without the file, the engine's own user is the operator and nobody else may connect. With it,
each listed user has its role, the engine's user is operator unless listed otherwise, and every
unlisted user is refused. The control socket learns the caller's uid from the kernel
(``SO_PEERCRED``), never from the request.

Invariants: the file must belong to the engine's user and be writable by nobody else — a roles file
another user could edit would let them grant themselves operator — else the start is refused
(one line, exit 2). Unknown users and roles are refused the same way, naming file, key and value.
When some other user is granted a role, the socket is created 0666 so that user can reach it at
all (the kernel check and this table still decide); the data dir then needs its search bit
(``chmod 711``) for them — it stays unreadable.
"""

from __future__ import annotations

import os
import pwd
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine.config.loader import ConfigError

ROLES_FILE = "roles.toml"
ROLE_NAMES = ("operator", "observer")


@dataclass(frozen=True, slots=True)
class Roles:
    owner_uid: int
    by_uid: dict[int, str] = field(default_factory=dict)

    def role_of(self, uid: int) -> str | None:
        """The caller's role, or None: refused."""
        if uid in self.by_uid:
            return self.by_uid[uid]
        return "operator" if uid == self.owner_uid else None

    def shared(self) -> bool:
        """Another user than the owner is granted a role (the socket must be reachable)."""
        return any(uid != self.owner_uid for uid in self.by_uid)


def _err(path: Path, key: str, msg: str) -> ConfigError:
    return ConfigError(msg, origin=str(path), key=key)


def _uid(path: Path, name: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise _err(path, f"roles.{name}", f"no such Unix user {name!r}") from None


def load_roles(data_dir: Path, owner_uid: int | None = None) -> Roles:
    owner = os.geteuid() if owner_uid is None else owner_uid
    path = data_dir / ROLES_FILE
    try:
        st = path.stat()
    except FileNotFoundError:
        return Roles(owner)
    if st.st_uid != owner or stat.S_IMODE(st.st_mode) & 0o022:
        raise _err(
            path,
            "roles",
            f"must belong to uid {owner} and be writable by it alone (owner uid {st.st_uid}, "
            f"mode {stat.S_IMODE(st.st_mode):04o}): `chown {owner} {path} && chmod 600 {path}`",
        )
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _err(path, "roles", f"not valid TOML: {exc}") from None
    table = doc.get("roles", {})
    if not isinstance(table, dict) or set(doc) - {"roles"}:
        raise _err(path, "roles", 'expected one [roles] table of user = "operator"|"observer"')
    by_uid: dict[int, str] = {}
    for name, role in table.items():
        if role not in ROLE_NAMES:
            raise _err(path, f"roles.{name}", f"role {role!r} unknown (operator or observer)")
        by_uid[_uid(path, str(name))] = role
    return Roles(owner, by_uid)
