from eh_contracts.event_types import EventKind, EventType


def test_each_type_says_what_it_reports():
    assert EventType.of_kind(EventKind.STATUS) == {
        EventType.NODE_STATUS,
        EventType.PIPELINE_STATUS,
        EventType.CONTAINER_STATUS,
    }
    assert EventType.of_kind(EventKind.METRICS) == {EventType.NODE_METRICS, EventType.CONTAINER_METRICS}
    assert EventType.SYSTEM_ALERT.kind is EventKind.ALERT
    assert EventType.PIPELINE_PROGRESS.kind is EventKind.PROGRESS
    assert EventType.SYSTEM_LOG.kind is EventKind.LOG
    assert {t.resource for t in EventType} == {"node", "pipeline", "container", "system"}


def test_every_type_has_exactly_one_kind():
    assert sorted(t for kind in EventKind for t in EventType.of_kind(kind)) == sorted(EventType)
