"""A second PDF text extractor (pypdf) for files pdfminer reads as empty.

Some damaged PDFs defeat pdfminer after repair but still have a readable text layer;
telling the operator they are "scanned" would be false.
"""

from __future__ import annotations

import io
import re

from ragrec.records import Element

PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def pdf_fallback_elements(data: bytes) -> tuple[tuple[Element, ...], int, str | None]:
    """(elements with page numbers, number of images seen, why the file is no readable PDF
    at all - a valid header over a broken body - or None) from pypdf."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = list(reader.pages)
    except Exception as exc:  # noqa: BLE001 - unreadable by both extractors
        return (), 0, f"neither pdfminer nor pypdf can read its structure ({type(exc).__name__}: " \
                      f"{str(exc)[:200]})"
    if not pages:
        return (), 0, "no pages: neither pdfminer nor pypdf finds a page in it"
    elements: list[Element] = []
    images = 0
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
            images += len(page.images)
        except Exception:  # noqa: BLE001 - one broken page does not spoil the others
            continue
        for paragraph in PARAGRAPH_BREAK.split(text):
            paragraph = " ".join(paragraph.split())
            if paragraph:
                elements.append(Element(paragraph, "NarrativeText", number))
    return tuple(elements), images, None
