"""Files the dev tools write secrets into (NATS passwords, the host agent's token).

Each is written whole to a new file beside it and renamed over it: a reader (the host agent reading
its renewed token, a service reading its password) sees the old file or the new one, never half of
one. The mode is set on the new file before the secret is in it, exactly (the umask does not apply).
"""

import os
import tempfile
from pathlib import Path


def write_secret_file(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace `path` with `text`, the file readable as `mode` says (by its owner only by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own (mkstemp: created 0600, never an existing file), so that two writers at once
    # cannot write into the same new file.
    descriptor, fresh = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), mode)
            file.write(text)
        os.replace(fresh, path)
    except BaseException:
        Path(fresh).unlink(missing_ok=True)
        raise
