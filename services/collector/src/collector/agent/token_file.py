"""AGENT_TOKEN_FILE: the agent's token, read again whenever the file changes.

Whoever issues the token (`make run`, a secret mounted by Kubernetes) renews it by replacing the
file; the agent picks the new one up at its next round, without a restart.
"""

from pathlib import Path


class TokenFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._version: tuple[int, int, int] | None = None

    def renewed(self) -> str | None:
        """The token, when the file changed since the last call (the first call: always); else None.

        Raises:
            OSError: the file cannot be read (the caller keeps the token it has).
        """
        stat = self.path.stat()
        version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if version == self._version:
            return None
        token = self.path.read_text(encoding="utf-8").strip()
        if not token:
            return None  # being rewritten in place: the next round reads it whole
        self._version = version
        return token
