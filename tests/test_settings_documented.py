"""The README's configuration table lists exactly the environment variables the code reads.

Static: ``ast`` over every ``.py`` under ``include/ragrec`` and ``dags`` finds the reads of
the process environment (``os.environ.get("X")``, ``os.environ["X"]``, ``os.getenv("X")``,
``"X" in os.environ``, and the same on a name bound to it: an alias, a parameter defaulting
to ``os.environ`` or named ``environ``, a copy such as ``os.environ.copy()`` /
``dict(os.environ)``); writes (``os.environ["X"] = ...``, ``del``, ``.pop``, ``.update``,
``os.environ.setdefault`` - the offline/telemetry flags set for libraries) are not reads.
``.setdefault`` on a *copy* is a read: it builds a child's environment in which the caller's
value wins over ragrec's default. A small scan of ``scripts/`` picks up ``$NAME`` /
``${NAME:-...}`` reads of ``RAGREC_*``, ``ES_*`` and ``AIRFLOW_*`` variables.

Nothing here imports ragrec, starts Elasticsearch or touches the network.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_DIRS = (ROOT / "include" / "ragrec", ROOT / "dags")
SCRIPTS_DIR = ROOT / "scripts"
README = ROOT / "README.md"
SHELL_PREFIXES = ("RAGREC_", "ES_", "AIRFLOW_")

# Call sites whose variable name is not a literal (nor a loop over literals), accepted on
# purpose. Key: "path/relative/to/repo.py:qualified.function"; value: why it is fine.
# Prefer a literal: a name built at run time cannot be checked against the README.
DYNAMIC_ALLOWED: dict[str, str] = {}

# Variables the code reads that are deliberately not in the README table. Key: name;
# value: why. Keep this tiny: whatever changes what ragrec does belongs in the table.
NOT_CONFIGURATION: dict[str, str] = {}


@dataclass(frozen=True)
class Read:
    name: str
    where: str  # path:line
    default: str | None = None  # the literal fallback of .get()/getenv()/setdefault(), if any


@dataclass(frozen=True)
class DynamicRead:
    where: str  # path:line
    site: str  # path:qualified.function (the DYNAMIC_ALLOWED key)
    expression: str


# --------------------------------------------------------------------------- Python scan

_LIVE, _COPY = "live", "copy"
_WRITE_METHODS = {"pop", "popitem", "update", "clear", "__setitem__", "__delitem__"}


class _EnvReads(ast.NodeVisitor):
    def __init__(self, rel: str):
        self.rel = rel
        self.reads: list[Read] = []
        self.dynamic: list[DynamicRead] = []
        self.os_modules: set[str] = set()
        self.getenv_names: set[str] = set()
        # One frame per function/class/module: names bound to the environment (live or a
        # copy), and loop variables that range over literal strings.
        self.frames: list[dict] = []
        self.qualname: list[str] = []

    # ---- scopes

    def _bindings(self, body: list[ast.stmt], inherited: dict, params: dict) -> dict:
        env = {**inherited["env"], **params}
        loops: dict[str, list[str]] = dict(inherited["loops"])
        frame = {"env": env, "loops": loops}
        for node in _walk_own_scope(body):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                kind = self._env_kind(node.value, frame)
                for target in targets:
                    if isinstance(target, ast.Name):
                        if kind:
                            env[target.id] = kind
                        else:
                            env.pop(target.id, None)
            elif isinstance(node, (ast.For, ast.AsyncFor)) and isinstance(node.target, ast.Name):
                literals = _literal_strings(node.iter)
                if literals is not None:
                    loops[node.target.id] = literals
                else:
                    loops.pop(node.target.id, None)
            elif isinstance(node, ast.comprehension) and isinstance(node.target, ast.Name):
                literals = _literal_strings(node.iter)
                if literals is not None:
                    loops[node.target.id] = literals
        return frame

    def _enter(self, name: str, body: list[ast.stmt], params: dict, node: ast.AST) -> None:
        inherited = self.frames[-1] if self.frames else {"env": {}, "loops": {}}
        self.qualname.append(name)
        self.frames.append(self._bindings(body, inherited, params))
        self.generic_visit(node)
        self.frames.pop()
        self.qualname.pop()

    def visit_Module(self, node: ast.Module) -> None:
        for stmt in ast.walk(node):
            if isinstance(stmt, ast.Import):
                self.os_modules.update(a.asname or a.name for a in stmt.names if a.name == "os")
        # `from os import environ/getenv` anywhere in the module
        module_env: dict[str, str] = {}
        for stmt in ast.walk(node):
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "os":
                for alias in stmt.names:
                    if alias.name == "environ":
                        module_env[alias.asname or alias.name] = _LIVE
                    elif alias.name == "getenv":
                        self.getenv_names.add(alias.asname or alias.name)
        self.frames.append({"env": module_env, "loops": {}})
        self._enter("<module>", node.body, {}, node)
        self.frames.pop()

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        outer = self.frames[-1]
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        defaults: dict[str, ast.expr] = dict(
            zip([a.arg for a in positional][len(positional) - len(args.defaults):],
                args.defaults, strict=True))
        defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults,
                                                   strict=True) if d is not None})
        params: dict[str, str | None] = {}
        for arg in [*positional, *args.kwonlyargs]:
            default = defaults.get(arg.arg)
            kind = self._env_kind(default, outer) if default is not None else None
            params[arg.arg] = kind or (_LIVE if arg.arg == "environ" else None)
        frame_params = {k: v for k, v in params.items() if v}
        body = node.body if isinstance(node.body, list) else [ast.Expr(node.body)]
        # a parameter shadows an outer alias of the same name
        inherited = {"env": {k: v for k, v in outer["env"].items() if k not in params},
                     "loops": {k: v for k, v in outer["loops"].items() if k not in params}}
        self.frames.append(inherited)
        self._enter(getattr(node, "name", "<lambda>"), body, frame_params, node)
        self.frames.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._enter(node.name, node.body, {}, node)

    # ---- what is the environment

    def _env_kind(self, expr: ast.expr | None, frame: dict) -> str | None:
        if expr is None:
            return None
        if (isinstance(expr, ast.Attribute) and expr.attr == "environ"
                and isinstance(expr.value, ast.Name) and expr.value.id in self.os_modules):
            return _LIVE
        if isinstance(expr, ast.Name):
            return frame["env"].get(expr.id)
        if isinstance(expr, ast.Call):
            func = expr.func
            if (isinstance(func, ast.Attribute) and func.attr == "copy"
                    and self._env_kind(func.value, frame)):
                return _COPY
            if (isinstance(func, ast.Name) and func.id == "dict" and len(expr.args) == 1
                    and self._env_kind(expr.args[0], frame)):
                return _COPY
        if isinstance(expr, ast.Dict) and any(
                k is None and self._env_kind(v, frame) for k, v in zip(expr.keys, expr.values,
                                                                       strict=True)):
            return _COPY
        return None

    def _kind(self, expr: ast.expr) -> str | None:
        return self._env_kind(expr, self.frames[-1])

    # ---- reads

    def _record(self, key: ast.expr, node: ast.AST, default: ast.expr | None = None) -> None:
        where = f"{self.rel}:{node.lineno}"
        fallback = ast.unparse(default) if default is not None else None
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            self.reads.append(Read(key.value, where, fallback))
            return
        if isinstance(key, ast.Name) and key.id in self.frames[-1]["loops"]:
            for name in self.frames[-1]["loops"][key.id]:
                self.reads.append(Read(name, where, fallback))
            return
        site = f"{self.rel}:{'.'.join(q for q in self.qualname if q != '<module>') or '<module>'}"
        self.dynamic.append(DynamicRead(where, site, ast.unparse(key)))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            kind = self._kind(func.value)
            if kind and node.args:
                if func.attr == "get":
                    self._record(node.args[0], node, node.args[1] if len(node.args) > 1 else None)
                elif func.attr == "setdefault" and kind == _COPY:
                    self._record(node.args[0], node, node.args[1] if len(node.args) > 1 else None)
                elif func.attr == "__getitem__" or func.attr == "__contains__":
                    self._record(node.args[0], node)
            if (func.attr == "getenv" and isinstance(func.value, ast.Name)
                    and func.value.id in self.os_modules and node.args):
                self._record(node.args[0], node, node.args[1] if len(node.args) > 1 else None)
        elif isinstance(func, ast.Name) and func.id in self.getenv_names and node.args:
            self._record(node.args[0], node, node.args[1] if len(node.args) > 1 else None)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, ast.Load) and self._kind(node.value):
            self._record(node.slice, node)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)) and self._kind(right):
                self._record(left, node)
            left = right
        self.generic_visit(node)


def _walk_own_scope(body: list[ast.stmt]):
    """Every node of ``body`` without descending into nested functions, lambdas or classes."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        for child in reversed(list(ast.iter_child_nodes(node))):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                      ast.ClassDef)):
                stack.append(child)


def _literal_strings(expr: ast.expr) -> list[str] | None:
    if isinstance(expr, (ast.Tuple, ast.List, ast.Set)) and expr.elts and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in expr.elts):
        return [e.value for e in expr.elts]
    return None


def scan_python_source(source: str, rel: str) -> tuple[list[Read], list[DynamicRead]]:
    visitor = _EnvReads(rel)
    visitor.visit(ast.parse(source, filename=rel))
    return visitor.reads, visitor.dynamic


# --------------------------------------------------------------------------- shell scan

_SHELL_READ = re.compile(r"(?<!\\)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
_SHELL_ASSIGN = re.compile(
    r"(?:^|[\s;&|(])(?:(?:export|local|readonly|declare(?:\s+-\w+)*)\s+)?"
    r"([A-Za-z_][A-Za-z0-9_]*)(?:\+)?=")


def _strip_shell_comment(line: str) -> str:
    if line.lstrip().startswith("#"):
        return ""
    return re.sub(r"\s#.*$", "", line)


def scan_shell_source(source: str, rel: str) -> list[Read]:
    """Reads of RAGREC_*/ES_*/AIRFLOW_* variables; a variable counts once the script reads
    it before assigning it (``X="${X:-default}"`` reads X), not after."""
    assigned: set[str] = set()
    reads: list[Read] = []
    for number, raw in enumerate(source.splitlines(), start=1):
        line = _strip_shell_comment(raw)
        for match in _SHELL_READ.finditer(line):
            name = match.group(1) or match.group(2)
            if name.startswith(SHELL_PREFIXES) and name not in assigned:
                default = re.match(r"\$\{\w+:?-([^}]*)\}", line[match.start():])
                reads.append(Read(name, f"{rel}:{number}", default.group(1) if default else None))
        assigned.update(m.group(1) for m in _SHELL_ASSIGN.finditer(line))
    return reads


def _is_shell_script(path: Path) -> bool:
    if path.suffix == ".sh":
        return True
    try:
        first = path.read_text(errors="replace").split("\n", 1)[0]
    except OSError:
        return False
    return first.startswith("#!") and re.search(r"\b(ba|z|da)?sh\b", first) is not None


# --------------------------------------------------------------------------- the code

def code_reads() -> tuple[dict[str, list[Read]], list[DynamicRead]]:
    reads: dict[str, list[Read]] = defaultdict(list)
    dynamic: list[DynamicRead] = []
    for folder in PYTHON_DIRS:
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            found, odd = scan_python_source(path.read_text(), rel)
            for read in found:
                reads[read.name].append(read)
            dynamic.extend(odd)
    for path in sorted(p for p in SCRIPTS_DIR.iterdir() if p.is_file() and _is_shell_script(p)):
        for read in scan_shell_source(path.read_text(), path.relative_to(ROOT).as_posix()):
            reads[read.name].append(read)
    return dict(reads), dynamic


# --------------------------------------------------------------------------- the README

_NAME = re.compile(r"^[A-Z][A-Z0-9_]*\*?[A-Z0-9_]*$")


def readme_variables(text: str) -> dict[str, int]:
    """Names (or ``*`` patterns) in the first cell of each row of every table whose header
    starts with ``variable``; each with its README line."""
    found: dict[str, int] = {}
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if not in_table:
            in_table = cells[0].lower() == "variable"
            continue
        if set(cells[0]) <= set("-: "):
            continue  # the separator row
        spans = re.findall(r"`([^`]*)`", cells[0])
        assert spans, f"README.md:{number}: a configuration row names no `VARIABLE`: {line}"
        for span in spans:
            for token in filter(None, re.split(r"[\s,/]+", span)):
                assert _NAME.match(token), (
                    f"README.md:{number}: {token!r} in the first cell is not a variable name "
                    f"(upper case, digits, '_', optionally one '*')")
                found.setdefault(token, number)
    return found


def _documented(name: str, documented: dict[str, int]) -> bool:
    return any(name == d or ("*" in d and fnmatch.fnmatchcase(name, d)) for d in documented)


def _where(reads: list[Read]) -> str:
    return ", ".join(sorted({r.where for r in reads}))


def check(readme_text: str) -> list[str]:
    """Every problem between the code's reads and ``readme_text``'s table (empty: in sync)."""
    reads, _ = code_reads()
    documented = readme_variables(readme_text)
    problems = []
    if not documented:
        problems.append("README.md has no configuration table (header '| variable | ...')")
    missing = {n: r for n, r in reads.items()
               if n not in NOT_CONFIGURATION and not _documented(n, documented)}
    if missing:
        problems.append(
            "read by the code but missing from README.md's configuration table (add a row: "
            "what it does, its default):\n" + "\n".join(
                f"  {name}  (read at {_where(missing[name])})" for name in sorted(missing)))
    stale = {d: line for d, line in documented.items()
             if not any(n == d or ("*" in d and fnmatch.fnmatchcase(n, d)) for n in reads)}
    if stale:
        problems.append(
            "in README.md's configuration table but read nowhere in include/ragrec, dags/ or "
            "scripts/ (stale row, or a read the scan cannot see):\n" + "\n".join(
                f"  {name}  (README.md:{line})" for name, line in sorted(stale.items())))
    both = sorted(set(NOT_CONFIGURATION) & set(documented))
    if both:
        problems.append(f"both documented and in NOT_CONFIGURATION: {both}")
    return problems


# --------------------------------------------------------------------------- tests

def test_variable_names_are_literals():
    _, dynamic = code_reads()
    odd = [d for d in dynamic if d.site not in DYNAMIC_ALLOWED]
    assert not odd, (
        "environment variables read under a name that is not a string literal; use a literal "
        "(os.environ.get(\"RAGREC_X\")) so the README check can see it, or add the call site "
        "to DYNAMIC_ALLOWED in this file with a reason:\n" + "\n".join(
            f"  {d.where}: {d.expression}  (site {d.site})" for d in odd))
    unused = sorted(set(DYNAMIC_ALLOWED) - {d.site for d in dynamic})
    assert not unused, f"DYNAMIC_ALLOWED entries with no dynamic read left: {unused}"


def test_exclusions_are_still_read():
    reads, _ = code_reads()
    unused = sorted(set(NOT_CONFIGURATION) - set(reads))
    assert not unused, f"NOT_CONFIGURATION entries the code no longer reads: {unused}"


def test_readme_configuration_table_matches_the_code():
    problems = check(README.read_text())
    assert not problems, "\n\n".join(problems)


def test_python_scanner_sees_reads_and_ignores_writes():
    source = '''
import os
from os import environ as ENV, getenv

A = os.environ.get("A1", "d")
B = os.environ["A2"]
C = os.getenv("A3")
D = "A4" in os.environ
E = getenv("A5")
F = ENV.get("A6")
os.environ["W1"] = "x"
os.environ.setdefault("W2", "1")
os.environ.pop("W3", None)
del os.environ["W4"]
os.environ.update(W5="1")

def settings(env=os.environ, environ=None):
    return env.get("A7"), environ["A8"]

def child():
    env = os.environ.copy()
    env.setdefault("A9", "4")
    env["W6"] = "x"
    alias = os.environ
    return alias.get("A10"), dict(os.environ).get("A11"), {**os.environ}.get("A12")

def loop():
    for var in ("A13", "A14"):
        if os.environ.get(var):
            return os.environ[var]

def dynamic(name):
    return os.environ.get(name), os.environ.get("P_" + name)

def not_env(params, env):
    return params.get("N1"), env.get("N2"), {"N3": 1}["N3"]
'''
    reads, dynamic = scan_python_source(source, "x.py")
    names = {r.name for r in reads}
    assert names == {f"A{i}" for i in range(1, 15)}, sorted(names)
    assert {r.where for r in reads if r.name == "A1"} == {"x.py:5"}
    assert [r.default for r in reads if r.name == "A9"] == ["'4'"]
    assert [(d.site, d.expression) for d in dynamic] == [
        ("x.py:dynamic", "name"), ("x.py:dynamic", "'P_' + name")]


def test_shell_scanner_sees_reads_not_own_variables():
    source = '''#!/usr/bin/env bash
# $RAGREC_IN_COMMENT is not read
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RAGREC_VENV:-$ROOT/.venv}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
RAGREC_OWN=1
echo "$RAGREC_OWN $ES_URL \\$RAGREC_ESCAPED $PATH $VENV"
'''
    reads = scan_shell_source(source, "s")
    assert sorted((r.name, r.where, r.default) for r in reads) == [
        ("AIRFLOW_HOME", "s:5", "$ROOT/.airflow"), ("ES_URL", "s:7", None),
        ("RAGREC_VENV", "s:4", "$ROOT/.venv")]


def test_readme_parser_reads_first_cells_only():
    text = """
| variable | meaning | default |
|---|---|---|
| `X_ONE` / `X_TWO`, `X_THREE` | uses `NOT_A_ROW_NAME` | `Y_DEFAULT` |
| `X_FOUR` (or `X_FIVE`) | a | b |
| `X_PAT_*` | pattern | |

| connection | fields | fallback |
|---|---|---|
| `other` | | `ES_URL` |
"""
    assert set(readme_variables(text)) == {"X_ONE", "X_TWO", "X_THREE", "X_FOUR", "X_FIVE",
                                           "X_PAT_*"}
