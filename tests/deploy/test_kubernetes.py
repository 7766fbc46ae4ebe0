"""k8s/: each overlay rendered with kustomize (kubectl's, from a wheel), validated against the
Kubernetes schemas offline, and checked against what the services actually run, serve and read."""

import base64
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
from pydantic import ByteSize, TypeAdapter

import alert_evaluator
from alert_evaluator.rules_file import load_rules_file, parse_rules
from eh_devtools.alert_rules_copy import expected_copy
from eh_devtools.manifests import (
    VALUE_FROM_CLUSTER,
    check_nats_config,
    config_map,
    container_environment,
    find,
    image_name,
    image_tag,
    pod_templates,
    referenced_secrets,
    render_kustomization,
    selector_matches,
)
from eh_devtools.nats_identities import ADMIN, authorization_block, password_variable
from eh_devtools.nats_secrets import K8S_DEV_FILE, identity_names, write_k8s_dev_secret

OVERLAYS = ("dev", "prod")
# The oldest Kubernetes the manifests promise to work on (docs/operations/kubernetes.md), and the
# newest schemas known.
KUBERNETES_VERSIONS = ("1.30", "1.37")
IMAGE_USER = 10001  # the Dockerfile's USER


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request, repo_root, tmp_path_factory):
    """An overlay as `kubectl apply -k` sends it; dev after `make k8s-dev-secret` (in a copy of k8s/)."""
    if request.param != "dev":
        return request.param, render_kustomization(repo_root / "k8s/overlays" / request.param)
    root = tmp_path_factory.mktemp("k8s-dev")
    shutil.copytree(repo_root / "k8s", root / "k8s")
    (root / K8S_DEV_FILE).unlink(missing_ok=True)  # a developer's own file stays out of the test
    write_k8s_dev_secret(root / K8S_DEV_FILE)
    return request.param, render_kustomization(root / "k8s/overlays/dev")


def secret_ref(name, key):
    return {"valueFrom": {"secretKeyRef": {"name": name, "key": key}}}


def identities_secret_name(objects):
    """The Secret NATS and the services take the identities' passwords from (generated in dev)."""
    (name,) = {s for s in referenced_secrets(objects) if re.fullmatch(r"nats-identities(-\w{10})?", s)}
    return name


def service_pods(objects, services):
    """Each service's Deployment pod template, found by its image (a Dockerfile target)."""
    found = {}
    for pod in pod_templates(objects):
        for container in pod.containers:
            if image_name(container["image"]) in services:
                assert pod.kind == "Deployment", pod.name
                assert len(pod.containers) == 1, pod.name
                found[image_name(container["image"])] = pod
    return found


def effective_settings(pod, objects, services):
    """The settings a service pod starts with; values held in Secrets are left to their defaults."""
    (container,) = pod.containers
    environment = container_environment(container, objects)
    known = {k: v for k, v in environment.items() if v != VALUE_FROM_CLUSTER}
    return environment, services[image_name(container["image"])].settings(known)


def nats_pod(objects):
    (pod,) = [p for p in pod_templates(objects) if p.name == "nats"]
    return pod


def nats_config(objects):
    pod = nats_pod(objects)
    (volume,) = [v for v in pod.spec["volumes"] if v["name"] == "config"]
    return config_map(objects, volume["configMap"]["name"])["data"]["nats.conf"]


def byte_size(text):
    """`4GiB` (NATS), `5Gi` (a Kubernetes quantity), `5m` (nginx: MiB) in bytes."""
    text = re.sub(r"^(\d+)m$", r"\1MiB", text)
    return int(TypeAdapter(ByteSize).validate_python(f"{text}B" if text.endswith("i") else text))


def test_every_object_is_valid_for_the_kubernetes_versions_we_support(overlay):
    _, objects = overlay
    assert len(objects) > 15
    for version in KUBERNETES_VERSIONS:
        for manifest in objects:
            if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # the Prometheus Operator's kinds: tests/deploy/test_monitoring.py
            # strict: an unknown or misspelt field is an error, not silently ignored by the cluster.
            kubernetes_validate.validate(manifest, version, strict=True)


def test_every_service_runs_its_image_on_its_port_with_its_probes(overlay, services):
    _, objects = overlay
    pods = service_pods(objects, services)
    assert set(pods) == set(services)
    for name, pod in pods.items():
        facts = services[name]
        (container,) = pod.containers
        _, settings = effective_settings(pod, objects, services)
        assert not {"command", "args"} & set(container), "the image's CMD is the entry point"
        assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", settings.port)]
        probes = {kind: container[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
        assert probes == {
            "readinessProbe": {"path": "/readyz", "port": "http"},
            "livenessProbe": {"path": "/healthz", "port": "http"},
        }, name
        assert facts.status_of("/healthz") == 200
        assert facts.status_of("/readyz") == 503  # served, and not ready without NATS
        assert pod.annotations["prometheus.io/scrape"] == "true"
        assert pod.annotations["prometheus.io/port"] == str(settings.port)
        assert facts.status_of(pod.annotations["prometheus.io/path"]) == 200


def test_every_variable_set_is_one_the_service_reads(overlay, services):
    _, objects = overlay
    for name, pod in service_pods(objects, services).items():
        environment, _ = effective_settings(pod, objects, services)
        unread = set(environment) - services[name].variables()
        assert unread == set(), f"{name} sets variables nothing reads: {sorted(unread)}"
        assert environment["NATS_URL"] == "nats://nats:4222"
        # Each service is its own NATS identity, its password from a Secret.
        assert environment["NATS_USER"] == name
        assert environment["NATS_PASSWORD"] == VALUE_FROM_CLUSTER


def test_every_container_is_hardened_and_has_resources(overlay, services):
    _, objects = overlay
    service_pod_names = {pod.name for pod in service_pods(objects, services).values()}
    for pod in pod_templates(objects):
        security = pod.spec["securityContext"]
        assert security["runAsNonRoot"] is True, pod.name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", pod.name
        assert pod.spec["automountServiceAccountToken"] is False, pod.name
        if pod.name in service_pod_names:
            assert security["runAsUser"] == IMAGE_USER, pod.name
        for container in pod.containers:
            where = f"{pod.name}/{container['name']}"
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, where
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, where


def test_termination_grace_covers_prestop_and_both_drains(overlay, services):
    _, objects = overlay
    for name, pod in service_pods(objects, services).items():
        (container,) = pod.containers
        _, settings = effective_settings(pod, objects, services)
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pause = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
        # SIGTERM → HTTP drain (streams get stream.shutdown) ≤ shutdown_timeout → NATS drain ≤ same.
        needed = pause + 2 * settings.shutdown_timeout.total_seconds()
        assert pod.spec["terminationGracePeriodSeconds"] > needed, name
        routed = any(s["spec"]["selector"].items() <= pod.labels.items() for s in find(objects, "Service"))
        assert pause > 0 if routed else pause == 0, f"{name}: preStop pause iff a Service routes to it"


def test_every_service_has_a_disruption_budget(overlay, services):
    _, objects = overlay
    budgets = find(objects, "PodDisruptionBudget")
    for pod in [*service_pods(objects, services).values(), nats_pod(objects)]:
        (budget,) = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= pod.labels.items()]
        assert budget["spec"]["maxUnavailable"] == 1, pod.name


def test_the_edge_is_reachable_through_nginx_without_buffering(overlay, services):
    _, objects = overlay
    edge = service_pods(objects, services)["sse-edge"]
    _, settings = effective_settings(edge, objects, services)
    (service,) = find(objects, "Service", "sse-edge")
    assert service["spec"]["selector"].items() <= edge.labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    (ingress,) = find(objects, "Ingress", "sse-edge")
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"] == {"name": "sse-edge", "port": {"name": "http"}}
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    # An idle stream carries a heartbeat every interval; the proxy must wait longer than that.
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        seconds = int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"])
        assert seconds > 4 * settings.heartbeat_interval.total_seconds(), timeout


def test_the_collector_ingress_lets_its_largest_body_through(overlay, services):
    _, objects = overlay
    _, settings = effective_settings(service_pods(objects, services)["collector"], objects, services)
    (ingress,) = find(objects, "Ingress", "collector")
    limit = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert byte_size(limit) > settings.max_body_bytes


def test_the_edge_autoscales_in_prod_and_runs_one_pod_in_dev(overlay, services):
    name, objects = overlay
    autoscalers = find(objects, "HorizontalPodAutoscaler")
    deployments = {p.name: p.workload for p in service_pods(objects, services).values()}
    if name == "dev":
        assert autoscalers == []
        assert {n: d["spec"].get("replicas", 1) for n, d in deployments.items()} == dict.fromkeys(services, 1)
    else:
        (hpa,) = autoscalers
        assert hpa["spec"]["scaleTargetRef"]["name"] == "sse-edge"
        assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        assert "replicas" not in deployments["sse-edge"]["spec"], "the autoscaler owns the count"


def test_only_the_services_may_reach_the_nats_client_port(overlay, services):
    _, objects = overlay
    nats = nats_pod(objects)
    (policy,) = [
        p
        for p in find(objects, "NetworkPolicy")
        if p["spec"]["podSelector"]["matchLabels"].items() <= nats.labels.items()
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = [r for r in policy["spec"]["ingress"] if {"port": "client"} in r.get("ports", [])]

    allowed = {
        pod.name
        for pod in pod_templates(objects)
        if any(selector_matches(peer["podSelector"], pod.labels) for peer in rule["from"])
    }
    assert allowed == {pod.name for pod in service_pods(objects, services).values()}
    assert all(set(peer) == {"podSelector"} for peer in rule["from"]), "same namespace only"
    # No other rule opens the client port (a rule without `ports` opens every port).
    assert all("ports" in r for r in policy["spec"]["ingress"])


def test_nats_config_is_valid_for_the_server_the_tests_run(overlay, nats_version):
    _, objects = overlay
    nats = nats_pod(objects)
    server = nats.container("nats")
    assert image_tag(server["image"]) == f"{nats_version}-alpine"
    # The container's variables, with stand-in values: a `$VARIABLE` the pod does not set fails.
    environment = {v["name"]: "placeholder" for v in server.get("env", [])}
    check_nats_config(nats_config(objects), environment)


def test_nats_stores_on_its_volume_within_the_volume_and_above_the_stream(overlay, services):
    _, objects = overlay
    nats = nats_pod(objects)
    config = nats_config(objects)
    (store_dir,) = re.findall(r"^\s*store_dir:\s*(\S+)", config, flags=re.MULTILINE)
    (mount,) = [m for m in nats.container("nats")["volumeMounts"] if m["mountPath"] == store_dir]
    (claim,) = [
        c for c in nats.workload["spec"]["volumeClaimTemplates"] if c["metadata"]["name"] == mount["name"]
    ]
    volume = byte_size(claim["spec"]["resources"]["requests"]["storage"])
    (max_file_store,) = re.findall(r"^\s*max_file_store:\s*(\S+)", config, flags=re.MULTILINE)
    _, collector = effective_settings(service_pods(objects, services)["collector"], objects, services)
    assert collector.stream.max_bytes < byte_size(max_file_store) < volume


def test_stream_replicas_fit_the_nats_cluster(overlay, services):
    name, objects = overlay
    nats = nats_pod(objects)
    servers = nats.workload["spec"]["replicas"]
    routes = re.findall(r"nats://([\w.-]+):6222", nats_config(objects))
    headless = nats.workload["spec"]["serviceName"]
    assert find(objects, "Service", headless)[0]["spec"]["clusterIP"] == "None"
    if servers > 1:
        assert routes == [f"nats-{i}.{headless}" for i in range(servers)]
    else:
        assert routes == []
    for pod in service_pods(objects, services).values():
        _, settings = effective_settings(pod, objects, services)
        assert settings.stream.replicas <= servers
        assert settings.stream.replicas == (3 if name == "prod" else 1)
    assert servers == (3 if name == "prod" else 1)


def test_alert_rules_come_from_a_config_map_mounted_into_the_evaluator(overlay, services):
    _, objects = overlay
    evaluator = service_pods(objects, services)["alert-evaluator"]
    (volume,) = [v for v in evaluator.spec["volumes"] if "configMap" in v]
    (rules,) = find(objects, "ConfigMap", "alert-rules")
    assert volume["configMap"]["name"] == rules["metadata"]["name"]
    assert "rules.yaml" in rules["data"]
    (mount,) = [m for m in evaluator.containers[0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == "/etc/event-handler/rules"
    assert mount["readOnly"] is True
    (variable,) = [e for e in evaluator.containers[0]["env"] if e["name"] == "ALERT_EVALUATOR_RULES_FILE"]
    assert variable["value"] == "/etc/event-handler/rules/rules.yaml"
    # The evaluator itself accepts the rules, and they are the rules it ships with, copied whole.
    shipped = parse_rules(rules["data"]["rules.yaml"].encode(), "k8s/base/alert-evaluator/rules.yaml")
    default = load_rules_file(Path(alert_evaluator.__file__).parent / "default_rules.yaml")
    assert [rule.name for rule in shipped.rules] == [rule.name for rule in default.rules]
    assert rules["data"]["rules.yaml"] == expected_copy()


def test_secrets_are_referenced_never_committed_and_documented(overlay, kubernetes_docs, repo_root):
    name, objects = overlay
    secret = identities_secret_name(objects)
    generated = find(objects, "Secret")
    if name == "prod":
        assert generated == [], "prod: every Secret is created in the cluster, none comes from the repository"
        assert secret == "nats-identities"
    else:
        # dev: the one Secret is generated from a file that `make k8s-dev-secret` writes and git ignores.
        (dev_secret,) = generated
        assert dev_secret["metadata"]["name"] == secret
        assert dev_secret["metadata"]["labels"]["event-handler/dev-only"] == "true"
        ignored = subprocess.run(["git", "check-ignore", "-q", str(K8S_DEV_FILE)], cwd=repo_root, check=False)
        assert ignored.returncode == 0, f"{K8S_DEV_FILE} must be ignored by git"
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", str(K8S_DEV_FILE)],
            cwd=repo_root,
            capture_output=True,
            check=False,
        )
        assert tracked.returncode != 0, f"{K8S_DEV_FILE} is committed"
    for referenced in referenced_secrets(objects):
        documented = "nats-identities" if referenced == secret else referenced
        assert f"`{documented}`" in kubernetes_docs, (
            f"the Kubernetes docs do not say how to create the Secret {documented}"
        )


def test_nats_and_every_service_take_their_identities_from_the_secret(overlay, services):
    """The server gets every identity's password, each service its own only, provisioning the admin's."""
    name, objects = overlay
    secret = identities_secret_name(objects)
    server = nats_pod(objects).container("nats")
    passwords = {e["name"]: e for e in server["env"] if e["name"].startswith("EH_NATS_")}
    assert passwords == {
        password_variable(identity): {"name": password_variable(identity), **secret_ref(secret, identity)}
        for identity in identity_names()
    }
    for service, pod in service_pods(objects, services).items():
        (container,) = pod.containers
        nats_env = {e["name"]: e for e in container["env"] if e["name"].startswith("NATS_")}
        assert nats_env == {
            "NATS_USER": {"name": "NATS_USER", "value": service},
            "NATS_PASSWORD": {"name": "NATS_PASSWORD", **secret_ref(secret, service)},
        }, service
        for init in pod.spec.get("initContainers", []):
            assert init["command"] == ["python", "-m", services[service].module, "provision"]
            init_env = {e["name"]: e for e in init["env"]}
            assert init_env["NATS_USER"]["value"] == ADMIN
            assert init_env["NATS_PASSWORD"] == {"name": "NATS_PASSWORD", **secret_ref(secret, ADMIN)}
    provisioned = {s for s, pod in service_pods(objects, services).items() if pod.spec.get("initContainers")}
    assert provisioned == {"collector", "alert-evaluator"}, "what the services use exists before they start"
    if name == "dev":
        (dev_secret,) = find(objects, "Secret")
        values = {key: base64.b64decode(value).decode() for key, value in dev_secret["data"].items()}
        assert set(values) == set(identity_names())
        assert len(set(values.values())) == len(values), "one password per identity"


def test_the_nats_permissions_are_the_tested_ones(overlay):
    """The permission table the tests run against a real server is the one each overlay deploys."""
    _, objects = overlay
    assert authorization_block() in nats_config(objects)
