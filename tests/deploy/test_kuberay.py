"""deploy/kuberay/: the manifests are valid (strict schemas, deploy/validate.py) and agree with each other, with
configs/minerl.yaml, with the Dockerfile and with docs/deploy.md.

What the checks stand for: the head runs no training; Ray's view of each pod (rayStartParams) equals what
Kubernetes gives it (requests and limits, nvidia.com/gpu); the job's driver, which trains on one GPU today, has a
GPU worker to land on; Redis holds replay.tables at the configured capacity in memory and twice that on disk
(AOF rewrite); no secret is written in a manifest, and every Secret they read is one docs/deploy.md creates.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from deploy import validate
from system.run.config import load

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "deploy" / "kuberay"
FRAME_BYTES = 3  # uint8 RGB, per pixel



def documents() -> list[dict]:
    return [doc for path in validate.manifest_files() for doc in validate.load_documents(path)]


def one(kind: str, name: str | None = None) -> dict:
    found = [d for d in documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"deploy/kuberay/: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def quantity(value) -> float:
    """Kubernetes quantity -> number (bytes for memory, cores for cpu)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match, f"not a quantity: {value!r}"
    return float(match.group(1)) * units.get(match.group(2), 1)


def minerl_config(overrides=()):
    return load(["--config", str(ROOT / "configs" / "minerl.yaml"), *overrides])


def ray_container(group: dict) -> dict:
    return group["template"]["spec"]["containers"][0]


def all_containers(doc: dict):
    """Every container spec in a manifest document, wherever it sits."""
    if isinstance(doc, dict):
        if "containers" in doc and isinstance(doc["containers"], list):
            yield from doc["containers"]
        for value in doc.values():
            yield from all_containers(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from all_containers(value)


@pytest.mark.parametrize("path", validate.manifest_files(), ids=lambda p: p.name)
def test_every_manifest_passes_strict_validation(path):
    assert validate.validate_file(path) == []


def test_the_core_objects_of_the_deployment_are_there():
    kinds = {d["kind"] for d in documents()}
    assert {"RayCluster", "RayJob", "StatefulSet", "Service", "PersistentVolumeClaim", "NetworkPolicy",
            "ConfigMap"} <= kinds, kinds


def test_the_head_runs_no_training():
    head = one("RayCluster")["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0" and head["rayStartParams"]["num-gpus"] == "0"
    assert "nvidia.com/gpu" not in ray_container(head)["resources"].get("limits", {})


def test_ray_sees_what_kubernetes_gives_each_worker_and_bounds_are_ordered():
    groups = {g["groupName"]: g for g in one("RayCluster")["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for name, group in groups.items():
        resources = ray_container(group)["resources"]
        limits, requests = resources["limits"], resources["requests"]
        assert quantity(limits["cpu"]) == float(group["rayStartParams"]["num-cpus"]), name
        assert float(limits.get("nvidia.com/gpu", 0)) == float(group["rayStartParams"]["num-gpus"]), name
        assert requests.get("nvidia.com/gpu") == limits.get("nvidia.com/gpu"), f"{name}: GPU request != limit"
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], name
    assert groups["cpu"]["rayStartParams"]["num-gpus"] == "0"
    assert any(e == {"name": "CUDA_VISIBLE_DEVICES", "value": ""} for e in ray_container(groups["cpu"])["env"])
    assert float(groups["gpu"]["rayStartParams"]["num-gpus"]) >= 1
    assert one("RayCluster")["spec"]["enableInTreeAutoscaling"] is True


def test_shared_memory_holds_each_pods_object_store():
    """Ray sizes its object store at 30% of the pod's memory in /dev/shm; a smaller /dev/shm makes it fall back
    to a disk-backed store."""
    spec = one("RayCluster")["spec"]
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        volumes = {v["name"]: v for v in group["template"]["spec"]["volumes"]}
        container = ray_container(group)
        shm = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        assert shm, f"group {group.get('groupName', 'head')}: no /dev/shm volume"
        size = quantity(volumes[shm[0]["name"]]["emptyDir"]["sizeLimit"])
        assert size >= 0.3 * quantity(container["resources"]["limits"]["memory"]), group.get("groupName", "head")


def test_sizing_matches_configs_minerl_yaml():
    cfg = minerl_config()
    groups = {g["groupName"]: g for g in one("RayCluster")["spec"]["workerGroupSpecs"]}
    job = one("RayJob")["spec"]
    gpu = groups["gpu"]
    if cfg.device in ("auto", "cuda"):  # the driver trains in-process on a GPU: it needs a GPU worker to land on
        assert job["entrypointNumGpus"] >= 1 and gpu["minReplicas"] >= 1
    assert job["entrypointNumGpus"] <= float(gpu["rayStartParams"]["num-gpus"])
    assert job["entrypointNumCpus"] <= float(gpu["rayStartParams"]["num-cpus"])
    # Env runners ask Ray for no CPU, so the autoscaler never adds a pod for them: the minimum must hold them.
    cores = cfg.runtime.env_runners * cfg.runtime.envs_per_runner
    assert groups["cpu"]["minReplicas"] * float(groups["cpu"]["rayStartParams"]["num-cpus"]) >= cores


def test_redis_holds_the_configured_replay_capacity():
    cfg = minerl_config()
    height, width = cfg.data.ingest.size
    steps = sum(cfg.replay.tables.get(name).capacity_steps for name in cfg.replay.tables.names())
    data_bytes = steps * height * width * FRAME_BYTES
    redis = one("StatefulSet", "dreamer4-redis")["spec"]
    limits = redis["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert quantity(limits["memory"]) >= 1.1 * data_bytes, f"{limits['memory']} for {data_bytes / 2**30:.1f} GiB"
    disk = redis["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert quantity(disk) >= 2 * data_bytes, f"{disk}: the AOF rewrite needs twice {data_bytes / 2**30:.1f} GiB"


def test_redis_is_durable_password_protected_and_reachable_only_in_the_namespace():
    conf = one("ConfigMap", "dreamer4-redis-config")["data"]["redis.conf"]
    settings = dict(line.split(None, 1) for line in conf.splitlines() if line.strip() and not line.startswith("#"))
    assert settings["appendonly"] == "yes" and settings["appendfsync"] in ("always", "everysec")
    assert settings["maxmemory-policy"] == "noeviction"  # the store evicts FIFO itself (docs/replay.md)
    assert "requirepass" not in settings, "the password comes from the Secret, not the ConfigMap"
    statefulset = one("StatefulSet", "dreamer4-redis")["spec"]
    service = one("Service", "dreamer4-redis")["spec"]
    policy = one("NetworkPolicy", "dreamer4-redis")["spec"]
    labels = statefulset["template"]["metadata"]["labels"]
    assert service["selector"] == labels == policy["podSelector"]["matchLabels"] == statefulset["selector"]["matchLabels"]
    assert statefulset["serviceName"] == "dreamer4-redis"
    assert policy["policyTypes"] == ["Ingress"]
    for rule in policy["ingress"]:
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, f"{peer}: only pods of the namespace (no namespaceSelector/ipBlock)"
    url = one("ConfigMap", "dreamer4-env")["data"]["REDIS_URL"]
    assert url == f"redis://dreamer4-redis:{service['ports'][0]['port']}/0"
    assert minerl_config().replay.url_env == "REDIS_URL" and minerl_config().replay.backend == "redis"


def test_token_auth_is_on_and_the_submitter_uses_the_clusters_secret():
    auth = one("RayCluster")["spec"]["authOptions"]
    assert auth["mode"] == "token" and auth["secretName"]
    submitter = one("RayJob")["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["env"]
    env = {e["name"]: e for e in submitter}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": auth["secretName"], "key": "auth_token"}


def test_no_secret_is_written_in_a_manifest_and_docs_create_every_secret_read():
    assert not [d for d in documents() if d["kind"] == "Secret"], "Secrets are created with kubectl (docs/deploy.md)"
    refs = set()
    for doc in documents():
        for container in all_containers(doc):
            for env in container.get("env", []):
                if re.search(r"PASSWORD|TOKEN|SECRET|API_KEY", env["name"]) and env["name"] != "RAY_AUTH_MODE":
                    assert "value" not in env, f"{doc['kind']} {doc['metadata']['name']}: {env['name']} has a literal"
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
    auth = one("RayCluster")["spec"]["authOptions"]
    refs.add((auth["secretName"], "auth_token"))
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for name, key in sorted(refs):
        assert re.search(rf"kubectl create secret generic {name}\b[^\n]*--from-(literal|file)={key}=", docs), (
            f"docs/deploy.md does not create Secret {name} with key {key}")


def test_the_run_volume_is_mounted_everywhere_and_the_job_writes_its_run_there():
    claim = one("PersistentVolumeClaim", "dreamer4-runs")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "the driver may land on any GPU worker"
    spec = one("RayCluster")["spec"]
    mounts = set()
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        volumes = {v["name"]: v for v in group["template"]["spec"]["volumes"]}
        for mount in ray_container(group)["volumeMounts"]:
            if volumes[mount["name"]].get("persistentVolumeClaim", {}).get("claimName") == "dreamer4-runs":
                mounts.add(mount["mountPath"])
                break
        else:
            pytest.fail(f"group {group.get('groupName', 'head')} does not mount the PVC dreamer4-runs")
    assert len(mounts) == 1, f"the run volume is mounted at different paths: {mounts}"
    run_dir = [a.split("=", 1)[1] for a in shlex.split(one("RayJob")["spec"]["entrypoint"]) if a.startswith("run_dir=")]
    assert run_dir and run_dir[0].startswith(mounts.pop() + "/"), "run_dir must be on the run volume to resume"


def test_the_job_runs_the_main_job_on_the_selected_cluster_with_a_config_that_loads():
    cluster = one("RayCluster")
    job = one("RayJob")["spec"]
    assert job["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    # KubeRay: a selected cluster is never shut down by the job, and a TTL needs shutdownAfterJobFinishes.
    assert job["shutdownAfterJobFinishes"] is False and job.get("ttlSecondsAfterFinished", 0) == 0
    words = shlex.split(job["entrypoint"])
    assert words[:3] == ["python", "-m", "system.main"]
    config = words[words.index("--config") + 1]
    workdir = next(a for s, w, a in _dockerfile_steps() if s == "runtime" and w == "WORKDIR")
    assert config.startswith(workdir + "/"), f"{config}: not under the image's WORKDIR {workdir}"
    overrides = [w for w in words[3:] if "=" in w]
    cfg = load(["--config", str(ROOT / config.removeprefix(workdir + "/")), *overrides])
    assert cfg.name == "minerl"


def test_every_pod_runs_the_project_image_at_the_pinned_ray_version():
    cluster = one("RayCluster")
    images = {c["image"] for doc in documents() if doc["kind"] in ("RayCluster", "RayJob") for c in all_containers(doc)}
    assert len(images) == 1, f"Ray pods use different images: {images}"
    pinned = re.search(r'"ray\[[^\]]*\]==([0-9.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert cluster["spec"]["rayVersion"] == pinned


def _dockerfile_steps():
    from tests.deploy.test_dockerfile import DOCKERFILE, instructions

    return instructions(DOCKERFILE.read_text())
