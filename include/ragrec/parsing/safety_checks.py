"""Cheap checks on raw bytes that recognise encrypted or legacy files before parsing.

unstructured returns no elements (or raises something generic) for these; telling the
operator *why* a file was quarantined needs a look at the bytes first.
"""

from __future__ import annotations

import email
import email.policy
import io

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
OOXML_TYPES = {"docx", "xlsx", "pptx"}


def encrypted_reason(extension: str, data: bytes) -> str | None:
    """A sentence saying why the file is encrypted, or None."""
    if extension in OOXML_TYPES and data.startswith(OLE_MAGIC):
        # Encrypted Office Open XML files are wrapped in an OLE container instead of a zip.
        return f"password-protected .{extension} (encrypted OLE container)"
    if extension == "pdf":
        return _pdf_encryption(data)
    if extension == "eml":
        return _email_encryption(data)
    return None


def _pdf_encryption(data: bytes) -> str | None:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
    except (PdfReadError, ValueError, OSError):
        return None  # corrupt, not encrypted: parsing reports it
    if not reader.is_encrypted:
        return None
    try:
        # Owner-password-only ("copy-protected") PDFs open with an empty user password.
        if reader.decrypt("") != 0:
            return None
    except Exception:  # noqa: BLE001 - unsupported crypto is still "encrypted"
        pass
    return "password-protected PDF (needs a user password)"


def _email_encryption(data: bytes) -> str | None:
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    content_type = (message.get_content_type() or "").lower()
    if content_type == "multipart/encrypted":
        protocol = message.get_param("protocol") or "unknown protocol"
        return f"encrypted email (multipart/encrypted, {protocol})"
    if content_type in {"application/pkcs7-mime", "application/x-pkcs7-mime"}:
        return "encrypted email (S/MIME)"
    if b"-----BEGIN PGP MESSAGE-----" in data[:65536]:
        return "encrypted email (inline PGP)"
    return None
