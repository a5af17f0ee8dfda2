"""The sample documents shipped with ragrec: the default source of the DAGs and the demo."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def samples_dir() -> Path:
    return Path(str(resources.files("ragrec") / "samples"))


def chinese_samples_dir() -> Path:
    """A few Chinese documents (written for ragrec) for a Chinese index: ``ragrec ingest
    --language zh``."""
    return Path(str(resources.files("ragrec") / "samples_zh"))
