import logging

import pytest
import structlog

from eh_runtime.logs import configure_logging
from eh_runtime.settings import LoggingSettings


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(("level", "shown"), [("info", False), ("debug", True)])
def test_httpx_request_lines_show_at_debug_only(level, shown):
    configure_logging("test", LoggingSettings(level=level))
    assert logging.getLogger("httpx").isEnabledFor(logging.INFO) is shown
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
