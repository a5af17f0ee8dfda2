"""Finding a Java runtime that can run (and a compiler that can extend) Elasticsearch 8."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from ragrec.config import java_homes

MIN_JAVA = 17


class JavaNotFound(RuntimeError):
    pass


def _major_version(java_home: Path) -> int | None:
    release = java_home / "release"
    text = ""
    if release.is_file():
        text = release.read_text(errors="replace")
        match = re.search(r'JAVA_VERSION="(\d+)(?:\.(\d+))?', text)
        if match:
            major = int(match.group(1))
            return int(match.group(2)) if major == 1 else major
    try:
        out = subprocess.run(
            [str(java_home / "bin" / "java"), "-version"],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except OSError:
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major


def _candidates() -> list[Path]:
    found = java_homes()
    java = shutil.which("java")
    if java:
        found.append(Path(os.path.realpath(java)).parent.parent)
    jvm_dir = Path("/usr/lib/jvm")
    if jvm_dir.is_dir():
        found.extend(sorted(p for p in jvm_dir.iterdir() if p.is_dir() and not p.is_symlink()))
    unique: list[Path] = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def find_java_home(need_compiler: bool = False) -> Path:
    """The first JDK/JRE (ES_JAVA_HOME, JAVA_HOME, PATH, /usr/lib/jvm) with Java >= 17."""
    tried = []
    for home in _candidates():
        if not (home / "bin" / "java").is_file():
            continue
        if need_compiler and not (home / "bin" / "javac").is_file():
            tried.append(f"{home} (no javac)")
            continue
        major = _major_version(home)
        if major is not None and major >= MIN_JAVA:
            return home
        tried.append(f"{home} (Java {major})")
    what = "a JDK (with javac)" if need_compiler else "a Java runtime"
    raise JavaNotFound(
        f"Elasticsearch 8 needs {what}, version {MIN_JAVA} or newer; tried: "
        f"{', '.join(tried) or 'nothing found'}. Install one (e.g. apt-get install "
        f"openjdk-17-jdk-headless) or set ES_JAVA_HOME, or point ES_URL at a running cluster."
    )
