"""AIRec (Alibaba Cloud AI Recommendation) through its official SDK,
``alibabacloud-airec20201126``: push item documents and behaviours, point the ranking model
at ragrec's model endpoint.

The SDK's generated ``push_document`` sends no body (a gap in 1.0.x), so pushes go through
the same client's ``call_api`` with the SDK's own operation parameters (action
``PushDocument``, version 2020-11-26, ROA, AK auth): the SDK still signs and sends them.
Service rules enforced before sending: at most 800 documents and 1 MB per request, 10 KB per
document. What the documents hold - ragrec's items and events in AIRec's shape - is
``ragrec.recs.airec_documents``."""

from __future__ import annotations

import json
from collections.abc import Iterable

from ragrec.cloud.sdk_errors import sdk_call
from ragrec.config import AirecSettings

MAX_DOCS, MAX_REQUEST_BYTES, MAX_DOC_BYTES, MAX_FIELD_BYTES = 800, 1_000_000, 10_000, 5_000


class AirecError(RuntimeError):
    pass


def batches(documents: Iterable[dict]) -> Iterable[list[dict]]:
    """Requests within 800 documents and 1 MB; a document over 10 KB is an error."""
    batch, size = [], 2
    for doc in documents:
        encoded = len(json.dumps(doc, ensure_ascii=False).encode("utf-8"))
        if encoded > MAX_DOC_BYTES:
            raise AirecError(f"item {doc['fields'].get('item_id')} is {encoded} bytes, over "
                             f"AIRec's {MAX_DOC_BYTES}")
        if batch and (len(batch) == MAX_DOCS or size + encoded + 1 > MAX_REQUEST_BYTES):
            yield batch
            batch, size = [], 2
        batch.append(doc)
        size += encoded + 1
    if batch:
        yield batch


class AirecClient:
    def __init__(self, settings: AirecSettings):
        if not settings.configured:
            raise AirecError("AIRec settings missing: endpoint, instance id and AccessKey "
                             "(AIREC_* variables or the airec_default connection)")
        from alibabacloud_airec20201126.client import Client
        from alibabacloud_tea_openapi import models as open_api_models

        self.settings = settings
        self.client = Client(open_api_models.Config(
            access_key_id=settings.access_key_id, access_key_secret=settings.access_key_secret,
            security_token=settings.security_token, endpoint=settings.endpoint,
            region_id=settings.region_id, protocol=settings.protocol,
            read_timeout=30000, connect_timeout=10000))

    def _call(self, action: str, method: str, path: str, body) -> dict:
        from alibabacloud_tea_openapi import models as open_api_models
        from alibabacloud_tea_util import models as util_models

        params = open_api_models.Params(
            action=action, version="2020-11-26", protocol=self.settings.protocol.upper(),
            pathname=path, method=method, auth_type="AK", style="ROA", req_body_type="json",
            body_type="json")
        request = open_api_models.OpenApiRequest(headers={}, body=body)
        response = sdk_call(AirecError, f"AIRec {action}", lambda: self.client.call_api(
            params, request, util_models.RuntimeOptions(autoretry=True, max_attempts=3)))
        payload = response.get("body") or {}
        if isinstance(payload, dict) and payload.get("result") is False:
            raise AirecError(f"AIRec {action} rejected: {payload.get('code')}: "
                             f"{payload.get('message')}")
        return payload

    def push(self, documents: Iterable[dict], table: str = "item", sent=None) -> int:
        """Pushes in requests within the limits; ``sent(count)`` after each request, with
        the documents sent so far (a caller that records progress loses nothing when a later
        request fails)."""
        from alibabacloud_openapi_util.client import Client as Util

        path = (f"/v2/openapi/instances/{Util.get_encode_param(self.settings.instance_id)}"
                f"/tables/{Util.get_encode_param(table)}/actions/bulk")
        pushed = 0
        for batch in batches(documents):
            self._call("PushDocument", "POST", path, batch)
            pushed += len(batch)
            if sent is not None:
                sent(pushed)
        return pushed

    def point_ranker_at(self, ranker_url: str, model_version: str) -> dict:
        """The instance's custom ranking model calls ``ranker_url`` (the model endpoint's
        rerank route) and is labelled with the model version."""
        from alibabacloud_openapi_util.client import Client as Util

        if not self.settings.ranking_model_id:
            raise AirecError("no ranking model id (AIREC_RANKING_MODEL_ID or the connection's "
                             "extra 'ranking_model_id')")
        path = (f"/v2/openapi/instances/{Util.get_encode_param(self.settings.instance_id)}"
                f"/ranking-models/{Util.get_encode_param(self.settings.ranking_model_id)}")
        return self._call("ModifyRankingModel", "PUT", path, {"meta": {
            "type": "custom", "custom_ranker_url": ranker_url, "model_version": model_version}})
