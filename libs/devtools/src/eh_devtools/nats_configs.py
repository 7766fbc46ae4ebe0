"""The deployments' NATS configuration files carry the permission table of `nats_identities`.

Each file below has one `authorization { ... }` block, rendered by `authorization_block()` with
`$EH_NATS_<IDENTITY>_PASSWORD` references (Kubernetes sets them from the Secret nats-identities,
Compose defines them in the included secret `identities.conf`). The table is the code the
permission tests run against a real server; `make lint` fails when a file's block differs.

    python -m eh_devtools.nats_configs write    # after changing the permission table
    python -m eh_devtools.nats_configs check    # exit status 1 when a file is stale
"""

import re
import sys
from pathlib import Path
from typing import Final

from eh_devtools.nats_identities import authorization_block

DEPLOYED_CONFIGS: Final = (
    Path("k8s/base/nats/nats.conf"),
    Path("k8s/overlays/prod/nats.conf"),
    Path("compose/nats.conf"),
)

# From a line `authorization {` to the first line that is a lone `}`: the block as rendered.
_BLOCK_RE: Final = re.compile(r"^authorization \{\n.*?^\}\n", re.DOTALL | re.MULTILINE)


def with_current_block(config: str, where: Path) -> str:
    """`config` with its authorization block replaced by the one the table renders today.

    Raises:
        ValueError: `config` has no authorization block, or more than one.
    """
    blocks = _BLOCK_RE.findall(config)
    if len(blocks) != 1:
        raise ValueError(f"{where}: expected one `authorization {{` block, found {len(blocks)}")
    return _BLOCK_RE.sub(lambda _: authorization_block(), config)


def stale(root: Path) -> list[Path]:
    """The deployed configuration files whose authorization block is not the table's."""
    return [
        path
        for path in DEPLOYED_CONFIGS
        if (text := (root / path).read_text(encoding="utf-8")) != with_current_block(text, path)
    ]


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path()
    command = argv[0] if argv else ""
    if command == "write":
        for path in DEPLOYED_CONFIGS:
            text = (root / path).read_text(encoding="utf-8")
            (root / path).write_text(with_current_block(text, path), encoding="utf-8")
        return 0
    if command == "check":
        outdated = stale(root)
        for path in outdated:
            print(f"{path}: its NATS permissions differ from eh_devtools.nats_identities", file=sys.stderr)
        if outdated:
            print("run `make manifests`", file=sys.stderr)
        return 1 if outdated else 0
    print("usage: python -m eh_devtools.nats_configs {write|check} [repository root]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
