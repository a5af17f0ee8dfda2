"""Fetching and preparing the Elasticsearch server distribution, once, into the cache.

The archive comes from Maven Central through the user's own Maven (so corporate mirrors in
``~/.m2/settings.xml`` apply), or from a local archive named by ``RAGREC_ES_DIST`` for
machines without network. Elastic publishes one server distribution to Maven Central:
``integ-test-zip``, a real Elasticsearch without the optional modules of the full download.
It lacks the root endpoint and the language analyzers, so ragrec adds a small module of its
own (``compat_module/``) compiled here against that very distribution.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from ragrec.config import LocalNodeSettings
from ragrec.dev.es_node.java_runtime import find_java_home

MAVEN_COORDINATE = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
COMPAT_MODULE_NAME = "ragrec-compat"
COMPAT_SOURCES = Path(__file__).parent / "compat_module"
COMPAT_STAMP = "sources.sha256"  # beside the module: the sources it was built from
READY_MARKER = ".ragrec-ready"


class DistributionError(RuntimeError):
    pass


@contextmanager
def _exclusive(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def distribution_home(settings: LocalNodeSettings) -> Path:
    return settings.home / "elasticsearch" / f"elasticsearch-{settings.version}"


def ensure_distribution(settings: LocalNodeSettings, log: Callable[[str], None] = print) -> Path:
    """Return ES_HOME of a ready distribution, fetching and preparing it on first use."""
    home = distribution_home(settings)
    if (home / READY_MARKER).is_file() and _compat_current(home):
        return home
    with _exclusive(home.parent / ".lock"):
        if (home / READY_MARKER).is_file():
            if not _compat_current(home):  # a ragrec that adds to the module (an analyzer)
                log("rebuilding ragrec's compatibility module (its sources changed) ...")
                _install_compat_module(home, _server_version(home))
                _make_world_readable(home.parent)
            return home
        archive = (
            Path(settings.distribution)
            if settings.distribution
            else _fetch_with_maven(settings, home.parent / "downloads", log)
        )
        if not archive.is_file():
            raise DistributionError(f"RAGREC_ES_DIST={archive} is not a file")
        log(f"extracting {archive.name} ...")
        _extract(archive, home)
        if _needs_compat_module(home):
            log("building ragrec's compatibility module (root endpoint, english and cjk "
                "analyzers) ...")
            _install_compat_module(home, _server_version(home))
        _make_world_readable(home.parent)
        (home / READY_MARKER).write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return home


def _fetch_with_maven(settings: LocalNodeSettings, downloads: Path,
                      log: Callable[[str], None]) -> Path:
    from ragrec import maven

    version = settings.version
    try:
        return maven.fetch(MAVEN_COORDINATE.format(version=version),
                           downloads / f"elasticsearch-{version}.zip", settings.maven, log,
                           instead=", or set RAGREC_ES_DIST to an Elasticsearch 8 archive, or "
                                   "set ES_URL to use a running cluster")
    except maven.MavenError as exc:
        raise DistributionError(str(exc)) from None


def _extract(archive: Path, home: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=home.parent))
    try:
        if archive.suffix == ".zip":
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    path = Path(zipped.extract(info, staging))
                    mode = (info.external_attr >> 16) & 0o777
                    if mode and not info.is_dir():
                        path.chmod(mode)
        else:
            with tarfile.open(archive) as tarred:
                tarred.extractall(staging, filter="tar")
        tops = [p for p in staging.iterdir() if p.is_dir()]
        if len(tops) != 1 or not (tops[0] / "bin" / "elasticsearch").is_file():
            raise DistributionError(f"{archive} does not look like an Elasticsearch distribution")
        if home.exists():
            shutil.rmtree(home)
        tops[0].rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _server_version(home: Path) -> str:
    for jar in (home / "lib").glob("elasticsearch-[0-9]*.jar"):
        return jar.stem.removeprefix("elasticsearch-")
    raise DistributionError(f"no server jar under {home / 'lib'}")


def _sources_digest() -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(COMPAT_SOURCES.rglob("*.java")):
        digest.update(path.relative_to(COMPAT_SOURCES).as_posix().encode() + b"\0"
                      + path.read_bytes())
    return digest.hexdigest()


def _compat_current(home: Path) -> bool:
    """Whether the compat module, where the distribution needs one, was built from these
    sources."""
    if not _needs_compat_module(home):
        return True
    stamp = home / "modules" / COMPAT_MODULE_NAME / COMPAT_STAMP
    return stamp.is_file() and stamp.read_text() == _sources_digest()


def _needs_compat_module(home: Path) -> bool:
    modules = home / "modules"
    return not (modules / "rest-root").exists() and not (modules / "analysis-common").exists()


def _install_compat_module(home: Path, es_version: str) -> None:
    java_home = find_java_home(need_compiler=True)
    sources = sorted(str(p) for p in COMPAT_SOURCES.rglob("*.java"))
    module_dir = home / "modules" / COMPAT_MODULE_NAME
    with tempfile.TemporaryDirectory() as build:
        classes = Path(build) / "classes"
        classes.mkdir()
        compile_cmd = [
            str(java_home / "bin" / "javac"), "-nowarn", "--release", "17",
            "-cp", str(home / "lib" / "*"), "-d", str(classes), *sources,
        ]
        result = subprocess.run(compile_cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DistributionError(f"compiling the compat module failed:\n{result.stderr}")
        module_dir.mkdir(parents=True, exist_ok=True)
        jar = module_dir / f"{COMPAT_MODULE_NAME}.jar"
        # Written aside and renamed: a node running from this distribution keeps the jar it
        # opened.
        partial = jar.with_name(jar.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
            for path in sorted(classes.rglob("*.class")):
                out.write(path, path.relative_to(classes).as_posix())
        partial.rename(jar)
    (module_dir / "plugin-descriptor.properties").write_text(
        "description=ragrec compatibility: root endpoint, english and cjk analyzers\n"
        f"version={es_version}\n"
        f"name={COMPAT_MODULE_NAME}\n"
        "classname=org.ragrec.escompat.RagrecCompatPlugin\n"
        "java.version=17\n"
        f"elasticsearch.version={es_version}\n"
    )
    (module_dir / COMPAT_STAMP).write_text(_sources_digest())


def _make_world_readable(root: Path) -> None:
    """The node may run as another user (never root), which must read the distribution."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            extra = stat.S_IRGRP | stat.S_IROTH
            if path.is_dir() or mode & stat.S_IXUSR:
                extra |= stat.S_IXGRP | stat.S_IXOTH
            path.chmod(mode | extra)
    root.chmod(root.stat().st_mode | 0o755)
