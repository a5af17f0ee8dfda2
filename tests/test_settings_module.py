"""One settings module: no module under ``include/ragrec`` but ``ragrec/config.py`` touches
the process environment (``os.environ``, ``os.getenv``, ``os.putenv``/``unsetenv``,
``from os import environ``), except where it copies the whole environment to hand to a child
process - each such site listed in ``CHILD_ENV_COPIES`` with its reason.

Static (``ast``): nothing here imports ragrec.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "include" / "ragrec"
SETTINGS_MODULE = "include/ragrec/config.py"
ENV_FUNCTIONS = {"getenv", "getenvb", "putenv", "unsetenv"}
ENV_NAMES = {"environ", "environb", *ENV_FUNCTIONS}

# "path:qualified.function" -> why the whole environment is copied there. Only a copy
# (``os.environ.copy()`` or ``dict(os.environ)``) is accepted at these sites.
CHILD_ENV_COPIES: dict[str, str] = {
    "include/ragrec/dev/local_airflow.py:LocalAirflow.__init__":
        "the environment of the local Airflow deployment's processes and of its CLI calls",
    "include/ragrec/dev/quickstart.py:run_kb_ingest":
        "the environment of the demo's `airflow db migrate` / `demo_run` children",
    "include/ragrec/dev/quickstart.py:start_ui":
        "the environment of the demo's `airflow standalone` (its UI)",
    "include/ragrec/dev/es_node/node.py:LocalNode._launch":
        "the environment of an Elasticsearch process (minus ES_URL and JVM options)",
}


class _EnvUses(ast.NodeVisitor):
    """Every use of the environment in one module: (line, site, is a whole-env copy)."""

    def __init__(self, rel: str):
        self.rel = rel
        self.os_names: set[str] = set()
        self.scope: list[str] = []
        self.uses: list[tuple[int, str, bool]] = []
        self.copies: set[int] = set()  # ids of os.environ nodes that are copied whole

    def site(self) -> str:
        return f"{self.rel}:{'.'.join(self.scope) or '<module>'}"

    def visit_Module(self, node: ast.Module) -> None:
        for stmt in ast.walk(node):
            if isinstance(stmt, ast.Import):
                self.os_names.update(a.asname or a.name for a in stmt.names if a.name == "os")
        self.generic_visit(node)

    def _scoped(self, node) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "os" and any(a.name in ENV_NAMES for a in node.names):
            self.uses.append((node.lineno, self.site(), False))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr == "copy" and not node.args
                and self._is_os_attr(func.value, "environ")):
            self.copies.add(id(func.value))
        if (isinstance(func, ast.Name) and func.id == "dict" and len(node.args) == 1
                and not node.keywords and self._is_os_attr(node.args[0], "environ")):
            self.copies.add(id(node.args[0]))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in ENV_NAMES and self._is_os_attr(node, node.attr):
            self.uses.append((node.lineno, self.site(), id(node) in self.copies))
        self.generic_visit(node)

    def _is_os_attr(self, node: ast.AST, attr: str) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == attr
                and isinstance(node.value, ast.Name) and node.value.id in self.os_names)


def env_uses(source: str, rel: str) -> list[tuple[int, str, bool]]:
    visitor = _EnvUses(rel)
    visitor.visit(ast.parse(source, filename=rel))
    return visitor.uses


def _package_uses() -> list[tuple[str, int, str, bool]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel != SETTINGS_MODULE:
            found += [(rel, *use) for use in env_uses(path.read_text(), rel)]
    return found


def test_only_the_settings_module_reads_the_environment():
    offending = [f"  {rel}:{line} ({site})" for rel, line, site, copy in _package_uses()
                 if not (copy and site in CHILD_ENV_COPIES)]
    assert not offending, (
        f"the environment is read outside {SETTINGS_MODULE}: add a field to a settings record "
        "there (and a row to README.md's configuration table) and pass the record in; a copy "
        "of the whole environment for a child process goes in CHILD_ENV_COPIES:\n"
        + "\n".join(offending))


def test_every_allowed_copy_is_still_there():
    sites = {site for _, _, site, copy in _package_uses() if copy}
    stale = sorted(set(CHILD_ENV_COPIES) - sites)
    assert not stale, f"CHILD_ENV_COPIES entries with no copy of the environment left: {stale}"


def test_scanner_sees_reads_writes_and_copies():
    source = '''
import os
import os as system
from os import getenv

A = os.environ.get("A")
os.environ.setdefault("B", "1")

def child():
    return os.environ.copy(), dict(system.environ)

class Settings:
    def read(self):
        return os.getenv("C"), "D" in os.environ, system.environ["E"]

def not_env(params):
    return params.environ, params.copy(), dict(params)
'''
    uses = env_uses(source, "x.py")
    assert [(line, site, copy) for line, site, copy in uses] == [
        (4, "x.py:<module>", False), (6, "x.py:<module>", False),
        (7, "x.py:<module>", False), (10, "x.py:child", True), (10, "x.py:child", True),
        (14, "x.py:Settings.read", False), (14, "x.py:Settings.read", False),
        (14, "x.py:Settings.read", False)]


def test_records_never_print_their_secrets():
    from ragrec import config

    secret = "s3cret-value"
    env = {name: secret for name in (
        "ES_PASSWORD", "ES_API_KEY", "OSS_ACCESS_KEY_SECRET", "OSS_SECURITY_TOKEN",
        "RAGREC_EMBED_TOKEN", "RAGREC_SERVE_TOKEN", "RAGREC_ADMIN_TOKEN", "RAGREC_API_TOKEN",
        "RAGREC_LLM_API_KEY", "RAGREC_ALERT_WEBHOOK_TOKEN", "AIREC_ACCESS_KEY_SECRET",
        "EAS_ACCESS_KEY_SECRET", "EAS_SECURITY_TOKEN", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")}
    env.update(RAGREC_LLM_URL="http://127.0.0.1:9/v1", RAGREC_ALERT_WEBHOOK="http://hook")
    records = [config.ElasticsearchSettings, config.OssSettings, config.RegistrySettings,
               config.ModelEndpointSettings, config.ServeModelSettings, config.ApiSettings,
               config.AlertSettings, config.AirecSettings, config.EasSettings,
               config.PaiSettings, config.LlmSettings]
    for record in records:
        text = repr(record.from_env(env))
        assert secret not in text, text
    smtp = config.SmtpSettings(host="h", username="u", password=secret)
    assert secret not in repr(config.AlertSettings(smtp=smtp))
