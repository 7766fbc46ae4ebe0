"""Rendering and reading the deployment files offline, with the real tools from PyPI wheels.

`kubectl kustomize` renders a k8s/ overlay, `docker-compose config` normalizes compose.yaml
(merges, interpolation, defaults), `nats-server -t` validates a NATS configuration. None needs a
cluster, a Docker engine or the network.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eh_devtools.nats_server import nats_server_binary

Manifest = dict[str, Any]

VALUE_FROM_CLUSTER = "<valueFrom>"
"""Stands for a variable's value that only the cluster knows (secretKeyRef, fieldRef, …)."""


def tool(name: str) -> str:
    """Path of a command-line tool installed into this virtualenv by a wheel, else from PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make sync`")
    return found


def render_kustomization(directory: Path) -> list[Manifest]:
    """The objects `kubectl apply -k directory` would send, in kustomize's order."""
    rendered = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if rendered.returncode != 0:
        raise ValueError(f"kubectl kustomize {directory} failed:\n{rendered.stderr}")
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def compose_config(compose_file: Path, profiles: Sequence[str] = ()) -> dict[str, Any]:
    """compose.yaml as Docker Compose itself reads it: validated against the Compose schema, YAML
    merges applied, `${VAR:-default}` interpolated with an empty environment (the defaults)."""
    command = [tool("docker-compose"), "--file", str(compose_file)]
    for profile in profiles:
        command += ["--profile", profile]
    result = subprocess.run(
        [*command, "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir()},
    )
    if result.returncode != 0:
        raise ValueError(f"docker-compose config failed:\n{result.stderr}")
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def check_nats_config(config: str, environment: Mapping[str, str]) -> None:
    """Validate a nats-server configuration with the server binary the tests run (`-t`).

    Unknown keys, bad values and `$VARIABLE` references missing from `environment` are errors.
    """
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "nats.conf"
        path.write_text(config, encoding="utf-8")
        result = subprocess.run(
            [nats_server_binary(), "--config", str(path), "-t"],
            capture_output=True,
            text=True,
            check=False,
            env=dict(environment),
        )
    if result.returncode != 0:
        raise ValueError(f"nats-server rejects the configuration: {result.stderr.strip()}")


@dataclass(frozen=True)
class PodTemplate:
    """The pod template of a workload (Deployment, StatefulSet) in a rendered overlay."""

    workload: Manifest

    @property
    def kind(self) -> str:
        return str(self.workload["kind"])

    @property
    def name(self) -> str:
        return str(self.workload["metadata"]["name"])

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.workload["spec"]["template"]["metadata"].get("labels", {})
        return labels

    @property
    def annotations(self) -> dict[str, str]:
        annotations: dict[str, str] = self.workload["spec"]["template"]["metadata"].get("annotations", {})
        return annotations

    @property
    def spec(self) -> Manifest:
        spec: Manifest = self.workload["spec"]["template"]["spec"]
        return spec

    @property
    def containers(self) -> list[Manifest]:
        containers: list[Manifest] = self.spec["containers"]
        return containers

    def container(self, name: str) -> Manifest:
        return next(c for c in self.containers if c["name"] == name)


def pod_templates(objects: Sequence[Manifest]) -> list[PodTemplate]:
    return [PodTemplate(o) for o in objects if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]


def find(objects: Sequence[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    """The objects of `kind` (and `name`); a generated ConfigMap matches its name without the hash."""
    return [o for o in objects if o["kind"] == kind and (name is None or _base_name(o) == name)]


def config_map(objects: Sequence[Manifest], name: str) -> Manifest:
    """The ConfigMap a pod refers to by `name` (with kustomize's hash, as rendered)."""
    (found,) = [o for o in find(objects, "ConfigMap") if o["metadata"]["name"] == name]
    return found


def container_environment(container: Manifest, objects: Sequence[Manifest]) -> dict[str, str]:
    """The variables a container starts with: `envFrom` ConfigMaps first, then `env` over them.

    A value from a Secret or the downward API is `VALUE_FROM_CLUSTER`: set, but unknown here.
    """
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment.update(config_map(objects, source["configMapRef"]["name"]).get("data", {}))
        else:
            raise ValueError(f"envFrom {source}: only ConfigMaps can be checked; use env with secretKeyRef")
    for variable in container.get("env", []):
        environment[variable["name"]] = variable.get("value", VALUE_FROM_CLUSTER)
    return environment


def referenced_secrets(objects: Sequence[Manifest]) -> set[str]:
    """Names of the Secrets the objects use: env, envFrom, volumes, Ingress TLS."""
    names: set[str] = set()
    for node in _walk(objects):
        for key in ("secretKeyRef", "secretRef"):
            if isinstance(node.get(key), dict):
                names.add(node[key]["name"])
        if isinstance(node.get("secret"), dict) and "secretName" in node["secret"]:
            names.add(node["secret"]["secretName"])
        if "hosts" in node and "secretName" in node:
            names.add(node["secretName"])
    return names


def selector_matches(selector: Manifest, labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) applied to `labels`."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def image_name(image: str) -> str:
    """`registry.example.com/event-handler/collector:0.1.0` → `collector`."""
    last = image.rsplit("/", 1)[-1]
    return last.split("@", 1)[0].split(":", 1)[0]


def image_tag(image: str) -> str | None:
    last = image.rsplit("/", 1)[-1].split("@", 1)[0]
    return last.split(":", 1)[1] if ":" in last else None


def _base_name(manifest: Manifest) -> str:
    # kustomize's configMapGenerator appends "-<10 characters of hash>" to the name.
    name = str(manifest["metadata"]["name"])
    head, _, tail = name.rpartition("-")
    generated = manifest["kind"] == "ConfigMap" and len(tail) == 10 and tail.isalnum()
    return head if head and generated else name


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)
