"""What every entry point does with its command line: `--help` (with the environment variables it
reads, from its settings model), `--version`, and exit status 2 with the usage for anything else.

The services are configured by environment variables only; the command line is for people.
"""

import argparse
import importlib.metadata
import textwrap

from pydantic_settings import BaseSettings

from eh_runtime.settings import settings_variables

_WIDTH = 100


def command_line(
    prog: str, description: str, settings: type[BaseSettings], distribution: str
) -> argparse.ArgumentParser:
    """The parser of an entry point; `parse_args` answers `--help` and `--version` and exits."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=environment_help(settings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-V", "--version", action="version", version=f"%(prog)s {importlib.metadata.version(distribution)}"
    )
    return parser


def environment_help(settings: type[BaseSettings]) -> str:
    """The environment variables `settings` reads, with defaults and meaning, as help text."""
    variables = settings_variables(settings)
    width = max(len(v.name) for v in variables) + 2
    lines = ["environment variables (default in brackets):"]
    for variable in variables:
        text = f"{variable.description} [{variable.default}]" if variable.default else variable.description
        text = text.strip()
        wrapped = textwrap.wrap(text, _WIDTH - width - 2) or [""]
        lines.append(f"  {variable.name:<{width}}{wrapped[0]}")
        lines += [f"  {'':<{width}}{more}" for more in wrapped[1:]]
    return "\n".join(lines)
