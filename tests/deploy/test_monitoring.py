"""Monitoring of the services themselves (prod overlay): the ServiceMonitor and PodMonitor scrape
what exists, the Prometheus alert rules and the Grafana dashboard are well formed, and every
metric they name is one the services really expose on /metrics."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from alert_evaluator.app import create_app as create_evaluator
from alert_evaluator.settings import EvaluatorSettings
from collector.app import create_app as create_collector
from collector.settings import CollectorSettings
from eh_devtools.manifests import find, pod_templates, render_kustomization, selector_matches
from eh_devtools.pytest_plugin import serving
from eh_runtime.settings import NatsSettings
from sse_edge.app import create_app as create_edge
from sse_edge.settings import EdgeSettings

MONITORING = Path(__file__).parents[2] / "k8s/overlays/prod/monitoring"
METRIC = re.compile(r"\beventhandler_[a-z_]+\b")
DURATION = re.compile(r"^\d+[smhd]$")
# What the operators asked to be alerted on, by the alert that says it.
REQUIRED_ALERTS = {
    "EventHandlerEvaluatorNotAdvancing",
    "EventHandlerLiveFeedLag",
    "EventHandlerStreamOverflows",
    "EventHandlerHttp5xx",
    "EventHandlerNatsDisconnected",
}


@pytest.fixture(scope="module")
def prod(repo_root):
    return render_kustomization(repo_root / "k8s/overlays/prod")


def of_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def rules(prod) -> list[dict]:
    (rule,) = of_kind(prod, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def dashboard(prod) -> dict:
    (config_map,) = find(prod, "ConfigMap", "event-handler-grafana-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    return json.loads(config_map["data"]["event-handler.json"])


def expressions(prod) -> list[str]:
    targets = [t["expr"] for p in dashboard(prod)["panels"] for t in p.get("targets", [])]
    return [r["expr"] for r in rules(prod)] + targets


def test_the_service_monitor_and_pod_monitor_scrape_every_service_on_its_metrics_port(prod):
    (monitor,) = of_kind(prod, "ServiceMonitor")
    selected = [
        s
        for s in of_kind(prod, "Service")
        if selector_matches(monitor["spec"]["selector"], s["metadata"].get("labels", {}))
    ]
    assert sorted(s["metadata"]["name"] for s in selected) == ["collector", "sse-edge"]
    for service in selected:
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert ports >= {e["port"] for e in monitor["spec"]["endpoints"]}
    assert all(e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])
    (pod_monitor,) = of_kind(prod, "PodMonitor")
    wanted = pod_monitor["spec"]["selector"]["matchLabels"]
    (evaluator,) = [p for p in pod_templates(prod) if wanted.items() <= p.labels.items()]
    (container,) = evaluator.containers
    assert {p["name"] for p in container["ports"]} >= {
        e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]
    }


def test_the_alert_rules_are_well_formed_and_cover_what_operators_need(prod):
    found = rules(prod)
    names = [r["alert"] for r in found]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS
    for rule in found:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_promtool_accepts_the_rules_when_it_is_installed(prod, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed; the structure is checked by the test above")
    (rule,) = of_kind(prod, "PrometheusRule")
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    command = [promtool, "check", "rules", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_grafana_dashboard_is_importable(prod):
    board = dashboard(prod)
    assert board["uid"] == "event-handler"
    assert board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].count("(") == target["expr"].count(")")
    # The file in the repository is the one deployed.
    assert json.loads((MONITORING / "grafana-dashboard.json").read_text()) == board


@pytest.mark.nats
async def test_every_metric_named_is_exposed_by_the_services(prod, nats_url, tmp_path):
    nats = NatsSettings(url=nats_url, reconnect_wait=0.05)
    rules_file = Path(__file__).parents[2] / "services/alert-evaluator/src/alert_evaluator/default_rules.yaml"
    exposed: set[str] = set()
    async with (
        serving(create_collector(CollectorSettings(nats=nats))) as collector,
        serving(create_edge(EdgeSettings(nats=nats))) as edge,
        serving(create_evaluator(EvaluatorSettings(nats=nats, rules_file=rules_file))) as evaluator,
    ):
        for client in (collector, edge, evaluator):
            await client.get("/healthz")  # so that request metrics have a first sample
            text = (await client.get("/metrics")).text
            for line in text.splitlines():
                if line.startswith("# TYPE "):
                    _, _, name, kind = line.split()
                    exposed.add(name)
                    if kind == "histogram":
                        exposed |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    used = {name for expr in expressions(prod) for name in METRIC.findall(expr)}
    assert len(used) > 15
    assert used <= exposed, f"named but not exposed: {sorted(used - exposed)}"
