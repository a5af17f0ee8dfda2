"""Parsing with ``unstructured`` (offline): bytes in, a ParsedDocument or a Quarantined out.

Nothing raises past ``parse_document``: a file that cannot be parsed becomes a quarantine
record with a reason, so one bad file never stops a run.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import io
import logging
import shutil
from dataclasses import dataclass

from ragrec.parsing import offline_nlp
from ragrec.parsing.pdf_fallback import pdf_fallback_elements
from ragrec.parsing.safety_checks import encrypted_reason
from ragrec.parsing.structured_text import json_to_text
from ragrec.parsing.text_encoding import decode_text
from ragrec.records import Element, ParsedDocument, Quarantined, SourceObject

log = logging.getLogger(__name__)

# extension -> unstructured partition module (``unstructured.partition.<module>``)
PARTITIONERS = {
    "pdf": "pdf", "docx": "docx", "pptx": "pptx", "xlsx": "xlsx",
    "html": "html", "htm": "html", "xhtml": "html", "md": "md", "markdown": "md",
    "txt": "text", "text": "text", "log": "text", "eml": "email", "msg": "msg",
    "epub": "epub", "rtf": "rtf", "odt": "odt", "csv": "csv", "tsv": "tsv", "xml": "xml",
    "json": "text",  # generic JSON is flattened to text first (see structured_text)
}
# Text formats whose bytes ragrec decodes itself (see text_encoding) before unstructured.
TEXT_FORMATS = {"txt", "text", "log", "md", "markdown", "csv", "tsv", "json", "html", "htm",
                "xhtml", "xml"}
LEGACY_OFFICE = {"doc": "docx", "ppt": "pptx", "xls": "xlsx"}
PAGE_FURNITURE = {"Header", "Footer", "PageBreak", "PageNumber", "Image"}


@dataclass(frozen=True)
class ParseSettings:
    max_bytes: int = 100 * 1024 * 1024
    pdf_strategy: str = "fast"  # "ocr_only" / "hi_res" need tesseract / layout models
    # Document language(s) as ISO 639-3 codes; ("auto",) runs unstructured's per-document
    # detection, which costs more than the rest of parsing a Markdown file.
    languages: tuple[str, ...] = ("eng",)


def parse_document(
    obj: SourceObject, data: bytes, settings: ParseSettings = ParseSettings()
) -> ParsedDocument | Quarantined:
    def quarantine(reason: str, detail: str) -> Quarantined:
        return Quarantined(obj.doc_id, obj.uri, obj.fingerprint, "parse", reason, detail)

    extension = obj.extension
    if len(data) > settings.max_bytes:
        return quarantine(
            "too_large", f"{len(data)} bytes is above the {settings.max_bytes}-byte limit"
        )
    if extension in LEGACY_OFFICE and not shutil.which("soffice"):
        return quarantine(
            "unsupported_type",
            f"legacy .{extension} needs LibreOffice (soffice) to convert, and it is not "
            f"installed; save it as .{LEGACY_OFFICE[extension]} or install LibreOffice",
        )
    module = PARTITIONERS.get(extension) or (extension if extension in LEGACY_OFFICE else None)
    if module is None:
        what = f".{extension} files" if extension else "files without an extension"
        return quarantine("unsupported_type", f"{what} are not a supported document type")
    if not data.strip():
        return quarantine("empty", "the file is empty or whitespace only")
    encrypted = encrypted_reason(extension, data)
    if encrypted:
        return quarantine("encrypted", encrypted)

    warnings: list[str] = []
    try:
        if extension in TEXT_FORMATS:
            text = decode_text(data)
            if extension == "json":
                text = json_to_text(text)
            data = text.encode("utf-8")
        raw_elements = _partition(module, extension, data, obj.key, settings, warnings)
    except UnicodeDecodeError as exc:
        return quarantine("undecodable", f"text could not be decoded: {exc}")
    except ImportError as exc:  # the environment's problem, not the file's: retried
        return quarantine("parser_unavailable",
                          f"the .{extension} parser needs the Python module "
                          f"{exc.name or exc!s}, which is not installed (the runtime "
                          "requirements: requirements.txt and requirements-nodeps.txt)")
    except Exception as exc:  # noqa: BLE001 - any parser failure is this file's problem
        message = f"{type(exc).__name__}: {exc}".strip()
        if "password" in message.lower() or "encrypt" in message.lower():
            return quarantine("encrypted", message[:500])
        return quarantine("corrupt", message[:500])

    elements = tuple(_with_titles(raw_elements))
    if not elements and extension == "pdf":
        elements, images, broken = pdf_fallback_elements(data)
        if broken:
            return quarantine("corrupt", broken)
        if elements:
            warnings.append("pdfminer found no text; used pypdf's text extraction")
        elif images:
            return quarantine("empty", "no text layer: the PDF holds only images (scanned); "
                                       "OCR needs --pdf-strategy ocr_only and tesseract")
    if not any(e.text.strip() for e in elements):
        return quarantine("empty", "no extractable text")
    return ParsedDocument(
        source=obj,
        elements=elements,
        content_sha256=hashlib.sha256(data).hexdigest(),
        warnings=tuple(warnings),
    )


@functools.cache
def _quiet_pdf_loggers() -> None:
    # pdfminer/pypdf log every recoverable oddity of a damaged PDF at WARNING: noise in a
    # batch run. Real failures still raise and end up in the quarantine record.
    for name in ("pdfminer", "pypdf"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _partition(module, extension, data, key, settings, warnings):
    offline_nlp.install()
    _quiet_pdf_loggers()
    partition_module = importlib.import_module(f"unstructured.partition.{module}")
    partition = getattr(partition_module, f"partition_{module}")
    kwargs = {"file": io.BytesIO(data), "metadata_filename": key,
              "languages": list(settings.languages)}
    if extension in TEXT_FORMATS and module != "tsv":
        kwargs["encoding"] = "utf-8"  # already normalised by decode_text
    if module == "pdf":
        kwargs.update(strategy=settings.pdf_strategy)
    if module in ("email", "msg"):
        # Attachments are partitioned with the same (offline) strategy; one that cannot be
        # (an image without OCR) drops the attachments, not the message body.
        kwargs.update(process_attachments=True, strategy=settings.pdf_strategy)
        try:
            return partition(**kwargs)
        except Exception as exc:  # noqa: BLE001 - keep the body when an attachment fails
            warnings.append(f"attachments skipped: {type(exc).__name__}: {exc}"[:300])
            kwargs.update(file=io.BytesIO(data), process_attachments=False)
    return partition(**kwargs)


def _with_titles(raw_elements):
    """Drop page furniture; give each element the path of titles above it."""
    stack: list[tuple[int, str]] = []
    for raw in raw_elements:
        category = getattr(raw, "category", type(raw).__name__)
        text = (raw.text or "").strip()
        if category in PAGE_FURNITURE or not text:
            continue
        metadata = raw.metadata
        if category == "Title":
            depth = metadata.category_depth or 0
            stack = [(d, t) for d, t in stack if d < depth]
            stack.append((depth, text[:300]))
            yield Element(text, category, metadata.page_number, tuple(t for _, t in stack[:-1]))
            continue
        yield Element(text, category, metadata.page_number, tuple(t for _, t in stack))
