"""Conversations in Elasticsearch, ``<alias>-conversations``: one document per turn
(question, standalone query, passages, answer, sentence citations, model version, timings).
A turn is written without waiting for a refresh and read back by id (real-time), so a
follow-up sees the turn before it at once and a turn costs no refresh wait.

A conversation belongs to the caller that started it: its ``owner`` is a hash of the
caller's identity (the API's bearer token and the ``X-Ragrec-User`` header a sign-on proxy
sets); another caller asking for it is told it does not exist. Turns expire after the
retention period: reads skip expired turns, and a write deletes expired turns (up to
1,000 at a time, by id: no ``_delete_by_query``, which needs Elasticsearch's reindex module)
at most once an hour per process; a failed clean-up is logged, never the caller's error."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

from elasticsearch import ApiError, ConflictError, Elasticsearch, TransportError, helpers

from ragrec.es_client import create_index_once
from ragrec.indexing.mapping import index_settings

log = logging.getLogger("ragrec.api")

_MAPPINGS = {"dynamic": "strict", "properties": {
    "conversation_id": {"type": "keyword"}, "owner": {"type": "keyword"},
    "turn": {"type": "integer"}, "ts": {"type": "date"}, "expires_at": {"type": "date"},
    "question": {"type": "text"}, "standalone_query": {"type": "text"},
    "answer": {"type": "text"}, "mode": {"type": "keyword"},
    "model_version": {"type": "keyword"},
    "sentences": {"type": "object", "enabled": False},
    "citations": {"type": "object", "enabled": False},
    "passages": {"type": "object", "enabled": False},
    "timings_ms": {"type": "object", "enabled": False}}}
MAX_TURNS = 50
PURGE_EVERY_S = 3600.0


class ConversationFull(LookupError):
    """Every turn id of the conversation is taken."""


class UnknownConversation(LookupError):
    pass


def conversations_index(alias: str) -> str:
    return f"{alias}-conversations"


def owner_key(token: str | None, user: str | None) -> str:
    return hashlib.sha256(f"{token or ''}\0{user or ''}".encode()).hexdigest()


def new_conversation_id() -> str:
    return secrets.token_urlsafe(16)


class ConversationStore:
    def __init__(self, client: Elasticsearch, alias: str, retention_days: float = 30.0):
        self.client = client
        self.index = conversations_index(alias)
        self.retention = timedelta(days=retention_days)
        self._ready = False
        self._purged: float | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            create_index_once(self.client, self.index, mappings=_MAPPINGS,
                              settings=index_settings())
            self._ready = True

    def turns(self, conversation_id: str, owner: str) -> list[dict]:
        """The conversation's live turns, oldest first (``UnknownConversation`` when there
        are none for this owner). Read by id (turn ids are ``<conversation>:<n>``), which is
        real-time: a turn just written is seen without waiting for a refresh."""
        self._ensure()
        now = datetime.now(UTC)
        response = self.client.mget(
            index=self.index, ids=[f"{conversation_id}:{n}" for n in range(1, MAX_TURNS + 1)])
        turns = [d["_source"] for d in response["docs"] if d.get("found")]
        turns = sorted((t for t in turns if t.get("owner") == owner and "question" in t
                        and datetime.fromisoformat(t["expires_at"]) > now),
                       key=lambda t: t["turn"])
        if not turns:
            raise UnknownConversation(f"no conversation {conversation_id!r}")
        return [{k: v for k, v in t.items() if k != "owner"} for t in turns]

    def reserve(self, conversation_id: str, owner: str, after: int) -> int:
        """The next free turn id above ``after`` (the newest live turn), taken at once with a
        placeholder - a turn without a question, which reads skip (``create``: two follow-ups
        sent together get two ids, and an id whose older turns expired is never the newest
        live one's). ``append`` fills it."""
        self._ensure()
        now = datetime.now(UTC)
        for turn in range(after + 1, MAX_TURNS + 1):
            try:
                self.client.create(index=self.index, id=f"{conversation_id}:{turn}", document={
                    "conversation_id": conversation_id, "owner": owner, "turn": turn,
                    "ts": now.isoformat(),
                    "expires_at": (now + self.retention).isoformat()})
                return turn
            except ConflictError:
                continue
        raise ConversationFull(f"conversation {conversation_id!r} has {MAX_TURNS} turns: "
                               "start a new one")

    def append(self, conversation_id: str, owner: str, turn: int, record: dict) -> dict:
        """Stores turn ``turn`` (over its placeholder); the document id makes a retried
        request overwrite, not duplicate, the turn."""
        self._ensure()
        now = datetime.now(UTC)
        document = {**record, "conversation_id": conversation_id, "owner": owner,
                    "turn": turn, "ts": now.isoformat(),
                    "expires_at": (now + self.retention).isoformat()}
        self.client.index(index=self.index, id=f"{conversation_id}:{turn}", document=document)
        self._maybe_purge()
        return document

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if self._purged is not None and now - self._purged < PURGE_EVERY_S:
            return
        self._purged = now
        try:
            self.client.indices.refresh(index=self.index)  # turns are written unrefreshed
            expired = self.client.search(
                index=self.index, size=1000, source=False,
                query={"range": {"expires_at": {"lte": datetime.now(UTC).isoformat()}}})
            actions = [{"_op_type": "delete", "_index": self.index, "_id": h["_id"]}
                       for h in expired["hits"]["hits"]]
            if actions:
                helpers.bulk(self.client, actions, raise_on_error=False, refresh=True)
        except (ApiError, TransportError) as exc:
            log.warning("expired conversation turns not deleted: %s", exc)
