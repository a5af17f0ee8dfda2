"""A learned recommendation ranker as a model version: a linear model over named columns,
self-describing, so whoever serves it (the model server's ``/rank``, the resolver in
process) needs nothing of how its features were made (``ragrec.recs.ranker`` makes them and
fits it).

A column is a candidate feature by name (0 when a candidate lacks it), ``history``
(``log1p`` of how many items the user consumed), or ``history_x_<feature>`` (their
product). ``score = ((columns - mean) / scale) @ weights``. Stored as ``ranker.json`` beside
a card of kind ``RANKER_KIND`` (``models.store``); registered, resolved and cached here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragrec.models.store import CARD, RANKER_KIND

FILE = "ranker.json"
HISTORY = "history"
PRODUCT = "history_x_"


def design(columns: Sequence[str], rows: Sequence[Mapping[str, float]],
           history: int) -> np.ndarray:
    """The ``columns`` of one user's candidate ``rows`` (feature name -> value)."""
    length = float(np.log1p(max(history, 0)))
    matrix = np.zeros((len(rows), len(columns)))
    for j, column in enumerate(columns):
        if column == HISTORY:
            matrix[:, j] = length
            continue
        name = column.removeprefix(PRODUCT)
        factor = length if column.startswith(PRODUCT) else 1.0
        matrix[:, j] = [factor * float(row.get(name, 0.0)) for row in rows]
    return matrix


@dataclass
class Ranker:
    """``score = ((design(columns, ...) - mean) / scale) @ weights``."""

    columns: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    version: str = ""
    report: dict | None = None

    def score(self, rows: Sequence[Mapping[str, float]], history: int) -> np.ndarray:
        if not rows:
            return np.zeros(0)
        return self.score_matrix(design(self.columns, rows, history))

    def score_matrix(self, matrix: np.ndarray) -> np.ndarray:
        return ((matrix - self.mean) / self.scale) @ self.weights

    def to_dict(self) -> dict:
        return {"kind": RANKER_KIND, "columns": list(self.columns),
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weights": self.weights.tolist(), "version": self.version,
                "report": self.report or {}}

    @classmethod
    def from_dict(cls, data: dict) -> Ranker:
        columns = data.get("columns") if isinstance(data, dict) else None
        if data.get("kind") != RANKER_KIND or not isinstance(columns, list) or not all(
                len(data.get(k) or []) == len(columns) for k in ("mean", "scale", "weights")):
            raise ValueError("not a ragrec recommendation ranker (kind, columns, mean, scale "
                             "and weights of one length)")
        return cls(tuple(columns), np.asarray(data["mean"], dtype=np.float64),
                   np.asarray(data["scale"], dtype=np.float64),
                   np.asarray(data["weights"], dtype=np.float64), data.get("version", ""),
                   data.get("report"))


def save(ranker: Ranker, folder: Path, name: str, **card) -> Path:
    """A model version directory: the ranker and a card naming it (``models.store``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FILE).write_text(json.dumps(ranker.to_dict()))
    (folder / CARD).write_text(json.dumps({"name": name, "version": ranker.version,
                                           "kind": RANKER_KIND, "ranker": FILE, **card},
                                          indent=2, sort_keys=True))
    return folder


def load(folder: Path) -> Ranker:
    path = Path(folder) / FILE
    if not path.is_file():
        raise ValueError(f"{folder} holds no {FILE}: not a recommendation ranker version")
    return Ranker.from_dict(json.loads(path.read_text()))


_loaded: dict[str, tuple[float, Ranker]] = {}
_loaded_lock = threading.Lock()
STAGE_REREAD_SECONDS = 30.0  # a ``name@stage`` reference is resolved again this often


def load_reference(reference: str, registry) -> Ranker:
    """The ranker a reference names: a registered version (``rank-...``), ``name:version``
    or ``name@stage`` in ``registry`` (``config.RegistrySettings``), or a directory. Kept in
    memory; a stage is looked up again every ``STAGE_REREAD_SECONDS``."""
    from ragrec.models.registry import RegistryError, open_registry, version_uri
    from ragrec.models.store import ModelNotFound, fetch_model_dir

    now = time.monotonic()
    with _loaded_lock:
        cached = _loaded.get(reference)
    if cached and ("@" not in reference or now - cached[0] < STAGE_REREAD_SECONDS):
        return cached[1]
    try:
        if "@" in reference or ":" in reference and not reference.startswith(("/", "file:")):
            if registry is None:
                raise LookupError(f"ranker {reference!r}: no model registry to resolve it in")
            uri = open_registry(registry).resolve(reference)
        elif Path(reference.removeprefix("file://")).is_dir():
            uri = reference
        else:
            uri = version_uri(reference, registry)
        if not uri:
            raise LookupError(f"no ranker {reference!r} in the registry")
        model = load(fetch_model_dir(uri, registry.oss if registry else None))
    except (RegistryError, ModelNotFound, ValueError) as exc:
        raise LookupError(f"ranker {reference!r}: {exc}") from None
    with _loaded_lock:
        _loaded[reference] = (now, model)
    return model


def register(model: dict, alias: str, registry, report: dict) -> dict:
    """The fitted ranker (``Ranker.to_dict``) as a new version of ``<alias>-ranker`` in the
    model registry, at the production stage; returns what the live setup records of it."""
    import tempfile
    from datetime import UTC, datetime

    from ragrec.models.registry import open_registry

    ranker = Ranker.from_dict(model)
    ranker.version = f"rank-{alias}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
    ranker.report = report
    name = f"{alias}-ranker"
    with tempfile.TemporaryDirectory(prefix="ragrec-ranker-") as folder:
        save(ranker, Path(folder), name, training=report)
        entry = open_registry(registry).register(folder, stage="production")
    return {"version": ranker.version, "name": name, "uri": entry["uri"],
            "reference": f"{name}@production"}
