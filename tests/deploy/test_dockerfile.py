"""deploy/Dockerfile, parsed (it is not built here): what it installs is what pyproject.toml declares.

The runtime stage installs exactly pyproject's dependencies (torch excepted: the base image's, whose version is
the Makefile's pin), the MineRL stage builds pyproject's `minerl` extra with a JDK 8, and the runtime stage takes
only the wheel from it.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PIP_OPTIONS_WITH_VALUE = {"-r", "-c", "-e", "-i", "--index-url", "--extra-index-url", "--wheel-dir", "-w",
                          "--constraint", "--requirement", "--target", "-t", "--prefix", "--root", "-f", "--find-links"}


def instructions(text: str) -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) in order; continuation lines joined, comment lines dropped. The stage is
    the `AS name` of the last FROM ('' before any)."""
    logical, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue  # Docker drops comment lines, also inside a continued instruction
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    out, stage = [], ""
    for line in logical:
        word, _, args = line.strip().partition(" ")
        word = word.upper()
        if word == "FROM":
            match = re.search(r"\s+AS\s+(\S+)\s*$", args, re.IGNORECASE)
            stage = match.group(1) if match else ""
        out.append((stage, word, args.strip()))
    return out


def pip_installs(command: str) -> list[tuple[str, list[str]]]:
    """('install' or 'wheel', requirement-or-path arguments) of every `pip install/wheel` in a RUN command."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words = [], []
    for token in lexer:  # split on the shell's operators outside quotes (&&, ;, ||, |) and on if/then/fi
        if set(token) <= set("&;|") or token in ("if", "then", "else", "fi"):
            commands.append(words)
            words = []
        else:
            words.append(token)
    found = []
    for words in commands + [words]:
        if "pip" not in words or not {"install", "wheel"} & set(words):
            continue
        verb_at = next(i for i, w in enumerate(words) if w in ("install", "wheel"))
        args, skip = [], False
        for word in words[verb_at + 1:]:
            if skip:
                skip = False
            elif word.startswith("-"):
                skip = word in PIP_OPTIONS_WITH_VALUE
            else:
                args.append(word)
        found.append((words[verb_at], args))
    return found


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def normalized(requirements) -> set[str]:
    return {str(Requirement(r)) for r in requirements}


def stage_pip(stage: str) -> list[tuple[str, list[str]]]:
    return [install for s, word, args in instructions(DOCKERFILE.read_text()) if s == stage and word == "RUN"
            for install in pip_installs(args)]


def arg_default(name: str) -> str:
    for _, word, args in instructions(DOCKERFILE.read_text()):
        if word == "ARG" and args.startswith(f"{name}="):
            return args.split("=", 1)[1]
    raise AssertionError(f"{DOCKERFILE}: no ARG {name}=<default>")


def test_the_parser_joins_continuations_drops_comments_and_reads_pip_arguments():
    text = 'FROM a AS one\nRUN apt-get x \\\n# note\n    && pip install --no-cache-dir -c c.txt "b>=1" ./p\n'
    parsed = instructions(text)
    assert parsed[0] == ("one", "FROM", "a AS one")
    assert parsed[1][:2] == ("one", "RUN") and "# note" not in parsed[1][2]
    assert pip_installs(parsed[1][2]) == [("install", ["b>=1", "./p"])]


def test_runtime_installs_exactly_the_pyproject_dependencies_torch_from_the_base_image():
    declared = pyproject()["project"]["dependencies"]
    torch = [r for r in declared if Requirement(r).name == "torch"]
    requirement_args = [a for verb, args in stage_pip("runtime") for a in args
                        if not a.startswith(("/", ".")) and verb == "install"]
    assert normalized(requirement_args) == normalized(r for r in declared if r not in torch), (
        f"{DOCKERFILE}: the runtime stage's pip requirements differ from pyproject.toml's dependencies")
    version = arg_default("TORCH_VERSION")
    assert Requirement(torch[0]).specifier.contains(version), f"TORCH_VERSION={version} does not satisfy {torch[0]}"
    makefile_pin = re.search(r"torch==([0-9.]+)", (ROOT / "Makefile").read_text()).group(1)
    assert version == makefile_pin, f"{DOCKERFILE}: TORCH_VERSION={version}, the Makefile pins torch=={makefile_pin}"
    assert "${TORCH_VERSION}" in arg_default("BASE_IMAGE") and "cuda" in arg_default("BASE_IMAGE")


def test_the_project_itself_is_installed_without_dependencies_and_checked():
    runs = [args for s, word, args in instructions(DOCKERFILE.read_text()) if s == "runtime" and word == "RUN"]
    project = [r for r in runs if re.search(r"pip install --no-cache-dir --no-deps \.(\s|$)", r)]
    assert project, f"{DOCKERFILE}: the runtime stage must `pip install --no-deps .` the project"
    assert "pip check" in project[0] and "ray.__version__ == '2.60.0'" in project[0]
    copied = {args.split()[0] for s, word, args in instructions(DOCKERFILE.read_text()) if s == "runtime" and word == "COPY"
              and not args.startswith("--from")}
    packages = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") for p in packages} <= copied and "configs" in copied and "pyproject.toml" in copied


def test_minerl_is_built_with_jdk8_in_its_own_stage_from_the_pyproject_extra():
    text = DOCKERFILE.read_text()
    steps = instructions(text)
    minerl_runs = " ".join(args for s, word, args in steps if s == "minerl" and word == "RUN")
    assert "openjdk-8-jdk" in minerl_runs
    assert any(s == "minerl" and word == "ENV" and "JAVA_HOME=" in args and "java-8" in args for s, word, args in steps)
    wheels = [args for verb, args in stage_pip("minerl") if verb == "wheel"]
    assert [normalized(w) for w in wheels] == [normalized(pyproject()["project"]["optional-dependencies"]["minerl"])]
    assert any(s == "runtime" and word == "COPY" and args.startswith("--from=minerl /wheels") for s, word, args in steps)
    runtime_apt = " ".join(args for s, word, args in steps if s == "runtime" and word == "RUN" and "apt-get" in args)
    assert "openjdk-8-jdk" not in runtime_apt and "openjdk-8-jre" in runtime_apt, "runtime: a Java 8 JRE, no JDK"


def test_build_context_leaves_out_runs_venv_and_data():
    ignored = set((ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split())
    assert {"runs", ".venv", "data", ".git", "wandb"} <= ignored
