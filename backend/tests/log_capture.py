"""What the configured log handlers write, at DEBUG, for tests that look for secrets in it."""

from __future__ import annotations

import copy
import io
import logging
import sys
from collections.abc import Iterator
from typing import Any, cast

import pytest
from django.conf import settings
from django.utils.log import configure_logging


class RecordingHandler(logging.Handler):
    """Keeps every record it is handed and every line it writes, as a real handler would write them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


def written(handler: RecordingHandler, stdout: io.StringIO) -> str:
    """All a handler could write of its records: message, arguments, traceback, stack, and what stdout got."""
    parts = [stdout.getvalue(), *handler.lines]
    for record in handler.records:
        parts += [record.getMessage(), repr(record.args), record.exc_text or "", record.stack_info or ""]
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def stdout_handler() -> logging.Handler:
    return next(handler for handler in logging.getLogger().handlers if handler.get_name() == "stdout")


def configure_with_stdout(config: dict, stream) -> None:
    """Configure logging as Django does (its defaults, then LOGGING) with ext://sys.stdout being `stream`."""
    real_stdout, sys.stdout = sys.stdout, stream
    try:
        configure_logging(settings.LOGGING_CONFIG, config)
    finally:
        sys.stdout = real_stdout


@pytest.fixture
def debug_log() -> Iterator[tuple[RecordingHandler, io.StringIO]]:
    """LOGGING at DEBUG with one more handler named in it, configured as Django configures it; and stdout."""
    config: Any = copy.deepcopy(settings.LOGGING)
    config["handlers"]["recording"] = {"()": RecordingHandler}
    config["root"] = {"handlers": ["stdout", "recording"], "level": "DEBUG"}
    config["loggers"]["django"] = {"handlers": ["stdout", "recording"], "level": "DEBUG", "propagate": False}
    stream = cast(logging.StreamHandler, stdout_handler()).stream
    stdout = io.StringIO()
    configure_with_stdout(config, stdout)
    recording = next(handler for handler in logging.getLogger().handlers if isinstance(handler, RecordingHandler))
    yield recording, stdout
    configure_with_stdout(settings.LOGGING, stream)


@pytest.fixture
def stdout_log() -> Iterator[io.StringIO]:
    """What the configured stdout handler writes, filters included."""
    handler: Any = next(h for h in logging.getLogger("django").handlers if h.get_name() == "stdout")
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)
