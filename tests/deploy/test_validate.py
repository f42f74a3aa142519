"""deploy/validate.py: the strict schemas catch what a lenient check lets through.

Broken copies of the real manifests (a misspelled field, an integer in rayStartParams, a wrong apiVersion, ...)
must each fail with a message that names the file, the document and the field; the real files pass
(tests/deploy/test_kuberay.py). The vendored CRDs are the shared reference copies, unchanged.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from deploy import validate  # deploy/ is a plain folder of scripts, imported from the repo root

ROOT = Path(__file__).resolve().parents[2]
SHARED_CRDS = ROOT.parent / "shared" / "kuberay" / "crds"


def _doc(file: str, kind: str) -> dict:
    docs = [d for d in validate.load_documents(ROOT / "deploy" / "kuberay" / file) if d["kind"] == kind]
    assert len(docs) == 1, f"{file}: expected one {kind}"
    return copy.deepcopy(docs[0])


def _misspell_worker_field(d):
    d["spec"]["workerGroupSpecs"][0]["maxReplica"] = d["spec"]["workerGroupSpecs"][0].pop("maxReplicas")


def _integer_in_ray_start_params(d):
    d["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0


def _wrong_ray_api_version(d):
    d["apiVersion"] = "ray.io/v2"


def _misspell_container_field(d):
    d["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resorces"] = {}


def _bad_quantity(d):
    d["spec"]["workerGroupSpecs"][1]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "96 GB"


def _misspell_rayjob_field(d):
    d["spec"]["entrypointNumGPUs"] = d["spec"].pop("entrypointNumGpus")


def _string_where_rayjob_wants_a_boolean(d):
    d["spec"]["shutdownAfterJobFinishes"] = "false"


def _misspell_statefulset_field(d):
    d["spec"]["serviceNme"] = d["spec"].pop("serviceName")


def _wrong_core_api_version(d):
    d["apiVersion"] = "apps/v1beta3"


def _string_port(d):
    d["spec"]["ports"][0]["port"] = "6379"


def _misspell_network_policy_field(d):
    d["spec"]["ingress"][0]["from"][0]["podSelectr"] = d["spec"]["ingress"][0]["from"][0].pop("podSelector")


def _integer_in_config_map(d):
    d["data"]["PYTHONUNBUFFERED"] = 1


def _misspell_pvc_field(d):
    d["spec"]["accessMode"] = d["spec"].pop("accessModes")


BROKEN = [
    ("raycluster.yaml", "RayCluster", _misspell_worker_field, "spec.workerGroupSpecs.0", "'maxReplica' was unexpected"),
    ("raycluster.yaml", "RayCluster", _integer_in_ray_start_params, "rayStartParams.num-cpus",
     "0 is not of type 'string'"),
    ("raycluster.yaml", "RayCluster", _wrong_ray_api_version, "apiVersion 'ray.io/v2'", "serves"),
    ("raycluster.yaml", "RayCluster", _misspell_container_field, "containers.0", "'resorces' was unexpected"),
    ("raycluster.yaml", "RayCluster", _bad_quantity, "limits.memory", "does not match"),
    ("rayjob.yaml", "RayJob", _misspell_rayjob_field, "spec", "'entrypointNumGPUs' was unexpected"),
    ("rayjob.yaml", "RayJob", _string_where_rayjob_wants_a_boolean, "spec.shutdownAfterJobFinishes",
     "is not of type 'boolean'"),
    ("redis.yaml", "StatefulSet", _misspell_statefulset_field, "spec", "'serviceNme' was unexpected"),
    ("redis.yaml", "StatefulSet", _wrong_core_api_version, "apiVersion 'apps/v1beta3'", "not a Kubernetes"),
    ("redis.yaml", "Service", _string_port, "spec.ports.0.port", "is not of type 'integer'"),
    ("redis.yaml", "NetworkPolicy", _misspell_network_policy_field, "from.0", "'podSelectr' was unexpected"),
    ("storage.yaml", "ConfigMap", _integer_in_config_map, "data.PYTHONUNBUFFERED", "is not of type 'string'"),
    ("storage.yaml", "PersistentVolumeClaim", _misspell_pvc_field, "spec", "'accessMode' was unexpected"),
]


@pytest.mark.parametrize("file, kind, breakage, where, message", BROKEN, ids=[b[2].__name__.strip("_") for b in BROKEN])
def test_a_broken_copy_fails_naming_file_document_and_field(tmp_path, file, kind, breakage, where, message):
    doc = _doc(file, kind)
    assert validate.validate_document(doc) == [], f"the unbroken {kind} of {file} must pass"
    breakage(doc)
    broken = tmp_path / file
    broken.write_text(yaml.safe_dump(doc))
    problems = validate.validate_file(broken)
    assert problems, f"{breakage.__name__} passed validation"
    assert any(where in p and message in p for p in problems), problems
    assert all(str(broken) in p and f"({kind} {doc['metadata']['name']})" in p for p in problems), problems


def test_the_command_line_exits_nonzero_on_a_broken_file_and_zero_on_the_real_ones(tmp_path, capsys):
    doc = _doc("raycluster.yaml", "RayCluster")
    _integer_in_ray_start_params(doc)
    broken = tmp_path / "raycluster.yaml"
    broken.write_text(yaml.safe_dump(doc))
    assert validate.main([str(broken)]) == 1
    assert "num-cpus" in capsys.readouterr().err
    assert validate.main([]) == 0
    assert "0 problems" in capsys.readouterr().out


def test_an_unknown_kind_and_a_non_object_are_problems():
    assert "no vendored CRD" in validate.validate_document({"apiVersion": "ray.io/v1", "kind": "RayThing"})[0]
    assert "not a Kubernetes object" in validate.validate_document(["a", "list"])[0]
    assert "not a Kubernetes" in validate.validate_document({"apiVersion": "v1", "kind": "Pods"})[0]


def test_strict_closes_listed_objects_and_keeps_open_ones_open():
    schema = {"type": "object", "properties": {
        "listed": {"type": "object", "properties": {"a": {"type": "string"}}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {}}},
        "map": {"type": "object", "additionalProperties": {"type": "string"}},
        "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "quantity": {"x-kubernetes-int-or-string": True, "pattern": "^[0-9]+$"},
    }}
    out = validate.strict(schema)
    assert out["additionalProperties"] is False and out["properties"]["listed"]["additionalProperties"] is False
    assert "additionalProperties" not in out["properties"]["free"]
    assert out["properties"]["map"]["additionalProperties"] == {"type": "string"}
    assert out["properties"]["quantity"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert "x-kubernetes-int-or-string" not in out["properties"]["port"]
    assert "additionalProperties" not in schema["properties"]["listed"], "strict must not change its input"


@pytest.mark.skipif(not SHARED_CRDS.is_dir(), reason="no shared/kuberay/crds beside this checkout")
@pytest.mark.parametrize("name", ["ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml"])
def test_vendored_crds_are_the_shared_reference_copies_unchanged(name):
    vendored = ROOT / "deploy" / "kuberay" / "crds" / name
    assert vendored.read_bytes() == (SHARED_CRDS / name).read_bytes(), f"{vendored} differs from {SHARED_CRDS / name}"


def test_the_secrets_docs_deploy_md_creates_are_valid_and_a_broken_one_is_not():
    """No Secret is shipped (their values never enter the repo); the ones the guide's `kubectl create secret`
    lines make are checked as the objects kubectl would send, and a non-string value fails."""
    import re

    lines = re.findall(r"kubectl create secret generic (\S+) --from-literal=(\w+)=", (ROOT / "docs" / "deploy.md").read_text())
    assert {name for name, _ in lines} >= {"dreamer4-redis", "dreamer4-ray-token"}
    for name, key in lines:
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
                  "stringData": {key: "0123abcd"}}
        assert validate.validate_document(secret) == [], name
    broken = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "stringData": {"password": 1234}}
    assert "stringData.password" in validate.validate_document(broken)[0]
