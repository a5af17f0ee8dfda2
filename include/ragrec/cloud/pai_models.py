"""Registering a model version with Alibaba Cloud's model management (PAI AI Workspace,
official SDK ``alibabacloud-aiworkspace20210204``): the model is found by name in the
workspace (or created), then a version is added with the artifact URI, metrics and labels
(ragrec version, stage, base model, training-data hash).

Bailian's OpenAPI (``alibabacloud-bailian20231229``) manages knowledge bases, agents and
prompts; it has no call that registers a custom model, so the cloud-side registry of a
model version is PAI's, and Bailian/DashScope reach the served model through its
OpenAI-compatible endpoint.
"""

from __future__ import annotations

import json

from ragrec.cloud.sdk_errors import sdk_call
from ragrec.config import PaiSettings
from ragrec.models.store import ModelLayout


class PaiRegistryError(RuntimeError):
    pass


class PaiModelRegistry:
    def __init__(self, settings: PaiSettings):
        missing = [n for n in ("endpoint", "access_key_id", "access_key_secret", "workspace_id")
                   if not getattr(settings, n)]
        if missing:
            raise PaiRegistryError(f"PAI settings missing: {', '.join(missing)}")
        from alibabacloud_aiworkspace20210204.client import Client
        from alibabacloud_tea_openapi import models as open_api_models

        self.settings = settings
        self.client = Client(open_api_models.Config(
            access_key_id=settings.access_key_id, access_key_secret=settings.access_key_secret,
            endpoint=settings.endpoint, region_id=settings.region_id,
            protocol=settings.protocol, read_timeout=30000, connect_timeout=10000))

    def _call(self, what: str, function):
        return sdk_call(PaiRegistryError, f"PAI {what}", function)

    def model_id(self, name: str, create: bool = True, description: str = "") -> str | None:
        from alibabacloud_aiworkspace20210204 import models

        listed = self._call("ListModels", lambda: self.client.list_models(
            models.ListModelsRequest(model_name=name, workspace_id=self.settings.workspace_id,
                                     page_size=50))).body
        for model in listed.models or []:
            if model.model_name == name:
                return model.model_id
        if not create:
            return None
        created = self._call("CreateModel", lambda: self.client.create_model(
            models.CreateModelRequest(
                model_name=name, workspace_id=self.settings.workspace_id,
                model_description=description or f"ragrec model {name}",
                labels=[models.Label(key="managed-by", value="ragrec")]))).body
        return created.model_id

    def register_version(self, layout: ModelLayout, uri: str, stage: str | None = None
                         ) -> dict:
        from alibabacloud_aiworkspace20210204 import models

        lineage = layout.card.get("lineage", {})
        embedder = lineage.get("embedder", {})
        labels = {"ragrec_version": layout.version,
                  "base_model": str(embedder.get("base_model", "")),
                  "data_sha256": str(embedder.get("data", {}).get("sha256", ""))[:16],
                  "reranker": str(layout.reranker_dir is not None).lower()}
        if stage:
            labels["stage"] = stage
        model_id = self.model_id(layout.name)
        request = models.CreateModelVersionRequest(
            version_name=layout.version, uri=uri, format_type="SavedModel",
            framework_type="PyTorch", source_type="TrainingService",
            version_description=f"ragrec {layout.version}",
            labels=[models.Label(key=k, value=v) for k, v in labels.items() if v],
            metrics=layout.card.get("training", {}))
        created = self._call("CreateModelVersion", lambda: self.client.create_model_version(
            model_id, request)).body
        return {"model_id": model_id, "version_name": created.version_name, "uri": uri,
                "labels": labels, "metrics": json.loads(json.dumps(request.metrics))}
