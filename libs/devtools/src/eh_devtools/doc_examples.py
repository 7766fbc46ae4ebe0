"""Runnable examples in the documentation: how they are marked, found, and compared.

A fenced code block is an example when the line before it is an HTML comment (invisible on the
site and on GitHub):

- `<!-- run -->`: run it to completion (`sh` with bash, `python` with the workspace's Python);
  it must exit 0.
- `<!-- run: background -->`: start it and leave it running, like a command in another terminal
  (`curl -N` on an event stream).
- `<!-- output -->`: what the last `run` block printed.
- `<!-- output: background -->`: how the output of the last background block begins; the test
  waits for it, then stops that block.
- `<!-- output: make-run -->`: lines `make run` prints.

In an output, `…` stands for anything (an id, a time, a sequence number, or whole lines): the rest
must match exactly. The examples of one page run in order, against one stack that `make run`
would start; `localhost:8000` and the other ports of `make run` are replaced by the test stack's.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_MARKER: Final = re.compile(r"^<!--\s*(run|output)(?::\s*([a-z-]+))?\s*-->\s*$")
_FENCE: Final = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
WILDCARD: Final = "…"
KINDS: Final = {("run", None), ("run", "background"), ("output", None), ("output", "background"),
                ("output", "make-run")}  # fmt: skip


class ExampleSyntaxError(ValueError):
    """A marker that is not one of the known ones, or not followed by a fenced block."""


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # of the opening fence, 1-based
    action: str  # run | output
    mode: str | None  # None | background | make-run
    language: str
    code: str

    def __str__(self) -> str:
        mode = f": {self.mode}" if self.mode else ""
        return f"{self.path.name}:{self.line} ({self.action}{mode})"


def examples(path: Path) -> list[Example]:
    """The marked examples of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Example] = []
    for index, line in enumerate(lines):
        marker = _MARKER.match(line.strip())
        if marker is None:
            if re.match(r"^<!--\s*(run|output)\b", line.strip()):
                raise ExampleSyntaxError(f"{path}:{index + 1}: malformed example marker {line.strip()!r}")
            continue
        action, mode = marker[1], marker[2]
        if (action, mode) not in KINDS:
            raise ExampleSyntaxError(f"{path}:{index + 1}: unknown example marker {line.strip()!r}")
        fence = _FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
        if fence is None:
            raise ExampleSyntaxError(f"{path}:{index + 1}: {line.strip()!r} is not followed by a ``` block")
        end = next(
            (i for i in range(index + 2, len(lines)) if lines[i].strip() == fence[1]),
            None,
        )
        if end is None:
            raise ExampleSyntaxError(f"{path}:{index + 2}: the code block never closes")
        code = "\n".join(lines[index + 2 : end]) + "\n"
        found.append(Example(path, index + 2, action, mode, fence[2] or "text", code))
    return found


def pattern(expected: str) -> re.Pattern[str]:
    """`expected` as a regular expression: literal text, `…` for anything.

    A line that is only `…` stands for any number of lines, none included; a `…` inside a line
    for any text, which may run over several lines.
    """
    regex = []
    for line in normalize(expected).split("\n"):
        if line.strip() == WILDCARD:
            regex.append(r"(?s:(?:.*?\n)?)")
        else:
            regex.append("(?s:.*?)".join(re.escape(part) for part in line.split(WILDCARD)) + r"\n")
    return re.compile("".join(regex))


def normalize(text: str) -> str:
    """Trailing spaces and the trailing blank lines do not count."""
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def matches(expected: str, actual: str) -> bool:
    """The whole of `actual` is `expected`."""
    return pattern(expected).fullmatch(normalize(actual) + "\n") is not None


def begins_with(expected: str, actual: str) -> bool:
    """`actual` starts with `expected` (an event stream goes on after what the docs show)."""
    return pattern(expected).match(normalize(actual) + "\n") is not None


def contains(expected: str, actual: str) -> bool:
    """`expected` appears somewhere in `actual` (lines among a program's other output)."""
    return pattern(expected).search(normalize(actual) + "\n") is not None
