"""The SSE wire format (pure)."""

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
