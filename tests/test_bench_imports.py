"""Every ``bench/`` module's imports of ragrec resolve, the ones inside functions included:
a benchmark is run rarely, so a renamed function would otherwise only show up an hour into
``bench/run``."""

from __future__ import annotations

import ast
import importlib

from conftest import ROOT


def test_every_ragrec_name_a_benchmark_imports_exists():
    missing = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.split(".")[0] in ("ragrec", "bench")):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(module, alias.name):
                    continue
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    missing.append(f"{path.name}: from {node.module} import {alias.name}")
    assert not missing, missing
