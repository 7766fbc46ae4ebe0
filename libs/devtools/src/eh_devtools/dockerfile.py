"""Reading a Dockerfile and its build context offline, as `docker build` would see them.

No Docker engine here: the Dockerfile's stages and instructions are parsed (dockerfile-parse),
and the build context is computed with Docker's own `.dockerignore` rules, so a test can check
that every COPY finds its sources and can run a stage's commands against the same files.
"""

import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


@dataclass
class Stage:
    """One `FROM … AS name` stage and its instructions."""

    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def values(self, keyword: str) -> list[str]:
        return [i.value for i in self.instructions if i.keyword == keyword]

    @property
    def cmd(self) -> list[str]:
        """The CMD, which must be in exec form (a JSON array): no shell between the service and
        its SIGTERM."""
        (value,) = self.values("CMD")
        command: list[str] = json.loads(value)
        return command

    @property
    def environment(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for value in self.values("ENV"):
            for pair in shlex.split(value):
                key, _, val = pair.partition("=")
                found[key] = val
        return found


@dataclass(frozen=True)
class Copy:
    """A COPY: from the build context, or `--from` another stage or image."""

    sources: list[str]
    destination: str
    from_stage: str | None


@dataclass
class Dockerfile:
    arguments: dict[str, str]
    stages: dict[str, Stage]

    def stage(self, name: str) -> Stage:
        return self.stages[name]

    def lineage(self, name: str) -> list[Stage]:
        """The stage and the stages it is built FROM, nearest first."""
        chain = [self.stages[name]]
        while chain[-1].base in self.stages:
            chain.append(self.stages[chain[-1].base])
        return chain

    def copies(self, stage: Stage) -> list[Copy]:
        found = []
        for value in stage.values("COPY"):
            words = shlex.split(value)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            found.append(Copy(sources=paths[:-1], destination=paths[-1], from_stage=from_stage))
        return found


def read_dockerfile(path: Path) -> Dockerfile:
    parser = DockerfileParser(path=str(path))
    arguments: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for item in parser.structure:
        keyword, value = item["instruction"], item["value"]
        if keyword == "COMMENT":
            continue
        if keyword == "ARG" and current is None:
            name, _, default = value.partition("=")
            arguments[name] = default
        elif keyword == "FROM":
            parts = re.split(r"\s+as\s+", value, flags=re.IGNORECASE)
            base = _substitute(parts[0], arguments)
            name = parts[1] if len(parts) > 1 else base
            current = stages[name] = Stage(name=name, base=base)
        elif current is not None:
            current.instructions.append(Instruction(keyword, value))
    return Dockerfile(arguments=arguments, stages=stages)


def run_command(value: str) -> str:
    """The shell command of a RUN, without its `--mount`/`--network` flags."""
    words = value.split()
    while words and words[0].startswith("--"):
        words.pop(0)
    return " ".join(words)


def build_context(root: Path) -> list[str]:
    """The files (relative, `/`-separated) `docker build root` sends, after `.dockerignore`."""
    ignore = root / ".dockerignore"
    patterns = _read_patterns(ignore) if ignore.exists() else []
    files: list[str] = []
    for directory, subdirectories, names in os.walk(root):
        relative_directory = Path(directory).relative_to(root).as_posix()
        prefix = "" if relative_directory == "." else f"{relative_directory}/"
        subdirectories[:] = [d for d in sorted(subdirectories) if not _prunable(f"{prefix}{d}", patterns)]
        files += [f"{prefix}{n}" for n in sorted(names) if not _excluded(f"{prefix}{n}", patterns)]
    return files


def copy_context(root: Path, destination: Path) -> None:
    """Materialize the build context of `root` in `destination`."""
    for relative in build_context(root):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exception: bool
    segments: tuple[str, ...]


def _read_patterns(path: Path) -> list[_Pattern]:
    patterns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        text = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        patterns.append(_Pattern(_to_regex(text), exception, tuple(text.split("/"))))
    return patterns


def _to_regex(pattern: str) -> re.Pattern[str]:
    # Docker's (Go's filepath.Match plus `**`): `*` and `?` stay inside one path segment, `**`
    # crosses any number of them.
    if "[" in pattern:
        raise ValueError(f".dockerignore pattern {pattern!r}: character classes are not supported here")
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(f"{out}$")


def _matches(pattern: _Pattern, path: str) -> bool:
    # A pattern applies to a path when it matches the path or one of its parent directories.
    segments = path.split("/")
    return any(pattern.regex.match("/".join(segments[: n + 1])) for n in range(len(segments)))


def _excluded(path: str, patterns: list[_Pattern]) -> bool:
    excluded = False
    for pattern in patterns:
        if _matches(pattern, path):
            excluded = not pattern.exception
    return excluded


def _prunable(directory: str, patterns: list[_Pattern]) -> bool:
    """An excluded directory that no exception pattern can reach into is not walked at all."""
    if not _excluded(directory, patterns):
        return False
    segments = directory.split("/")
    for pattern in patterns:
        if not pattern.exception:
            continue
        if "**" in pattern.segments or all(
            _to_regex(p).match(s) for p, s in zip(pattern.segments, segments, strict=False)
        ):
            return False
    return True


def _substitute(text: str, arguments: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: arguments.get(m[1], m[0]), text)
