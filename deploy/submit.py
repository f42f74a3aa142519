"""Submits the main job to a Ray cluster: `ray job submit` with the working dir, excludes, runtime env and token.

    python deploy/submit.py --address http://127.0.0.1:8265 -- --config configs/minerl.yaml run_dir=/mnt/runs/minerl
    python deploy/submit.py --entrypoint-num-gpus 1 --no-wait -- --config configs/minerl.yaml   # RAY_ADDRESS set
    python deploy/submit.py --dry-run -- --config configs/smoke.yaml     # print the command, submit nothing

What goes after `--` are the main job's arguments: the entrypoint is `PYTHON -m MODULE ARGS...` (`python -m
system.main` unless --python/--module say otherwise; on a `ray start` head outside a container give the venv's
interpreter, since the entrypoint's `python` resolves through the PATH of the shell that ran `ray start`).

- address: --address, else $RAY_ADDRESS (the dashboard, http://HOST:8265; for KubeRay, `kubectl port-forward
  svc/dreamer4-head-svc 8265:8265`, docs/deploy.md).
- token: $RAY_AUTH_TOKEN, else the file --token-file or $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token. It goes to
  `ray job submit` in its environment (never on a command line), with RAY_AUTH_MODE=token.
- working dir: --working-dir (default: the repository this file is in) is uploaded without runs/, .venv/, data/,
  .git/, wandb/, caches and the vendored CRDs (--exclude adds patterns, gitignore syntax). The uploaded code comes
  first on the job's sys.path, so it runs even where the image holds an older copy.
- runtime env: --env KEY=VALUE (repeatable) sets variables of the job. Secrets do not belong there (the
  dashboard shows the runtime env): a name that looks like one (PASSWORD, TOKEN, SECRET, API_KEY) is refused;
  give them to the pods from Kubernetes Secrets instead.
Exit status: `ray job submit`'s (with --no-wait: whether the submission was accepted), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXCLUDES = ["/runs/", "/.venv/", "/data/", "/.git/", "/wandb/", "**/__pycache__/", "/.pytest_cache/",
            "/*.egg-info/", "/deploy/kuberay/crds/", "/.whl/", "/.gl/"]
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|API_KEY|CREDENTIAL", re.IGNORECASE)
DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")


class SubmitError(Exception):
    """A problem found before anything is submitted; the message says what to set."""


def read_token(environ: dict, token_file: str | None) -> str:
    if environ.get("RAY_AUTH_TOKEN"):
        return environ["RAY_AUTH_TOKEN"].strip()
    path = token_file or environ.get("RAY_AUTH_TOKEN_PATH")
    source = "--token-file" if token_file else "RAY_AUTH_TOKEN_PATH"
    if not path:
        path, source = str(DEFAULT_TOKEN_FILE.expanduser()), "the default token file"
        if not Path(path).is_file():
            raise SubmitError("no Ray auth token: set RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH or --token-file to a "
                              f"file holding it ({path} does not exist). For the KubeRay cluster: kubectl get "
                              "secret dreamer4-ray-token -o jsonpath='{.data.auth_token}' | base64 -d")
    try:
        token = Path(path).expanduser().read_text().strip()
    except OSError as error:
        raise SubmitError(f"cannot read the Ray auth token from {path} ({source}): {error.strerror}") from None
    if not token:
        raise SubmitError(f"the Ray auth token file {path} ({source}) is empty")
    return token


def runtime_env(working_dir: Path, extra_excludes: list[str], env_pairs: list[str]) -> dict:
    env_vars = {}
    for pair in env_pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SubmitError(f"--env {pair!r}: expected KEY=VALUE")
        if SECRET_NAME.search(key):
            raise SubmitError(f"--env {key}=...: looks like a secret, and the runtime env is shown on the dashboard; "
                              "give it to the pods from a Kubernetes Secret (docs/deploy.md)")
        env_vars[key] = value
    env = {"working_dir": str(working_dir), "excludes": EXCLUDES + list(extra_excludes)}
    if env_vars:
        env["env_vars"] = env_vars
    return env


def check_config_path(job_args: list[str], working_dir: Path) -> None:
    """A relative --config must exist in the working dir that is uploaded, or the job fails minutes later."""
    if "--config" in job_args:
        at = job_args.index("--config")
        if at + 1 >= len(job_args):
            raise SubmitError("--config without a path after `--`")
        config = Path(job_args[at + 1])
        if not config.is_absolute() and not (working_dir / config).is_file():
            raise SubmitError(f"--config {config}: no such file in the working dir {working_dir}")


def ray_cli() -> str:
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        raise SubmitError("the `ray` command is not installed here: pip install 'ray[default]==2.60.0'")
    return found


def build_command(args: argparse.Namespace, environ: dict) -> list[str]:
    address = args.address or environ.get("RAY_ADDRESS", "")
    if not address:
        raise SubmitError("no cluster address: give --address http://HOST:8265 or set RAY_ADDRESS")
    working_dir = Path(args.working_dir).resolve()
    if not working_dir.is_dir():
        raise SubmitError(f"--working-dir {working_dir}: not a directory")
    check_config_path(args.job_args, working_dir)
    command = [ray_cli(), "job", "submit", f"--address={address}",
               f"--runtime-env-json={json.dumps(runtime_env(working_dir, args.exclude, args.env))}"]
    if args.entrypoint_num_gpus:
        command.append(f"--entrypoint-num-gpus={args.entrypoint_num_gpus}")
    if args.entrypoint_num_cpus:
        command.append(f"--entrypoint-num-cpus={args.entrypoint_num_cpus}")
    if args.submission_id:
        command.append(f"--submission-id={args.submission_id}")
    if args.no_wait:
        command.append("--no-wait")
    return command + ["--", args.python, "-m", args.module, *args.job_args]


def parse(argv: list[str]) -> argparse.Namespace:
    job_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, job_args = argv[:at], argv[at + 1:]
    parser = argparse.ArgumentParser(prog="deploy/submit.py", description=__doc__.split("\n\n")[0],
                                     epilog="Arguments after `--` go to the main job (python -m system.main).")
    parser.add_argument("--address", help="Ray dashboard address, http://HOST:8265 (default: $RAY_ADDRESS)")
    parser.add_argument("--token-file", help="file holding the cluster's auth token (default: $RAY_AUTH_TOKEN, "
                                             "$RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)")
    parser.add_argument("--working-dir", default=str(REPO), help="directory uploaded as the job's working dir")
    parser.add_argument("--exclude", action="append", default=[], help="another upload exclude (gitignore syntax)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="a runtime env variable")
    parser.add_argument("--python", default="python", help="the entrypoint's interpreter on the cluster")
    parser.add_argument("--module", default="system.main", help="the entrypoint's module")
    parser.add_argument("--entrypoint-num-gpus", type=float, default=0, help="GPUs for the driver (it trains)")
    parser.add_argument("--entrypoint-num-cpus", type=float, default=0, help="CPUs for the driver")
    parser.add_argument("--submission-id", help="job id (default: Ray generates one)")
    parser.add_argument("--no-wait", action="store_true", help="return once submitted; follow with ray job logs")
    parser.add_argument("--dry-run", action="store_true", help="print the command and exit")
    args = parser.parse_args(argv)
    args.job_args = job_args
    return args


def main(argv: list[str] | None = None, environ: dict | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        command = build_command(args, environ)
        token = None if args.dry_run else read_token(environ, args.token_file)
    except SubmitError as error:
        print(f"submit: {error}", file=sys.stderr)
        return 2
    print("submit: " + " ".join(command), flush=True)
    if args.dry_run:
        return 0
    child_env = {**environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    child_env.pop("RAY_AUTH_TOKEN_PATH", None)  # RAY_AUTH_TOKEN wins anyway; one source, no doubt which
    return subprocess.run(command, env=child_env).returncode


if __name__ == "__main__":
    sys.exit(main())
