"""One artifact from Maven Central, fetched once through the user's own Maven (so corporate
mirrors in ``~/.m2/settings.xml`` apply): the Elasticsearch distribution, the base encoders'
jars. Retried with backoff; a missing ``mvn`` or a refused artifact is one error saying what
to do instead."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
ATTEMPTS = 3


class MavenError(RuntimeError):
    pass


def fetch(coordinate: str, target: Path, maven: str = "mvn",
          log: Callable[[str], None] = print, instead: str = "") -> Path:
    """``target`` (the artifact's file name under ``coordinate``'s resolution), fetched
    into its folder unless it is already there. ``instead``: what a user without Maven or
    network can do (appended to the error)."""
    if target.is_file():
        return target
    mvn = shutil.which(maven)
    if not mvn:
        raise MavenError(f"Maven (mvn) is needed once to fetch {coordinate} from Maven "
                         f"Central: install it (apt-get install maven){instead}")
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"fetching {coordinate} with Maven, once ...")
    command = [mvn, "-B", "-q", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={coordinate}",
               f"-DoutputDirectory={target.parent}"]
    last_error = ""
    for attempt in range(1, ATTEMPTS + 1):
        # Run outside any Maven project so that no pom.xml changes the resolution.
        with tempfile.TemporaryDirectory() as empty_dir:
            result = subprocess.run(command, cwd=empty_dir, capture_output=True, text=True,
                                    check=False, timeout=1800)
        if result.returncode == 0 and target.is_file():
            return target
        last_error = (result.stdout + result.stderr)[-2000:]
        if attempt < ATTEMPTS:
            delay = 5 * 2 ** (attempt - 1)
            log(f"  Maven failed (attempt {attempt}/{ATTEMPTS}), retrying in {delay}s")
            time.sleep(delay)
    raise MavenError(f"could not fetch {coordinate} with Maven:\n{last_error}")
