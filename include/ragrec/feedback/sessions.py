"""The click log as sessions: one session per response (``trace_id``) that showed results
for a query - what it showed at which position, and which of those were clicked - read
from ``<alias>-events`` and cleaned before anything learns from it:

* junk queries (no letter or digit, or shorter than ``min_query_chars``) are dropped;
* bots - a user with more than ``bot_sessions_per_day`` sessions in one UTC day - are
  dropped whole;
* repeated queries collapse (case, spacing) into one query, written as most people wrote it;
* caps: a user's repeats of one query count ``max_sessions_per_user_query`` times (the
  earliest), and a session's first ``max_clicks_per_session`` clicks count, so one user or one
  session cannot dominate a query.

Each drop is counted in ``SessionLog.counts``. Positions are 1-based here (the events
carry them from 0, as the page numbers its results). Results are chunks, so a document can
be shown twice in one answer: it keeps its first place, and a click on either counts once.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

SEARCH_TYPES = ("impression", "click")


def events_index(alias: str) -> str:
    """Where the API logs ``alias``'s events (impressions, clicks, feedback, exploration)."""
    return f"{alias}-events"


@dataclass(frozen=True)
class SessionSettings:
    min_query_chars: int = 2
    bot_sessions_per_day: int = 500
    max_sessions_per_user_query: int = 3
    max_clicks_per_session: int = 3


@dataclass
class Session:
    trace_id: str
    query: str  # the collapsed query's key once cleaned (``query_key``)
    user_id: str
    ts: str  # ISO time of its first event
    shown: dict[int, str] = field(default_factory=dict)  # position (1-based) -> doc id
    clicked: list[int] = field(default_factory=list)  # positions, in the order clicked


@dataclass
class SessionLog:
    sessions: list[Session]
    texts: dict[str, str]  # query key -> the query as most sessions wrote it
    counts: dict[str, int]


def query_key(text: str) -> str:
    """One key for the ways people write the same query: Unicode-normalised, case-folded,
    spacing collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _is_junk(key: str, min_chars: int) -> bool:
    meaningful = [c for c in key if c.isalnum()]
    return len(meaningful) < min_chars


def sessions_from_events(events: Iterable[dict]) -> tuple[list[Session], dict[str, int]]:
    """Impressions and clicks joined by ``trace_id`` into sessions (a click whose
    impression was not logged counts as shown at its position). Events without a trace id,
    a query or a position cannot be placed and are counted, not used."""
    by_trace: dict[str, Session] = {}
    counts = Counter()
    clicks: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for event in events:
        kind = event.get("type")
        if kind not in SEARCH_TYPES:
            continue
        trace, query, position = event.get("trace_id"), event.get("query"), event.get("position")
        if not trace or not query or position is None:
            counts[f"{kind}s_unplaced"] += 1
            continue
        session = by_trace.get(trace)
        if session is None:
            session = by_trace[trace] = Session(trace, query, event.get("user_id") or "",
                                                event.get("ts") or "")
        elif (event.get("ts") or "") and (event.get("ts") < session.ts or not session.ts):
            session.ts = event["ts"]
        if kind == "impression":
            session.shown[int(position) + 1] = event["doc_id"]
        else:
            clicks[trace].append((event.get("ts") or "", int(position) + 1, event["doc_id"]))
    for trace, made in clicks.items():
        session = by_trace[trace]
        for _ts, position, doc_id in sorted(made):
            session.shown.setdefault(position, doc_id)
            if session.shown[position] == doc_id and position not in session.clicked:
                session.clicked.append(position)
    for session in by_trace.values():
        _one_place_per_document(session)
    sessions = sorted(by_trace.values(), key=lambda s: (s.ts, s.trace_id))
    counts["sessions_read"] = len(sessions)
    return sessions, dict(counts)


def _one_place_per_document(session: Session) -> None:
    """A document shown twice in one answer (two of its chunks) keeps its first place, and
    a click on either counts once, there: the document was examined where it first
    appeared, and one session is one vote for it."""
    first: dict[str, int] = {}
    for position in sorted(session.shown):
        first.setdefault(session.shown[position], position)
    clicked = []
    for position in session.clicked:
        place = first[session.shown[position]]
        if place not in clicked:
            clicked.append(place)
    session.shown = {p: d for d, p in first.items()}
    session.clicked = clicked


def _utc_day(stamp: str) -> str:
    """The UTC date of an ISO time (the events keep the offset they were sent with)."""
    try:
        return datetime.fromisoformat(stamp).astimezone(UTC).date().isoformat()
    except ValueError:
        return stamp[:10]


def drop_junk_and_bots(items: list, query_of, user_of, ts_of, settings: SessionSettings,
                       counts: Counter, names: tuple[str, str, str]) -> list:
    """``items`` (in time order) without those whose query is junk and without every item
    of a bot (a user with more than ``bot_sessions_per_day`` items in one UTC day); the
    drops counted under ``names`` (junk items, bot users, bot items)."""
    junk, bot_users, bot_items = names
    kept = []
    for item in items:
        if _is_junk(query_key(query_of(item)), settings.min_query_chars):
            counts[junk] += 1
        else:
            kept.append(item)
    per_day = Counter((user_of(i), _utc_day(ts_of(i))) for i in kept)
    bots = {user for (user, _day), n in per_day.items() if n > settings.bot_sessions_per_day}
    counts[bot_users] = len(bots)
    counts[bot_items] = sum(1 for i in kept if user_of(i) in bots)
    return [i for i in kept if user_of(i) not in bots]


def clean(sessions: list[Session], settings: SessionSettings = SessionSettings(),
          counts: dict[str, int] | None = None) -> SessionLog:
    """Junk queries and bots dropped, queries collapsed, caps applied (see the module)."""
    counts = Counter(counts or {})
    kept = drop_junk_and_bots(
        sessions, lambda s: s.query, lambda s: s.user_id, lambda s: s.ts, settings, counts,
        ("junk_query_sessions_dropped", "bot_users_dropped", "bot_sessions_dropped"))
    forms: dict[str, Counter] = defaultdict(Counter)
    repeats = Counter()
    capped = []
    for session in kept:  # in time order: a user's earliest sessions of a query count
        key = query_key(session.query)
        forms[key][session.query.strip()] += 1
        repeats[(session.user_id, key)] += 1
        if repeats[(session.user_id, key)] > settings.max_sessions_per_user_query:
            counts["repeat_sessions_capped"] += 1
            continue
        if len(session.clicked) > settings.max_clicks_per_session:
            counts["clicks_capped"] += len(session.clicked) - settings.max_clicks_per_session
            session.clicked = session.clicked[:settings.max_clicks_per_session]
        session.query = key
        capped.append(session)
    counts["sessions_kept"] = len(capped)
    counts["queries"] = len({s.query for s in capped})
    texts = {key: max(sorted(c), key=c.__getitem__) for key, c in forms.items()}
    return SessionLog(capped, texts, dict(counts))


def read_events(client, index: str) -> Iterable[dict]:
    """Every impression and click of the events index (none when it does not exist)."""
    from elasticsearch import helpers

    if not client.indices.exists(index=index):
        return []
    return (hit["_source"] for hit in helpers.scan(
        client, index=index, size=2000,
        query={"query": {"terms": {"type": list(SEARCH_TYPES)}}}))


def read_sessions(client, index: str, settings: SessionSettings = SessionSettings()
                  ) -> SessionLog:
    """The cleaned sessions of the events index ``index`` (``<alias>-events``)."""
    sessions, counts = sessions_from_events(read_events(client, index))
    return clean(sessions, settings, counts)
