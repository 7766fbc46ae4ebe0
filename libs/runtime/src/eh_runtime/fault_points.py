"""Crash points for fault tests: the process dies at a named point as if killed with SIGKILL.

`EH_FAULT_POINT=<name>` in the environment arms one point; nothing else does, so production runs
never stop here. A test starts a service as a subprocess with the variable set, lets it reach
the point, and checks what a restart makes of the half-done step (no lease released, no buffer
flushed, no `finally` run: exactly a kill -9 at that instruction).
"""

import os
from typing import Final

_ARMED: Final = os.environ.get("EH_FAULT_POINT")
_KILLED_STATUS: Final = 137  # what a shell reports for SIGKILL


def crash_point(name: str) -> None:
    """Exit at once when `EH_FAULT_POINT` names this point."""
    if name == _ARMED:
        os._exit(_KILLED_STATUS)
