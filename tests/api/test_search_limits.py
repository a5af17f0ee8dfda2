"""Request fields stop where Elasticsearch does (``api/es_limits.py``): the value at each limit
is searched, one past it is a 422 naming the field - and the real node is asked directly
that it refuses that value, so the limit is neither looser than ES (a 502) nor stricter than
it needs to be. Also: the same classes of bug in /events and /recommend, and strict JSON
types (``"stream": 0`` is not a boolean)."""

from __future__ import annotations

import pytest
from elasticsearch import ApiError

from ragrec.api.es_limits import INTEGER_MAX, MAX_PREFIX_BYTES, MAX_TERM_BYTES, MAX_TERMS

# (filters at the limit, filters one past it, the ES query that past value makes, what the
# 422 says)
LIMITS = {
    "page": ({"page": INTEGER_MAX}, {"page": 100000000000000000000}, None, "page"),
    "offset": ({"modified_after": "2024-01-01T00:00:00+18:00"},
               {"modified_after": "2024-01-01T00:00:00+18:01"},
               {"range": {"last_modified": {"gte": "2024-01-01T00:00:00+18:01"}}},
               "beyond +-18:00"),
    "negative offset": ({"modified_before": "2024-01-01T00:00:00-18:00"},
                        {"modified_before": "2024-01-01T00:00:00-23:59"},
                        {"range": {"last_modified": {"lt": "2024-01-01T00:00:00-23:59"}}},
                        "beyond +-18:00"),
    "prefix": ({"source_prefix": "a" * MAX_PREFIX_BYTES},
               {"source_prefix": "a" * (MAX_PREFIX_BYTES + 1)},
               {"prefix": {"source_uri": "a" * (MAX_PREFIX_BYTES + 1)}}, "source_prefix"),
    # a prefix is counted in UTF-8 bytes: 500 two-byte characters fit, 501 do not
    "prefix bytes": ({"source_prefix": "é" * 500}, {"source_prefix": "é" * 501},
                     {"prefix": {"source_uri": "é" * 501}}, "1002 UTF-8 bytes"),
    "terms": ({"doc_id": [""] * MAX_TERMS}, {"doc_id": [""] * (MAX_TERMS + 1)},
              {"terms": {"doc_id": [""] * (MAX_TERMS + 1)}}, "doc_id"),
    "title terms": ({"title_path": [""] * MAX_TERMS}, {"title_path": [""] * (MAX_TERMS + 1)},
                    {"terms": {"title_path": [""] * (MAX_TERMS + 1)}}, "title_path"),
    "term length": ({"doc_id": ["x" * MAX_TERM_BYTES]}, {"doc_id": ["é" * 16_384]},
                    {"terms": {"doc_id": ["é" * 16_384]}}, "32768 UTF-8 bytes"),
}


@pytest.mark.parametrize("name", LIMITS)
def test_search_filters_stop_where_elasticsearch_does(api, es, kb_alias, name):
    at_limit, past, es_query, words = LIMITS[name]
    fine = api.post("/search", json={"query": "vpn", "mode": "bm25", "filters": at_limit})
    assert fine.status_code == 200, fine.text
    refused = api.post("/search", json={"query": "vpn", "filters": past})
    assert refused.status_code == 422, refused.text
    assert words in refused.json()["error"]["message"]
    if es_query is not None:  # ES itself refuses the value one past the limit
        with pytest.raises(ApiError) as refusal:
            es.search(index=kb_alias, query=es_query)
        assert refusal.value.meta.status == 400


def test_a_page_past_64_bits_is_a_422_not_a_500(api):
    """The tester's repro: the number could not even be serialised for ES."""
    response = api.post("/search", json={"query": "vpn", "filters": {
        "page": 100000000000000000000}})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("filters.page: ")


def test_events_refuse_times_elasticsearch_cannot_store(api, es, kb_alias):
    from ragrec.recs.events import events_index

    event = {"user_id": "limits-user", "doc_id": "vpn-access.md", "type": "click"}
    stored = api.post("/events", json={"events": [{**event, "ts": "2024-01-01T00:00:00-18:00"}]})
    assert stored.status_code == 200 and stored.json() == {"stored": 1}, stored.text
    for ts in ("2024-01-01T00:00:00+18:30", "2024-01-01T00:00:00-23:00", 1714000000):
        refused = api.post("/events", json={"events": [{**event, "ts": ts}]})
        assert refused.status_code == 422, (ts, refused.text)
        assert refused.json()["error"]["message"].startswith("events.0.ts: ")
    with pytest.raises(ApiError):  # what the +18:30 event would have met (was a 500)
        es.index(index=events_index(kb_alias), refresh=True,
                 document={**event, "ts": "2024-01-01T00:00:00+18:30"})


def test_lone_surrogates_are_a_422_not_a_500(api):
    """JSON's "\\ud800" gives Python a string no serialiser can write back (to ES, or in the
    answer that echoes the query)."""
    for path, body in [("/search", b'{"query": "vpn \\ud800"}'),
                       ("/ask", b'{"question": "vpn", "filters": {"doc_id": ["\\udfff"]}}'),
                       ("/events", b'{"events": [{"user_id": "\\ud800", "doc_id": "d", '
                                   b'"type": "click"}]}')]:
        response = api.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (path, response.text)
        assert "surrogate" in response.json()["error"]["message"]
    paired = api.post("/search", content=b'{"query": "vpn \\ud83d\\ude00"}',
                      headers={"Content-Type": "application/json"})
    assert paired.status_code == 200, paired.text  # an escaped emoji is valid Unicode


@pytest.mark.parametrize("path, body, field", [
    ("/ask", {"question": "vpn", "stream": 0}, "stream"),
    ("/ask", {"question": "vpn", "rerank": "true"}, "rerank"),
    ("/ask", {"question": "vpn", "k": "5"}, "k"),
    ("/search", {"query": "vpn", "highlight": 1}, "highlight"),
    ("/search", {"query": "vpn", "rerank": "yes"}, "rerank"),
    ("/search", {"query": "vpn", "k": 5.5}, "k"),
    ("/search", {"query": "vpn", "rerank_top": "8"}, "rerank_top"),
    ("/search", {"query": "vpn", "dense_weight": "0.3"}, "dense_weight"),
    ("/search", {"query": "vpn", "filters": {"page": "3"}}, "filters.page"),
    ("/search", {"query": "vpn", "filters": {"modified_after": 0}}, "filters.modified_after"),
])
def test_json_fields_are_strict(api, path, body, field):
    response = api.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(f"{field}: ")


def test_query_string_values_are_still_parsed(api):
    """?rerank=true and ?k=3 are text by nature: the GET forms keep parsing them."""
    response = api.get("/search", params={"q": "vpn", "rerank": "true", "k": "3"})
    assert response.status_code == 200, response.text
    assert response.json()["reranked"] is True and len(response.json()["hits"]) == 3
    assert api.get("/search", params={"q": "vpn", "rerank": "maybe"}).status_code == 422


@pytest.mark.parametrize("params, words", [
    ({"q": " "}, "q: "),  # blank once stripped: was a pydantic error inside the handler
    ({"q": "\x1c"}, "q: "),  # whitespace to Python, not to the schema's \S
    ({"q": "vpn", "doc_id": ["x"] * 3, "k": 0}, "k: "),
])
def test_the_query_string_form_validates_like_the_body(api, params, words):
    response = api.get("/search", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(words)


def test_recommendation_paths_are_validated(api):
    user = api.get("/recommend/user/" + "u" * 201)
    assert user.status_code == 422 and "user_id" in user.json()["error"]["message"]
    assert api.get("/recommend/item/vpn-access.md", params={"k": 51}).status_code == 422
