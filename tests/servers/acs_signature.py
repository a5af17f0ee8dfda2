"""Server-side check of Alibaba Cloud's V3 request signature (``ACS3-HMAC-SHA256``), as the
OpenAPI gateway does it for every control-plane call made by the official SDKs.

    Authorization: ACS3-HMAC-SHA256 Credential=<AK>,SignedHeaders=<h1;h2>,Signature=<hex>

canonical request = METHOD \\n path \\n sorted query \\n signed headers (name:value\\n ...)
\\n signed header names \\n x-acs-content-sha256; string to sign = algorithm \\n
sha256(canonical request); signature = HMAC-SHA256(secret, string to sign).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

MAX_SKEW_SECONDS = 15 * 60
ALGORITHM = "ACS3-HMAC-SHA256"


class SignatureProblem(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _canonical_query(raw_query: str) -> str:
    pairs = sorted(parse_qsl(raw_query, keep_blank_values=True))
    return "&".join(f"{k}={quote(v, safe='~')}" for k, v in pairs)


def verify(method: str, raw_path: str, raw_query: str, headers, body: bytes,
           credentials: dict[str, str], action: str, version: str) -> str:
    """Returns the AccessKey id; raises SignatureProblem with the gateway's error code."""
    auth = headers.get("Authorization") or headers.get("authorization") or ""
    if not auth.startswith(ALGORITHM + " "):
        raise SignatureProblem(400, "MissingAuthorization",
                               f"an {ALGORITHM} Authorization header is required")
    fields = dict(part.split("=", 1) for part in auth[len(ALGORITHM) + 1:].split(","))
    access_key = fields.get("Credential", "")
    secret = credentials.get(access_key)
    if secret is None:
        raise SignatureProblem(404, "InvalidAccessKeyId.NotFound",
                               f"Specified access key is not found: {access_key}")
    if headers.get("x-acs-action") != action or headers.get("x-acs-version") != version:
        raise SignatureProblem(400, "InvalidAction",
                               f"expected action {action} version {version}, got "
                               f"{headers.get('x-acs-action')} {headers.get('x-acs-version')}")
    stamp = headers.get("x-acs-date", "")
    try:
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureProblem(400, "InvalidTimeStamp.Format", f"bad x-acs-date {stamp!r}") \
            from None
    if abs((datetime.now(UTC) - when).total_seconds()) > MAX_SKEW_SECONDS:
        raise SignatureProblem(400, "InvalidTimeStamp.Expired", "x-acs-date is too far off")
    payload_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-acs-content-sha256") != payload_hash:
        raise SignatureProblem(400, "InvalidPayloadHash", "x-acs-content-sha256 does not "
                                                          "match the body")
    signed = fields.get("SignedHeaders", "").split(";")
    for required in ("host", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"):
        if required not in signed:
            raise SignatureProblem(400, "IncompleteSignature", f"{required} must be signed")
    canonical_headers = "".join(f"{name}:{(headers.get(name) or '').strip()}\n"
                                for name in signed)
    canonical = "\n".join([method, raw_path or "/", _canonical_query(raw_query),
                           canonical_headers, ";".join(signed), payload_hash])
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("Signature", "")):
        raise SignatureProblem(400, "SignatureDoesNotMatch",
                               "The request signature does not conform to Aliyun standards.")
    return access_key
