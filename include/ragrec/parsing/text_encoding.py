"""Decoding text files whose encoding nobody declared.

Order: byte-order marks (UTF-32 before UTF-16, which shares its prefix), strict UTF-8,
BOM-less UTF-16 (many NUL bytes), then charset-normalizer's best guess. Text that still
looks like binary (many control characters) is refused: better a quarantine record than
an index full of mojibake.
"""

from __future__ import annotations

import codecs

BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
MAX_CONTROL_RATIO = 0.05


def _looks_binary(text: str) -> bool:
    if not text:
        return False
    sample = text[:20000]
    controls = sum(1 for c in sample if ord(c) < 32 and c not in "\t\n\r\f\v")
    return controls / len(sample) > MAX_CONTROL_RATIO


def _refuse(data: bytes, why: str) -> UnicodeDecodeError:
    return UnicodeDecodeError("unknown", data[:1], 0, 1, why)


def decode_text(data: bytes) -> str:
    """The text of ``data``; raises UnicodeDecodeError when no encoding makes sense of it."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return data.decode(encoding)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None and data.count(b"\x00") > len(data) // 4:
        for encoding in ("utf-16-le", "utf-16-be"):
            try:
                candidate = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            if not _looks_binary(candidate):
                text = candidate
                break
    if text is None:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise _refuse(data, "no text encoding fits these bytes")
        text = str(best)
    if _looks_binary(text):
        raise _refuse(data, "the bytes look binary, not text")
    return text
