"""The `eh` claim and the narrowing of filters to it: no served filter reaches outside a grant."""

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eh_contracts.event_types import EventType
from eh_contracts.subjects import SubjectFilter
from eh_runtime.auth.claims import DEVELOPMENT_PRINCIPAL, Grant, InvalidClaim, OutsideGrant, Principal

RESOURCES = ["node-1", "node-2", "node-22", "ci-7", "ci:8", "web_1", "x"]
PATTERNS = [*RESOURCES, "node-*", "ci*", "*-2*", "*"]
types = st.sampled_from(list(EventType))
grants = st.builds(
    Grant.parse,
    st.just("subscribe"),
    st.fixed_dictionaries(
        {
            "types": st.one_of(
                st.just(["*"]), st.lists(types.map(lambda t: t.value), min_size=1, max_size=4)
            ),
            "resources": st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3),
        }
    ),
)
filters = st.builds(
    SubjectFilter.of,
    st.lists(types, max_size=3),
    st.lists(st.sampled_from(RESOURCES), max_size=3),
)
events = st.tuples(types, st.sampled_from(RESOURCES))


def subject_covers(subject: str, event_type: EventType, resource_id: str) -> bool:
    """NATS wildcard semantics, for the subjects a replay or history read asks JetStream for."""
    want = f"events.{event_type.value}.{resource_id}".split(".")
    tokens = subject.split(".")
    if tokens[-1] == ">":
        return want[: len(tokens) - 1] == tokens[:-1]
    return len(tokens) == len(want) and all(t in ("*", w) for t, w in zip(tokens, want, strict=True))


@given(grants, filters, events)
def test_a_served_filter_never_selects_an_event_outside_the_grant(grant, requested, event):
    try:
        served = grant.narrow(requested)
    except OutsideGrant:
        return
    event_type, resource_id = event
    if served.matches(event_type, resource_id) or any(
        subject_covers(s, event_type, resource_id) for s in served.subjects
    ):
        assert grant.permits(event_type, resource_id)


@given(grants, filters)
def test_a_request_inside_the_grant_is_served_as_asked(grant, requested):
    inside = all(grant.permits_type(t) for t in requested.types) and all(
        grant.permits_resource(r) for r in requested.resource_ids
    )
    if inside and requested.types and requested.resource_ids:
        assert grant.narrow(requested) == requested
    if not inside:
        with pytest.raises(OutsideGrant):
            grant.narrow(requested)


@given(grants, st.sampled_from(RESOURCES))
def test_resource_patterns_match_like_shell_globs(grant, resource_id):
    expected = any(fnmatch.fnmatchcase(resource_id, p) for p in grant.resources)
    assert grant.permits_resource(resource_id) == expected


def test_an_open_dimension_becomes_the_grants_list():
    grant = Grant.parse("subscribe", {"types": ["node_status"], "resources": ["node-1", "node-2"]})
    served = grant.narrow(SubjectFilter())
    assert served == SubjectFilter.of(["node_status"], ["node-1", "node-2"])


def test_all_resources_under_a_pattern_grant_is_refused_with_the_parameter():
    grant = Grant.parse("subscribe", {"resources": ["node-*"]})
    with pytest.raises(OutsideGrant) as refused:
        grant.narrow(SubjectFilter.of(["node_status"]))
    assert refused.value.parameter == "resource_id"
    assert "node-*" in refused.value.message
    assert grant.narrow(SubjectFilter.of([], ["node-4"])) == SubjectFilter.of([], ["node-4"])


def test_a_type_outside_the_grant_names_the_type():
    grant = Grant.parse("subscribe", {"types": ["node_status"]})
    with pytest.raises(OutsideGrant) as refused:
        grant.narrow(SubjectFilter.of(["system_alert"]))
    assert refused.value.parameter == "type"
    assert "system_alert" in refused.value.message


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({}, "sub"),
        ({"sub": "a", "eh": []}, "object"),
        ({"sub": "a", "eh": {"read": {}}}, "unknown keys: read"),
        ({"sub": "a", "eh": {"subscribe": {"types": ["bogus"]}}}, "eh.subscribe.types"),
        ({"sub": "a", "eh": {"subscribe": {"types": []}}}, "empty"),
        ({"sub": "a", "eh": {"publish": {"resources": ["node.>"]}}}, "eh.publish.resources"),
        ({"sub": "a", "eh": {"admin": "yes"}}, "eh.admin"),
    ],
)
def test_malformed_claims_are_refused_with_what_is_wrong(claims, message):
    with pytest.raises(InvalidClaim, match=message):
        Principal.from_claims(claims)


def test_absent_sections_grant_nothing():
    principal = Principal.from_claims({"sub": "reader", "eh": {"subscribe": {"types": "*"}}})
    assert principal.subscribe is not None
    assert principal.subscribe.permits("node_status", "anything")
    assert principal.publish is None
    assert not principal.admin


@given(grants, events)
def test_a_grant_that_permits_all_permits_every_event(grant, event):
    if grant.permits_all:
        assert grant.permits(*event)


def test_only_unrestricted_grants_permit_all():
    assert DEVELOPMENT_PRINCIPAL.publish is not None
    assert DEVELOPMENT_PRINCIPAL.publish.permits_all
    assert Grant.parse("publish", {}).permits_all
    assert not Grant.parse("publish", {"types": ["node_status"]}).permits_all
    assert not Grant.parse("publish", {"resources": ["node-*"]}).permits_all
