"""Alibaba Cloud OSS source (``oss://bucket/prefix``) through the official ``oss2`` SDK.

Listing pages through ListObjectsV2; reads retry with exponential backoff on throttling,
server errors and network failures. Credentials and endpoint come from ``OssSettings``
(environment, or the Airflow Connection ``oss_default`` in DAGs).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

from ragrec.config import OssSettings
from ragrec.records import SourceObject
from ragrec.sources.base import SourceError, SourceUnavailable, bounded_read

log = logging.getLogger(__name__)
T = TypeVar("T")
PAGE_SIZE = 1000


def _retryable(exc: Exception) -> bool:
    import oss2

    if isinstance(exc, oss2.exceptions.RequestError):  # network level
        return True
    status = getattr(exc, "status", None)
    return isinstance(exc, oss2.exceptions.OssError) and (status == 429 or (status or 0) >= 500)


def normalise_etag(etag: str | None) -> str:
    """One form of an ETag, wherever it was read: listings and HEAD disagree on quotes and
    case on some servers (and a weak ``W/`` may lead), and a fingerprint that differs
    between them would re-index an unchanged document on every run."""
    value = (etag or "").strip()
    if value[:2] in ("W/", "w/"):
        value = value[2:]
    return value.strip('"').upper()


def _describe(exc: Exception) -> str:
    import oss2

    if isinstance(exc, oss2.exceptions.RequestError):  # no HTTP answer at all (status -2)
        cause = getattr(exc, "exception", None) or exc.__cause__
        reason = f"{type(cause).__name__}: {cause}" if cause else "the connection failed"
        return f"no answer from the endpoint ({reason[:200]})"
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    status = getattr(exc, "status", None)
    return f"{code or type(exc).__name__} (HTTP {status}): {message}" if status else str(exc)


class OssSource:
    def __init__(self, bucket_name: str, prefix: str, settings: OssSettings,
                 max_attempts: int = 5, backoff_seconds: float = 0.5, page_size: int = PAGE_SIZE):
        import oss2

        if not settings.endpoint:
            raise SourceError("OSS endpoint missing: set OSS_ENDPOINT or the oss_default "
                              "connection's host")
        if not (settings.access_key_id and settings.access_key_secret):
            raise SourceError("OSS credentials missing: set OSS_ACCESS_KEY_ID and "
                              "OSS_ACCESS_KEY_SECRET or the oss_default connection")
        if settings.security_token:
            auth = oss2.StsAuth(settings.access_key_id, settings.access_key_secret,
                                settings.security_token)
        else:
            auth = oss2.Auth(settings.access_key_id, settings.access_key_secret)
        # oss2 hands its "connect_timeout" to requests as the timeout: a (connect, read)
        # pair keeps a hung endpoint from holding each request for the connect timeout.
        self.bucket = oss2.Bucket(auth, settings.endpoint, bucket_name, connect_timeout=(
            settings.connect_timeout, settings.read_timeout))
        self.bucket_name = bucket_name
        # A prefix names a folder: keys are what follows its slash, in listings and stats.
        self.prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        self.endpoint = settings.endpoint
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.page_size = page_size
        self.key_ordered = settings.key_ordered
        self.uri = f"oss://{bucket_name}/{self.prefix}"

    @classmethod
    def from_uri(cls, uri: str, settings: OssSettings | None = None, **kwargs) -> OssSource:
        rest = uri.removeprefix("oss://")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise SourceError(f"{uri!r} names no bucket: use oss://bucket/prefix")
        return cls(bucket, prefix, settings or OssSettings.from_env(), **kwargs)

    def _with_retries(self, what: str, call: Callable[[], T]) -> T:
        import oss2

        for attempt in range(1, self.max_attempts + 1):
            try:
                return call()
            except oss2.exceptions.OssError as exc:
                if not _retryable(exc):
                    raise SourceError(f"OSS {what} failed: {_describe(exc)}") from exc
                if attempt == self.max_attempts:
                    raise SourceUnavailable(f"OSS {what} failed {attempt} times: "
                                            f"{_describe(exc)}") from None
                wait = self.backoff_seconds * 2 ** (attempt - 1) * (0.5 + random.random())
                log.warning("OSS %s failed (%s), retry %d/%d in %.1fs", what, _describe(exc),
                            attempt, self.max_attempts - 1, wait)
                time.sleep(wait)
            except SourceError:
                raise
            except Exception as exc:  # noqa: BLE001 - the SDK's parse errors are not OssError
                # A 200 that is not OSS XML (a proxy's page, another HTTP server): oss2
                # raises ParseError, RuntimeError, ... from its XML parsing.
                raise SourceError(
                    f"OSS {what} failed: {self.endpoint} did not answer in the OSS protocol "
                    f"({type(exc).__name__}: {str(exc)[:200]}); check OSS_ENDPOINT") from exc
        raise AssertionError("unreachable")

    def list(
        self, modified_since: datetime | None = None, modified_before: datetime | None = None,
        start_after: str | None = None,
    ) -> Iterator[SourceObject]:
        """ListObjectsV2 pages (OSS lists in UTF-8 key order; ``OSS_LISTS_IN_KEY_ORDER``
        false for a server that does not). A key repeated across pages is dropped by
        ``sources.ordering``, which every plan reads the listing through."""
        token = ""
        start = f"{self.prefix}{start_after}" if start_after is not None else ""
        while True:
            page = self._with_retries(
                f"listing of {self.uri}",
                lambda token=token: self.bucket.list_objects_v2(
                    prefix=self.prefix, continuation_token=token, max_keys=self.page_size,
                    encoding_type="url", start_after=start if not token else ""),
            )
            for info in page.object_list:
                if info.key.endswith("/"):
                    continue  # folder placeholder
                if not info.key.startswith(self.prefix):
                    # Some servers match prefixes loosely; such a key would get a wrong id.
                    log.warning("OSS listing of %s returned %r, outside the prefix: skipped",
                                self.uri, info.key)
                    continue
                modified = datetime.fromtimestamp(info.last_modified, UTC)
                if modified_since and modified < modified_since:
                    continue
                if modified_before and modified >= modified_before:
                    continue
                yield SourceObject(
                    uri=f"oss://{self.bucket_name}/{info.key}",
                    key=info.key[len(self.prefix):], size=info.size,
                    fingerprint=normalise_etag(info.etag), last_modified=modified,
                )
            if not page.is_truncated:
                return
            next_token = page.next_continuation_token
            if not next_token or next_token == token:
                raise SourceError(
                    f"OSS listing of {self.uri} is truncated but the server gave no new "
                    f"continuation token ({next_token!r}): {self.endpoint} does not page "
                    "ListObjectsV2 as OSS does, so the listing would be incomplete")
            token = next_token

    def _object_key(self, obj: SourceObject) -> str:
        return obj.uri.removeprefix(f"oss://{self.bucket_name}/")

    def read(self, obj: SourceObject, max_bytes: int | None = None) -> bytes:
        key = self._object_key(obj)

        def get() -> bytes:
            stream = self.bucket.get_object(key)
            try:
                return bounded_read(stream, max_bytes)
            finally:
                stream.close()

        return self._with_retries(f"read of {obj.uri}", get)

    def stat(self, key: str) -> SourceObject | None:
        import oss2

        full_key = f"{self.prefix}{key}"

        def head():
            try:
                return self.bucket.head_object(full_key)
            except oss2.exceptions.NotFound:
                return None

        meta = self._with_retries(f"head of oss://{self.bucket_name}/{full_key}", head)
        if meta is None:
            return None
        return SourceObject(
            uri=f"oss://{self.bucket_name}/{full_key}", key=key, size=meta.content_length,
            fingerprint=normalise_etag(meta.etag),
            last_modified=datetime.fromtimestamp(meta.last_modified, UTC),
        )
