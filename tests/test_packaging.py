"""ragrec as a package: pyproject's ranges are what the pinned constraints satisfy, every pin
of the requirement files is the constraints' pin; and a runtime installed as a user would
(``.[airflow]`` plus the --no-deps wheels, into an empty venv) has no torch and ingests and
searches on the real node."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

from packaging.requirements import Requirement

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip().rstrip("\\").strip()
        if line and not line.startswith(("-", "--")) and "==" in line:
            requirement = Requirement(line)
            pins[requirement.name.lower()] = str(requirement.specifier).removeprefix("==")
    return pins


CONSTRAINTS = _pins(ROOT / "constraints.txt")


def test_every_declared_range_is_satisfied_by_the_pinned_constraints():
    declared = list(PYPROJECT["dependencies"])
    for extra in PYPROJECT["optional-dependencies"].values():
        declared += extra
    for line in declared:
        requirement = Requirement(line)
        pinned = CONSTRAINTS.get(requirement.name.lower())
        assert pinned, f"{requirement.name} is declared but not pinned in constraints.txt"
        assert requirement.specifier.contains(pinned), (line, pinned)
    assert {"airflow", "serve", "train", "dev"} <= set(PYPROJECT["optional-dependencies"])


def test_requirement_files_pin_what_the_constraints_pin_and_the_runtime_has_no_torch():
    for name in ("requirements.txt", "requirements-train.txt", "requirements-dev.txt",
                 "requirements-nodeps.txt"):
        for package, version in _pins(ROOT / name).items():
            assert CONSTRAINTS.get(package) == version, (name, package, version)
    runtime = set(_pins(ROOT / "requirements.txt"))
    core = {Requirement(r).name.lower() for r in PYPROJECT["dependencies"]}
    assert not (runtime | core) & {"torch", "sentence-transformers", "transformers"}
    train = {Requirement(r).name.lower() for r in PYPROJECT["optional-dependencies"]["train"]}
    assert {"torch", "sentence-transformers"} <= train
    nodeps = (ROOT / "requirements-nodeps.txt").read_text()
    assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", nodeps)) == len(
        _pins(ROOT / "requirements-nodeps.txt"))


def _run(command: list, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], env=env, capture_output=True,
                            text=True, timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, (command, result.stderr[-3000:], result.stdout[-2000:])
    return result


def test_a_runtime_install_has_no_torch_and_ingests_and_searches(tmp_path, es_url, es,
                                                                 cleanup_alias):
    """``uv pip install .[airflow]`` (the same resolution as pip's, from uv's cache) and the
    --no-deps wheels into an empty venv, then the runtime's own ``ragrec``: torch is not
    there, the ONNX graph is built without it, Markdown (and a PDF, a DOCX and a PPTX from
    ../shared/data where it is) are ingested, search finds them."""
    uv = Path(sys.executable).parent / "uv"
    venv = tmp_path / "runtime-venv"
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    _run([uv, "venv", "-q", "-p", sys.executable, venv], env)
    _run([uv, "pip", "install", "-q", f"{ROOT}[airflow]", "-c", ROOT / "constraints.txt"],
         env)
    _run([uv, "pip", "install", "-q", "--no-deps", "--require-hashes", "-r",
          ROOT / "requirements-nodeps.txt"], env)
    python = venv / "bin" / "python"
    found = _run([python, "-c", "import importlib.util as u, json; print(json.dumps("
                  "[m for m in ('torch', 'sentence_transformers', 'transformers') "
                  "if u.find_spec(m)]))"], env)
    assert json.loads(found.stdout) == []

    source = tmp_path / "kb"
    shutil.copytree(ROOT / "include" / "ragrec" / "samples", source)
    docs = ROOT.parent / "shared" / "data" / "docs"  # a PDF, a DOCX and a PPTX, when there
    extra = [docs / name for name in ("pdf__fake-memo.pdf", "handbook-1p.docx",
                                      "fake-power-point.pptx") if (docs / name).is_file()]
    for path in extra:
        shutil.copy(path, source / path.name)
    index = f"ragrec-test-runtime-{uuid.uuid4().hex[:8]}"
    cleanup_alias(index)
    run_env = {**env, "ES_URL": es_url, "RAGREC_CACHE_DIR": str(tmp_path / "cache"),
               "PATH": f"{venv / 'bin'}:{env['PATH']}"}
    ingest = _run([venv / "bin" / "ragrec", "ingest", source, "--index", index, "--json",
                   "--quiet"], run_env)
    summary = json.loads(ingest.stdout.strip().splitlines()[-1])
    assert summary["docs_new"] == 6 + len(extra) and summary["docs_quarantined"] == 0, summary
    assert list((tmp_path / "cache").glob("onnx/*/model.onnx"))  # built, without torch
    search = _run([venv / "bin" / "ragrec", "search", "VPN drops at the airport", "--index",
                   index, "--json", "-k", "3"], run_env)
    hits = json.loads(search.stdout)["hits"]
    assert hits[0]["doc_id"] == "vpn-access.md", hits
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"\nruntime venv: {size / 2**30:.2f} GiB (files counted once; uv hard-links them)")
