"""The SSE wire format (pure)."""

from sse_edge.http import sse_frames
from sse_edge.http.sse_frames import BurstFrames, event_frame


def test_a_burst_is_framed_as_its_events_one_by_one():
    events = [
        ("41", "events.node_status.n1", b'{"a":1}'),
        ("42", "events.system_log.n1", b'{"b":2}'),
        ("107", "events.node_status.n2", b'{"c":\n3}'),  # not one line: split into data lines
        ("108", "events.node_status.n1", b'{"d":\r\n4}'),
    ]
    frames = BurstFrames()
    expected = b"".join(event_frame(int(seq), subject.split(".")[1], data) for seq, subject, data in events)
    assert frames(events) == expected
    assert frames(events[:1]) == b'id: 41\nevent: node_status\ndata: {"a":1}\n\n'  # heads kept
    assert frames([]) == b""


def test_an_event_frame_is_the_same_whether_its_head_was_kept_or_not():
    first = event_frame(7, "node_status", b'{"a":1}')
    assert first == b'id: 7\nevent: node_status\ndata: {"a":1}\n\n'
    assert event_frame(7, "node_status", b'{"a":1}') == first  # from the kept head
    assert (
        event_frame(8, "node_status", b'{"a":\r\n1}')
        == b'id: 8\nevent: node_status\ndata: {"a":\ndata: 1}\n\n'
    )


def test_the_kept_heads_stop_growing_and_frames_stay_right():
    """Types come from stored subjects, which any publisher chooses: the cache is bounded."""
    for n in range(sse_frames._HEADS_MAX + 50):
        assert event_frame(n, f"t{n}", b"{}") == b"id: %d\nevent: t%d\ndata: {}\n\n" % (n, n)
    assert len(sse_frames._HEADS) <= sse_frames._HEADS_MAX
