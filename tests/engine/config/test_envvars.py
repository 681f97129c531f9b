"""Nothing reads an undocumented environment variable.

Every variable the program reads is either a config key's (``FieldSpec.env``, listed by
``cockpit env-sample`` with its key) or registered in ``engine/core/envvars.py`` (listed by
``cockpit env-sample`` under "Also read"). The scan walks the source with ``ast``, so a new read
is covered the day it is written: ``<env>.get(NAME)``, ``os.getenv(NAME)``, ``<env>[NAME]`` and
``NAME in <env>``, where ``<env>`` is ``os.environ`` or a name the code gives an environment
mapping. ``NAME`` must be a constant imported from the registry (or an alias of one), never a
string literal; the few reads whose name is computed are listed below with the reason.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from engine.config.loader import iter_fields, render_env_sample
from engine.core import envvars
from engine.core.envvars import ENV_VARS

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("engine", "cockpit", "venuesim", "widgets")
# the names the code gives an environment mapping (os.environ, or one passed in for tests)
ENV_MAPPINGS = {"os.environ", "environ", "env", "env_map", "self._env"}
# reads whose variable name is computed, each with its reason: (file, argument expression)
DYNAMIC = {
    # the loader reads each config key's own variable: FieldSpec.env, declared in structs.py
    ("engine/config/loader.py", "var"),
}


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _literal_constants(tree: ast.Module) -> set[str]:
    """Module-level names bound to a string literal (``X_ENV = "X"``): a second spelling."""
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            out |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return out


def _reads(tree: ast.Module) -> list[ast.expr]:
    """The argument naming the variable, for every environment read in ``tree``."""
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            owner, attr = ast.unparse(node.func.value), node.func.attr
            if (attr == "get" and owner in ENV_MAPPINGS) or (owner, attr) == ("os", "getenv"):
                found.append(node.args[0])
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if ast.unparse(node.value) in ENV_MAPPINGS:
                found.append(node.slice)
        elif (
            isinstance(node, ast.Compare)
            and isinstance(node.ops[0], ast.In | ast.NotIn)
            and ast.unparse(node.comparators[0]) in ENV_MAPPINGS
        ):
            found.append(node.left)
    return found


def _imported(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """Names bound by ``from M import X [as Y]`` anywhere in the module (functions too)."""
    out: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out |= {(a.asname or a.name): (node.module, a.name) for a in node.names}
    return out


def _names(
    arg: ast.expr, module: str, imported: dict[str, tuple[str, str]] | None = None
) -> list[str] | None:
    """The variable name(s) ``arg`` evaluates to, or None when it is computed at run time."""
    if isinstance(arg, ast.IfExp):
        a, b = _names(arg.body, module, imported), _names(arg.orelse, module, imported)
        return None if a is None or b is None else a + b
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.Name):
        source, name = (imported or {}).get(arg.id, (module, arg.id))
        value = getattr(importlib.import_module(source), name, None)
        return [value] if isinstance(value, str) else None
    return None


def _spelled(arg: ast.expr, literals: set[str]) -> bool:
    """The name is written out here (a literal, or a module constant bound to one)."""
    if isinstance(arg, ast.IfExp):
        return _spelled(arg.body, literals) or _spelled(arg.orelse, literals)
    return isinstance(arg, ast.Constant) or (isinstance(arg, ast.Name) and arg.id in literals)


def _violations(path: Path, known: set[str]) -> list[str]:
    rel = str(path.relative_to(ROOT))
    tree = ast.parse(path.read_text(), filename=rel)
    literals = _literal_constants(tree)
    imported = _imported(tree)
    bad = []
    for arg in _reads(tree):
        where = f"{rel}:{arg.lineno}: {ast.unparse(arg)}"
        if (rel, ast.unparse(arg)) in DYNAMIC:
            continue
        names = _names(arg, _module_name(path), imported)
        if names is None:
            bad.append(f"{where}: computed name (list it in DYNAMIC with the reason)")
            continue
        if _spelled(arg, literals):
            bad.append(f"{where}: spelled here; import it from engine.core.envvars")
        unknown = [n for n in names if n not in known]
        bad += [f"{where}: {n} is neither a config key's env nor registered" for n in unknown]
    return bad


def test_scan_when_every_module_then_every_env_read_is_documented_and_imported() -> None:
    known = {s.env for s in iter_fields() if s.env} | set(ENV_VARS)
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(files) > 80  # a guard: the scan really walks the packages
    bad = [v for f in files for v in _violations(f, known)]
    assert bad == [], "\n".join(bad)


def test_scan_when_a_literal_or_unknown_read_then_reported(tmp_path: Path) -> None:
    src = (
        "import os\n"
        "A = os.environ.get('NOT_DOCUMENTED_ANYWHERE')\n"
        "B = os.getenv('EXEC_PROFILE')\n"
        "def f(env):\n    return env['HOME'], 'X' in os.environ, env.get(f())\n"
    )
    tree = ast.parse(src)
    assert [ast.unparse(a) for a in _reads(tree)] == [
        "'NOT_DOCUMENTED_ANYWHERE'",
        "'EXEC_PROFILE'",
        "'HOME'",
        "'X'",
        "f()",
    ]
    assert _names(ast.parse("f()").body[0].value, "os") is None  # type: ignore[attr-defined]


def test_registry_when_sample_rendered_then_every_variable_listed_with_its_doc() -> None:
    sample = render_env_sample()
    for var in ENV_VARS.values():
        line = next(ln for ln in sample.splitlines() if ln.startswith(f"#   {var.name} "))
        assert var.doc in line
    for name in ("COCKPIT_KEYRING_KEY", "COCKPIT_GC_POLICY", "LIVE_API_KEY", "NOTIFY_SOCKET"):
        assert name in ENV_VARS
        assert getattr(envvars, name) == name  # the constant readers import


def test_registry_when_compared_with_config_keys_then_no_variable_is_both() -> None:
    assert not {s.env for s in iter_fields() if s.env} & set(ENV_VARS)
