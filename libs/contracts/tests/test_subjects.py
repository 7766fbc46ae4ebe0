import pytest

from eh_contracts.event_types import EventType
from eh_contracts.subjects import (
    InvalidResourceId,
    SubjectFilter,
    event_subject,
    parse_event_subject,
    validate_resource_id,
)


def test_subject_is_events_type_resource():
    assert event_subject(EventType.NODE_STATUS, "node-001") == "events.node_status.node-001"
    assert event_subject("system_alert", "alert:cpu:node_7") == "events.system_alert.alert:cpu:node_7"


def test_subject_parses_back():
    assert parse_event_subject("events.pipeline_progress.pipeline-9") == (
        EventType.PIPELINE_PROGRESS,
        "pipeline-9",
    )


@pytest.mark.parametrize(
    "subject", ["events.node_status", "events.node_status.a.b", "other.node_status.a", "events.nope.a"]
)
def test_non_event_subjects_do_not_parse(subject):
    with pytest.raises(ValueError, match=r"not an event subject|nope"):
        parse_event_subject(subject)


def test_unknown_type_has_no_subject():
    with pytest.raises(ValueError, match="nope"):
        event_subject("nope", "node-1")


@pytest.mark.parametrize(
    ("resource_id", "message"),
    [
        ("", "empty"),
        ("a.b", "'.'"),
        ("*", "'*'"),
        (">", "'>'"),
        ("node 1", "' '"),
        ("node\t1", "'\\t'"),
        ("x" * 129, "129 characters"),
    ],
)
def test_resource_ids_that_are_not_one_subject_token_are_rejected(resource_id, message):
    with pytest.raises(InvalidResourceId) as caught:
        validate_resource_id(resource_id)
    assert message in str(caught.value)


def test_resource_id_limits_are_inclusive():
    assert validate_resource_id("x" * 128) == "x" * 128
    assert validate_resource_id("A-z_0:9") == "A-z_0:9"


def test_no_filter_is_every_event():
    assert SubjectFilter().subjects == ["events.>"]


def test_filter_subjects_are_the_product_of_types_and_resources():
    assert SubjectFilter.of(types=["node_status"]).subjects == ["events.node_status.*"]
    assert SubjectFilter.of(resource_ids=["n1", "n2"]).subjects == ["events.*.n1", "events.*.n2"]
    assert SubjectFilter.of(["node_status", "node_metrics"], ["n2", "n1"]).subjects == [
        "events.node_metrics.n1",
        "events.node_metrics.n2",
        "events.node_status.n1",
        "events.node_status.n2",
    ]


@pytest.mark.parametrize(
    ("types", "resource_ids"),
    [([">"], []), (["*"], []), (["node_status.*"], []), ([], ["*"]), ([], [">"]), ([], ["n1.>"])],
)
def test_user_input_never_becomes_a_wildcard(types, resource_ids):
    with pytest.raises(ValueError):  # noqa: PT011 - either kind of invalid value
        SubjectFilter.of(types, resource_ids)


def test_filter_matching_agrees_with_its_subjects():
    f = SubjectFilter.of(["node_status"], ["n1"])
    assert f.matches("node_status", "n1")
    assert not f.matches("node_status", "n2")
    assert not f.matches("node_metrics", "n1")
    assert SubjectFilter().matches("system_log", "anything")
    assert SubjectFilter.of(resource_ids=["n1"]).matches(EventType.SYSTEM_ALERT, "n1")


def test_filter_describes_itself_sorted():
    f = SubjectFilter.of(["system_log", "node_status"], ["b", "a"])
    assert f.describe() == {"type": ["node_status", "system_log"], "resource_id": ["a", "b"]}
