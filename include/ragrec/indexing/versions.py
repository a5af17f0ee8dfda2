"""Physical index versions behind a read alias: create, swap atomically, prune.

Names: ``{alias}--v{UTC timestamp}``; the alias points at exactly one version (also its
write index). Readers only ever see the alias, so a rebuild never shows a half-built index.
"""

from __future__ import annotations

from datetime import UTC, datetime

from elasticsearch import Elasticsearch, NotFoundError

VERSION_MARK = "--v"


class IndexVersionError(RuntimeError):
    pass


def version_pattern(alias: str) -> str:
    return f"{alias}{VERSION_MARK}*"


def new_version_name(alias: str) -> str:
    return f"{alias}{VERSION_MARK}{datetime.now(UTC):%Y%m%d%H%M%S%f}"


def current_version(client: Elasticsearch, alias: str) -> str | None:
    """The physical index behind ``alias``, or None when the alias does not exist."""
    try:
        indices = list(client.indices.get_alias(name=alias))
    except NotFoundError:
        return None
    if len(indices) != 1:
        raise IndexVersionError(f"alias {alias!r} points at {len(indices)} indices: {indices}")
    return indices[0]


def list_versions(client: Elasticsearch, alias: str) -> list[str]:
    names = client.indices.get(index=version_pattern(alias), allow_no_indices=True,
                               expand_wildcards="open")
    return sorted(n for n in names if n.startswith(alias + VERSION_MARK))


def create_version(client: Elasticsearch, alias: str, body: dict) -> str:
    if client.indices.exists(index=alias) and current_version(client, alias) is None:
        raise IndexVersionError(
            f"{alias!r} is a concrete index, not an alias: ragrec needs the name free for "
            "its read alias (reindex it or choose another name)"
        )
    name = new_version_name(alias)
    client.indices.create(index=name, **body)
    return name


def require_allocated(client: Elasticsearch, index: str, wait: str = "30s") -> str:
    """The health of ``index`` once every primary shard is allocated (yellow or green),
    waiting up to ``wait``; refuses an index still red then (a primary lost with its node,
    no replica to promote): readers behind an alias must find every document."""
    health = client.options(ignore_status=408).cluster.health(
        index=index, wait_for_status="yellow", timeout=wait)
    status = health.get("status")
    if status not in ("green", "yellow"):
        raise IndexVersionError(
            f"{index} is {status}: {health.get('unassigned_shards', '?')} shard(s) "
            f"unassigned after {wait}, so no alias is moved to it (a node holding a primary "
            "left and no replica could take over)")
    return status


def point_alias(client: Elasticsearch, alias: str, new: str) -> str | None:
    """Atomically move ``alias`` to ``new`` - once every primary shard of ``new`` is
    allocated (``require_allocated``); returns the version it pointed at before."""
    require_allocated(client, new)
    old = current_version(client, alias)
    actions = []
    if old and old != new:
        actions.append({"remove": {"index": old, "alias": alias}})
    actions.append({"add": {"index": new, "alias": alias, "is_write_index": True}})
    client.indices.update_aliases(actions=actions)
    return old


def prune_versions(client: Elasticsearch, alias: str, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` versions (never the live one)."""
    live = current_version(client, alias)
    versions = list_versions(client, alias)
    doomed = [v for v in versions[: max(0, len(versions) - keep)] if v != live]
    for name in doomed:
        client.indices.delete(index=name, ignore_unavailable=True)
    return doomed


def drop_orphans(client: Elasticsearch, alias: str) -> list[str]:
    """Versions newer than the live one that never went live (a rebuild that crashed)."""
    live = current_version(client, alias)
    orphans = [v for v in list_versions(client, alias) if live is None or v > live]
    for name in orphans:
        client.indices.delete(index=name, ignore_unavailable=True)
    return orphans


def mapping_meta(client: Elasticsearch, index_or_alias: str) -> dict:
    """The whole ``_meta`` of one index's mapping (behind the alias): ``ragrec`` (what built
    it) and whatever the jobs that read it record there."""
    mappings = client.indices.get_mapping(index=index_or_alias)
    (body,) = mappings.values()
    return dict(body["mappings"].get("_meta") or {})


def put_mapping_meta(client: Elasticsearch, index: str, **values) -> dict:
    """Merges ``values`` into one index's ``_meta`` (Elasticsearch replaces ``_meta`` as a
    whole, so the other keys are carried over); returns the new ``_meta``."""
    meta = {**mapping_meta(client, index), **values}
    client.indices.put_mapping(index=index, meta=meta)
    return meta


def index_meta(client: Elasticsearch, index_or_alias: str) -> dict:
    """ragrec's ``_meta`` of the index (behind the alias): model version, dims, ..."""
    return mapping_meta(client, index_or_alias).get("ragrec", {})


def document_version_held(meta: dict) -> str | None:
    """Whose document encoder made the vectors an index holds (its ``index_meta``): the
    recorded ``document_version``, else its model version (indices from before the field)."""
    return meta.get("document_version") or meta.get("model_version")


def update_meta(client: Elasticsearch, index: str, **fields) -> dict:
    """Merges ``fields`` into ragrec's ``_meta`` of one physical index."""
    ragrec = {**index_meta(client, index), **fields}
    return put_mapping_meta(client, index, ragrec=ragrec)["ragrec"]
