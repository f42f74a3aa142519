"""Offline validation of the Kubernetes manifests in deploy/kuberay/, without a cluster.

    python deploy/validate.py [FILE.yaml ...]     # default: every deploy/kuberay/*.yaml; exit 1 on a problem
    problems = validate_file(Path("deploy/kuberay/raycluster.yaml"))   # [] when valid

Custom resources (ray.io) are checked against the KubeRay v1 CRD schemas vendored in deploy/kuberay/crds/,
made strict: every object that lists `properties` rejects unknown fields (`additionalProperties: false`), and
`x-kubernetes-int-or-string` becomes "integer or string". Without that a misspelled field passes silently, as
the API server's structural pruning would drop it. Core objects (StatefulSet, Service, PVC, ConfigMap, Secret,
NetworkPolicy, ...) are checked by kubernetes-validate's strict JSON schemas for KUBERNETES_VERSION. An
apiVersion that the CRDs or the Kubernetes schemas do not serve is a problem too.

Each problem names the file, the document (its index, kind and name), the field path and what is wrong.
Needs the test extras (`pip install -e .[test]`: jsonschema, kubernetes-validate, PyYAML).
"""

from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
MANIFESTS = HERE / "kuberay"
CRDS = MANIFESTS / "crds"
KUBERNETES_VERSION = "1.33.0"   # the core API schemas to check against (kubernetes-validate ships 1.25 to 1.37)
MAX_PROBLEMS_PER_DOCUMENT = 10
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are MBs of YAML: libyaml when present


def strict(schema):
    """A copy of an OpenAPI v3 schema that rejects unknown fields and spells int-or-string as JSON Schema."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def _crd_index() -> dict[tuple[str, str], dict[str, dict]]:
    """(group, kind) -> {version: strict schema} for every vendored CRD."""
    index: dict[tuple[str, str], dict[str, dict]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=_Loader)
        key = (crd["spec"]["group"], crd["spec"]["names"]["kind"])
        index[key] = {v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v.get("served")}
    return index


@functools.lru_cache(maxsize=None)
def _crd_validator(group: str, kind: str, version: str):
    import jsonschema

    schema = strict(_crd_index()[group, kind][version])
    return jsonschema.Draft7Validator(schema)


def _where(error) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def _custom_resource_problems(doc: dict) -> list[str]:
    group, _, version = doc["apiVersion"].partition("/")
    versions = _crd_index().get((group, doc["kind"]))
    if versions is None:
        return [f"no vendored CRD for kind {doc['kind']!r} in group {group!r} (deploy/kuberay/crds/)"]
    if version not in versions:
        return [f"apiVersion {doc['apiVersion']!r}: the {doc['kind']} CRD serves {sorted(versions)} only"]
    errors = sorted(_crd_validator(group, doc["kind"], version).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{_where(e)}: {e.message}" for e in errors]


def _core_problems(doc: dict) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"apiVersion {doc['apiVersion']!r} kind {doc['kind']!r}: not a Kubernetes {KUBERNETES_VERSION} "
                f"API ({error.message})"]
    except kubernetes_validate.ValidationError as error:  # the first (best) error only: the package stops there
        return [f"{_where(error)}: {error.message}"]
    return []


def validate_document(doc) -> list[str]:
    """Problems of one parsed manifest document (empty list: valid)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("apiVersion"), str) or not isinstance(doc.get("kind"), str):
        return ["not a Kubernetes object (needs string fields apiVersion and kind)"]
    group = doc["apiVersion"].partition("/")[0] if "/" in doc["apiVersion"] else ""
    if group.endswith("ray.io"):
        return _custom_resource_problems(doc)
    return _core_problems(doc)


def load_documents(path: Path) -> list[dict]:
    """The non-empty YAML documents of a manifest file, in order."""
    return [doc for doc in yaml.load_all(Path(path).read_text(), Loader=_Loader) if doc is not None]


def validate_file(path: Path) -> list[str]:
    problems = []
    for index, doc in enumerate(load_documents(path)):
        name = doc.get("metadata", {}).get("name", "?") if isinstance(doc, dict) else "?"
        kind = doc.get("kind", "?") if isinstance(doc, dict) else "?"
        found = validate_document(doc)
        problems += [f"{path}: document {index} ({kind} {name}): {p}" for p in found[:MAX_PROBLEMS_PER_DOCUMENT]]
    return problems


def manifest_files() -> list[Path]:
    return sorted(MANIFESTS.glob("*.yaml"))


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or manifest_files()
    problems = [p for path in paths for p in validate_file(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(paths)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
