"""How the docs' examples are found and compared, and how generated defaults are written."""

from datetime import timedelta

import pytest

from eh_devtools.doc_examples import ExampleSyntaxError, begins_with, contains, examples, matches
from eh_runtime.settings import duration_text, size_text


def test_an_ellipsis_stands_for_text_inside_a_line():
    assert matches('{"id":"…","seq":…}', '{"id":"9c0e","seq":41}')
    assert not matches('{"id":"…","seq":4}', '{"id":"9c0e","seq":41}')


def test_a_line_of_only_an_ellipsis_stands_for_any_number_of_lines():
    assert matches("a\n…\nb", "a\nb")
    assert matches("a\n…\nb", "a\nx\ny\nb")
    assert not matches("a\n…\nb", "a\nx\nc")


def test_trailing_spaces_and_blank_lines_do_not_count_but_everything_else_does():
    assert matches("a\n\nb", "a  \n\nb\n\n")
    assert not matches("a\nb", "a\n\nb")


def test_a_stream_is_compared_by_its_beginning_and_a_log_by_what_it_contains():
    assert begins_with("retry: 3000\n\nevent: x", "retry: 3000\n\nevent: x\n\n: heartbeat")
    assert not begins_with("event: x", "retry: 3000\n\nevent: x")
    assert contains("Ctrl-C stops everything.", "started\nCtrl-C stops everything.\nmore")


def test_markers_are_read_with_the_block_that_follows(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n<!-- run: background -->\n```sh\ncurl -N x\n```\n<!-- output -->\n```\nok\n```\n")
    found = examples(page)
    assert [(e.action, e.mode, e.language, e.code) for e in found] == [
        ("run", "background", "sh", "curl -N x\n"),
        ("output", None, "text", "ok\n"),
    ]


@pytest.mark.parametrize(
    "text",
    ["<!-- run: later -->\n```sh\nx\n```\n", "<!-- run -->\n\n```sh\nx\n```\n", "<!-- output -->\n```\nx\n"],
)
def test_a_marker_that_is_wrong_or_not_followed_by_a_block_is_an_error(tmp_path, text):
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(ExampleSyntaxError):
        examples(page)


def test_defaults_are_written_as_a_user_writes_them():
    assert duration_text(timedelta(days=30)) == "30d"
    assert duration_text(timedelta(minutes=2)) == "2m"
    assert duration_text(timedelta(milliseconds=250)) == "250ms"
    assert duration_text(timedelta(0)) == "0s"
    assert size_text(10 * 2**30) == "10GiB"
    assert size_text(1000) == "1000"
