"""PAI-EAS deployment through the official SDK against a local control plane that checks
signatures and keeps service versions: rolling update, failed rollout rolled back, explicit
rollback, credential errors."""

from __future__ import annotations

import json

import pytest
from servers.eas_control_plane import EasControlPlane

from ragrec.cloud.eas import DeployError, EasDeployer
from ragrec.config import EasSettings

CLUSTER, SERVICE = "cn-hangzhou", "kb-embed"
INITIAL = {"name": SERVICE, "model_path": "oss://models/kb-minilm/versions/v1/",
           "processor": "ragrec", "metadata": {"instance": 1, "cpu": 2, "memory": 4000},
           "labels": {"ragrec_model_version": "kb-minilm-v1"}}


@pytest.fixture
def plane():
    with EasControlPlane(rollout_polls=2) as server:
        server.add_service(CLUSTER, SERVICE, INITIAL)
        yield server


def _deployer(plane, secret="eas-secret", key="eas-ak") -> EasDeployer:
    settings = EasSettings(endpoint=plane.endpoint, access_key_id=key, access_key_secret=secret,
                           region_id=CLUSTER, cluster_id=CLUSTER, service_name=SERVICE,
                           protocol="http")
    return EasDeployer(settings, poll_seconds=0.05, timeout_seconds=10)


def test_deploy_rolls_out_a_new_model_version(plane):
    deployer = _deployer(plane)
    before, after = deployer.deploy("oss://models/kb-minilm/versions/v2/", "kb-minilm-v2")
    assert before.current_version == 1 and before.model_version == "kb-minilm-v1"
    assert after.status == "Running" and after.current_version == 2
    assert after.model_version == "kb-minilm-v2"
    assert after.config["model_path"] == "oss://models/kb-minilm/versions/v2/"
    assert after.config["metadata"] == INITIAL["metadata"]  # the rest of the config is kept
    update = next(c for c in plane.calls if c["action"] == "UpdateService")
    assert json.loads(update["body"])["labels"]["ragrec_model_version"] == "kb-minilm-v2"


def test_failed_rollout_is_rolled_back_and_raised(plane):
    deployer = _deployer(plane)
    with pytest.raises(DeployError, match="Failed"):
        deployer.deploy("oss://models/kb-minilm/versions/broken/", "kb-minilm-broken")
    state = deployer.describe()
    assert state.status == "Running" and state.current_version == 1
    assert state.model_version == "kb-minilm-v1"
    assert [c["action"] for c in plane.calls].count("UpdateServiceVersion") == 1


def test_explicit_rollback_to_an_earlier_version(plane):
    deployer = _deployer(plane)
    deployer.deploy("oss://models/kb-minilm/versions/v2/", "kb-minilm-v2")
    state = deployer.rollback(1)
    assert state.current_version == 1 and state.model_version == "kb-minilm-v1"
    with pytest.raises(DeployError, match="InvalidParameter"):
        deployer.rollback(9)


@pytest.mark.parametrize("key, secret, code", [
    ("eas-ak", "wrong-secret", "SignatureDoesNotMatch"),
    ("nobody", "eas-secret", "InvalidAccessKeyId.NotFound"),
])
def test_credential_errors_are_clear(plane, key, secret, code):
    with pytest.raises(DeployError, match=code):
        _deployer(plane, secret=secret, key=key).describe()
    assert not any(c["action"] == "UpdateService" for c in plane.calls)


def test_unknown_service_and_missing_settings(plane):
    settings = EasSettings(endpoint=plane.endpoint, access_key_id="eas-ak",
                           access_key_secret="eas-secret", cluster_id=CLUSTER,
                           service_name="nope", protocol="http")
    with pytest.raises(DeployError, match="ServiceNotFound"):
        EasDeployer(settings).describe()
    with pytest.raises(DeployError, match="endpoint, access_key_id"):
        EasDeployer(EasSettings(service_name="x", cluster_id="y"))


def test_settings_never_show_the_secret():
    settings = EasSettings.from_env({"EAS_ENDPOINT": "eas.example", "EAS_ACCESS_KEY_ID": "ak",
                                     "EAS_ACCESS_KEY_SECRET": "s3cr3t", "EAS_REGION_ID": "r1",
                                     "EAS_SERVICE_NAME": "svc"})
    assert settings.cluster_id == "r1" and "s3cr3t" not in repr(settings)
