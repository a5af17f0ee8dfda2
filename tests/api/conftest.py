"""What the API tests share: two model versions (v1 with a cross-encoder, v2 without), the
real model server serving v1, and the bundled sample documents indexed with v1 on the real
node."""

from __future__ import annotations

import uuid

import pytest
from servers.model_server_process import ModelServerProcess

MODEL_TOKEN, MODEL_ADMIN, API_TOKEN = "api-model-token", "api-model-admin", "api-token"


@pytest.fixture(scope="session")
def api_bundles(tmp_path_factory):
    from ragrec.embedding.in_process import base_model_dir
    from ragrec.models.reranker import init_cross_encoder
    from ragrec.models.store import write_bundle

    root = tmp_path_factory.mktemp("api-models")
    reranker = init_cross_encoder(base_model_dir(), root / "ce-init")
    v1 = write_bundle(root / "v1", "kb-minilm", "kb-minilm-v1", base_model_dir(), reranker)
    v2 = write_bundle(root / "v2", "kb-minilm", "kb-minilm-v2", base_model_dir(), None)
    return {"v1": v1, "v2": v2, "registry": (root / "registry").as_uri()}


@pytest.fixture(scope="session")
def api_model_server(api_bundles):
    with ModelServerProcess(str(api_bundles["v1"].root), MODEL_TOKEN, MODEL_ADMIN) as server:
        yield server


@pytest.fixture(scope="session")
def kb_alias(es, api_bundles):
    """The sample documents, indexed with model v1 (the version the server serves)."""
    from ragrec.chunking import ModelTokenizer
    from ragrec.embedding import encoder_for
    from ragrec.sources import open_source
    from ragrec.sources.samples import samples_dir
    from ragrec.sync import IngestOptions, Ingestor

    alias = f"ragrec-test-api-{uuid.uuid4().hex[:8]}"
    model_dir = api_bundles["v1"].embedder_dir
    Ingestor(es, encoder_for(model_dir), ModelTokenizer(model_dir),
             IngestOptions(show_progress=False)).ingest(open_source(str(samples_dir())), alias)
    yield alias
    for name in es.indices.get(index=f"{alias}*", allow_no_indices=True,
                               expand_wildcards="all"):
        es.indices.delete(index=name, ignore_unavailable=True)


def make_client(es, alias, server=None, registry=None, llm=None, min_support=0.3,
                **settings):
    from fastapi.testclient import TestClient

    from ragrec.api.app import create_app
    from ragrec.config import ApiSettings, RegistrySettings
    from ragrec.models.resolver import ModelResolver, interactive_endpoint

    endpoint = interactive_endpoint(server.predict_url, MODEL_TOKEN) if server else None
    registry = RegistrySettings(registry) if registry else None
    app = create_app(es, ModelResolver(endpoint, registry),
                     ApiSettings(index=alias, token=API_TOKEN, llm=llm,
                                 min_support=min_support, **settings))
    return TestClient(app, headers={"Authorization": f"Bearer {API_TOKEN}"})


@pytest.fixture
def api(es, kb_alias, api_model_server):
    with make_client(es, kb_alias, api_model_server) as client:
        yield client
