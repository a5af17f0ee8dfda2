"""A local server speaking the OSS REST protocol (path-style, as SDKs use for an IP endpoint).

It checks what OSS checks: the ``Authorization: OSS <AccessKeyId>:<Signature>`` header
(HMAC-SHA1 over verb, Content-MD5, Content-Type, Date, canonical ``x-oss-`` headers and the
canonical resource with its signed sub-resources), clock skew of the ``Date`` header, bucket
and key existence; it answers in OSS's XML, error documents included, and supports
ListObjectsV2 paging with continuation tokens and ``start-after``, GetObject, HeadObject
and PutObject (with the CRC-64 header the SDK verifies, and Content-MD5 checked when
sent). Failures can be injected per key for retry tests.

``OssServer(..., quirks=EMULATOR_QUIRKS)`` behaves where real OSS leaves room the way the
third-party ``aliyun/oss-emulator`` does, so a client that only works against a friendly
server fails here too: ListObjects v1 answers to a V2 request (no continuation token, a
``MaxKeys`` of 1000 whatever was asked, ``max-keys`` silently capped at 1000), keys in
storage order rather than sorted, prefixes matched at offset 0 or 1, and ETags unquoted and
upper case in listings, unquoted and lower case on HEAD, quoted and lower case on GET.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

# The sub-resources that take part in a V1 signature (a subset is enough for reads/lists).
SIGNED_SUBRESOURCES = {
    "acl", "uploads", "location", "cors", "logging", "website", "referer", "lifecycle",
    "delete", "append", "tagging", "objectMeta", "uploadId", "partNumber", "security-token",
    "position", "response-content-type", "response-content-language", "response-expires",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "continuation-token", "versionId", "versions", "x-oss-process", "symlink", "restore",
}
MAX_SKEW_SECONDS = 15 * 60


@dataclass(frozen=True)
class Quirks:
    v1_listing: bool = False  # list-type=2 ignored: no continuation tokens
    cap_max_keys: bool = False  # max-keys above 1000 becomes 1000 (OSS: 400)
    storage_order: bool = False  # keys in the order they were stored, not sorted
    loose_prefix: bool = False  # a key matches if the prefix is at offset 0 or 1
    loose_etags: bool = False  # case and quotes differ between listing, HEAD and GET


EMULATOR_QUIRKS = Quirks(True, True, True, True, True)


def crc64_ecma(data: bytes) -> int:
    from oss2.utils import Crc64

    crc = Crc64()
    crc.update(data)
    return crc.crc


class OssServer:
    def __init__(self, buckets: dict[str, dict[str, bytes]], access_key_id: str = "test-ak",
                 access_key_secret: str = "test-secret", quirks: Quirks = Quirks()):
        self.quirks = quirks
        self.objects = {
            bucket: {key: (data, datetime.now(UTC).replace(microsecond=0))
                     for key, data in contents.items()}
            for bucket, contents in buckets.items()
        }
        self.credentials = {access_key_id: access_key_secret}
        self.failures: dict[str, list[int]] = {}  # key -> statuses to answer first
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                server._handle(self, "GET")

            def do_HEAD(self):  # noqa: N802
                server._handle(self, "HEAD")

            def do_PUT(self):  # noqa: N802
                server._handle(self, "PUT")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def put(self, bucket: str, key: str, data: bytes) -> None:
        with self.lock:
            self.objects[bucket][key] = (data, datetime.now(UTC).replace(microsecond=0))

    def delete(self, bucket: str, key: str) -> None:
        with self.lock:
            del self.objects[bucket][key]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- responses ---------------------------------------------------------------------------
    @staticmethod
    def _send(handler, status, body: bytes = b"", headers=None, method="GET"):
        handler.send_response(status)
        request_id = uuid.uuid4().hex.upper()[:24]
        handler.send_header("x-oss-request-id", request_id)
        handler.send_header("Server", "AliyunOSS")
        handler.send_header("Date", format_datetime(datetime.now(UTC), usegmt=True))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(body)

    def _error(self, handler, method, status, code, message, **extra):
        fields = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in extra.items())
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
            f"<Code>{code}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{uuid.uuid4().hex.upper()[:24]}</RequestId>"
            f"<HostId>127.0.0.1</HostId>{fields}</Error>"
        ).encode()
        self._send(handler, status, body, {"Content-Type": "application/xml"}, method)

    def _put(self, handler, bucket: str, key: str, payload: bytes) -> None:
        sent_md5 = handler.headers.get("Content-MD5")
        if sent_md5 and sent_md5 != base64.b64encode(hashlib.md5(payload).digest()).decode():
            return self._error(handler, "PUT", 400, "InvalidDigest",
                               "The Content-MD5 you specified is not valid.")
        if not key:
            return self._error(handler, "PUT", 400, "InvalidObjectName", "empty object key")
        self.put(bucket, key, payload)
        self._send(handler, 200, b"", {
            "ETag": f'"{hashlib.md5(payload).hexdigest().upper()}"',
            "x-oss-hash-crc64ecma": str(crc64_ecma(payload)),
        }, "PUT")

    # -- signature ---------------------------------------------------------------------------
    def _check_signature(self, handler, method, bucket, key, params) -> str | None:
        date = handler.headers.get("Date")
        authorization = handler.headers.get("Authorization") or ""
        if not authorization.startswith("OSS ") or ":" not in authorization:
            return "AccessDenied"
        access_key_id, _, signature = authorization[4:].partition(":")
        secret = self.credentials.get(access_key_id)
        if secret is None:
            return "InvalidAccessKeyId"
        try:
            sent = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return "AccessDenied"
        if abs((datetime.now(UTC) - sent).total_seconds()) > MAX_SKEW_SECONDS:
            return "RequestTimeTooSkewed"
        oss_headers = sorted(
            (k.lower(), v.strip()) for k, v in handler.headers.items()
            if k.lower().startswith("x-oss-")
        )
        canonical_headers = "".join(f"{k}:{v}\n" for k, v in oss_headers)
        subresources = sorted((k, v) for k, v in params if k in SIGNED_SUBRESOURCES)
        resource = f"/{bucket}/{key}" if bucket else "/"
        if subresources:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subresources)
        string_to_sign = "\n".join([
            method, handler.headers.get("Content-MD5", ""),
            handler.headers.get("Content-Type", ""), date, canonical_headers + resource,
        ])
        expected = base64.b64encode(
            hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
        ).decode()
        return None if hmac.compare_digest(expected, signature) else "SignatureDoesNotMatch"

    # -- operations --------------------------------------------------------------------------
    def _handle(self, handler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        payload = handler.rfile.read(length) if length else b""
        url = urlsplit(handler.path)
        params = parse_qsl(url.query, keep_blank_values=True)
        bucket, _, raw_key = url.path.lstrip("/").partition("/")
        key = unquote(raw_key)
        with self.lock:
            self.requests.append({"method": method, "bucket": bucket, "key": key,
                                  "params": dict(params)})
        problem = self._check_signature(handler, method, bucket, key, params)
        if problem:
            status = 403
            messages = {
                "SignatureDoesNotMatch": "The request signature we calculated does not match "
                                         "the signature you provided.",
                "InvalidAccessKeyId": "The OSS Access Key Id you provided does not exist.",
                "RequestTimeTooSkewed": "The difference between the request time and the "
                                        "current time is too large.",
                "AccessDenied": "Authorization header is missing or invalid.",
            }
            return self._error(handler, method, status, problem, messages[problem])
        if bucket not in self.objects:
            return self._error(handler, method, 404, "NoSuchBucket",
                               "The specified bucket does not exist.", BucketName=bucket)
        with self.lock:
            pending = self.failures.get(key)
            injected = pending.pop(0) if pending else None
        if injected:
            return self._error(handler, method, injected, "ServiceUnavailable" if injected == 503
                               else "InternalError", "Please try again.")
        if method == "PUT":
            return self._put(handler, bucket, key, payload)
        if not key:
            if dict(params).get("list-type") != "2":
                return self._error(handler, method, 400, "InvalidArgument",
                                   "only ListObjectsV2 (list-type=2) is served here")
            return self._list(handler, bucket, dict(params))
        with self.lock:
            found = self.objects[bucket].get(key)
        if found is None:
            return self._error(handler, method, 404, "NoSuchKey",
                               "The specified key does not exist.", Key=key)
        data, modified = found
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data)),
            "ETag": self._etag(data, "HEAD" if method == "HEAD" else "GET"),
            "Last-Modified": format_datetime(modified, usegmt=True),
            "x-oss-object-type": "Normal",
            "x-oss-storage-class": "Standard",
            "x-oss-hash-crc64ecma": str(crc64_ecma(data)),
        }
        self._send(handler, 200, data, headers, method)

    def _etag(self, data: bytes, where: str) -> str:
        digest = hashlib.md5(data).hexdigest()
        if not self.quirks.loose_etags:
            return f'"{digest.upper()}"'
        return {"LIST": digest.upper(), "HEAD": digest, "GET": f'"{digest}"'}[where]

    def _matches(self, key: str, prefix: str) -> bool:
        if self.quirks.loose_prefix and prefix:
            return key.find(prefix) in (0, 1)
        return key.startswith(prefix)

    def _list(self, handler, bucket: str, params: dict) -> None:
        prefix = params.get("prefix", "")
        try:
            max_keys = int(params.get("max-keys", "100"))
        except ValueError:
            return self._error(handler, "GET", 400, "InvalidArgument", "max-keys is not a number")
        if self.quirks.cap_max_keys:
            max_keys = min(max_keys, 1000)
        if not 0 < max_keys <= 1000:
            return self._error(handler, "GET", 400, "InvalidArgument",
                               "max-keys must be between 1 and 1000")
        encode = params.get("encoding-type") == "url"
        # start-after applies to the first page; later pages continue from their token.
        after = "" if self.quirks.v1_listing else params.get("start-after", "")
        if params.get("continuation-token") and not self.quirks.v1_listing:
            try:
                after = base64.urlsafe_b64decode(params["continuation-token"]).decode()
            except ValueError:
                return self._error(handler, "GET", 400, "InvalidArgument",
                                   "invalid continuation token")
        with self.lock:
            keys = [k for k in self.objects[bucket] if self._matches(k, prefix) and k > after]
            if not self.quirks.storage_order:
                keys.sort()
            page = keys[:max_keys]
            entries = [(k, *self.objects[bucket][k]) for k in page]
        truncated = len(keys) > max_keys

        def enc(value: str) -> str:
            # A key held as surrogate-escaped bytes (not UTF-8) goes out as its raw bytes.
            return escape(quote(value, safe="/", errors="surrogateescape") if encode
                          else value)

        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult>',
            f"<Name>{escape(bucket)}</Name><Prefix>{enc(prefix)}</Prefix>",
            f"<MaxKeys>{1000 if self.quirks.v1_listing else max_keys}</MaxKeys>"
            "<Delimiter></Delimiter>",
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
        ]
        if not self.quirks.v1_listing:
            parts.append(f"<KeyCount>{len(entries)}</KeyCount>")
        if encode:
            parts.append("<EncodingType>url</EncodingType>")
        if truncated and not self.quirks.v1_listing:
            token = base64.urlsafe_b64encode(page[-1].encode()).decode()
            parts.append(f"<NextContinuationToken>{enc(token)}</NextContinuationToken>")
        for key, data, modified in entries:
            parts.append(
                f"<Contents><Key>{enc(key)}</Key>"
                f"<LastModified>{modified.strftime('%Y-%m-%dT%H:%M:%S.000Z')}</LastModified>"
                f"<ETag>{escape(self._etag(data, 'LIST'))}</ETag>"
                f"<Type>Normal</Type><Size>{len(data)}</Size>"
                "<StorageClass>Standard</StorageClass></Contents>"
            )
        parts.append("</ListBucketResult>")
        self._send(handler, 200, "".join(parts).encode(), {"Content-Type": "application/xml"})
