"""Log plumbing: every line names its request, and no line holds a key."""

import logging
import logging.config
from typing import Any

from keys import crypto
from lib.request_id import request_id_var


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id == "-":
            # Django logs "Not Found: ..." and other 4xx/5xx lines after the
            # middleware chain has returned, but passes the request along.
            request_id = getattr(getattr(record, "request", None), "request_id", None) or "-"
        record.request_id = request_id
        return True


# keyscope's own log lines name keys by their ids, which are UUIDs too; they never hold a key.
OWN_LOGGERS = "keyscope."


def redact(text: str, *, uuids: bool = True) -> str:
    """`text` without any key: a keyscope key (a client that put one in a URL, say) and, unless
    `uuids` is false, anything shaped like an imported UUID key."""
    text = crypto.KEYSCOPE_KEY_IN_TEXT.sub(lambda match: match.group(0)[:4] + "[redacted]", text)
    if uuids:
        text = crypto.UUID_KEY_IN_TEXT.sub("[redacted uuid]", text)
    return text


_TRACEBACKS = logging.Formatter()


class RedactKeysFilter(logging.Filter):
    """The application never logs a key, whatever logged it and however.

    The message, the traceback and the stack are redacted on the record itself,
    so no handler or formatter can write them unredacted. The traceback is
    formatted here and the exception dropped from the record: a handler that
    renders `exc_info` itself would show what the exception holds (Django's
    template engine raises with the repr of a whole template context).

    A UUID cannot be told from a key id by its shape, so it is redacted from every
    line that keyscope does not write itself (Django's request and SQL logs, say);
    keyscope's own lines keep the key ids they name.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        uuids = not record.name.startswith(OWN_LOGGERS)
        try:
            message, formatted = record.getMessage(), True
        except Exception:  # noqa: BLE001  (logging's own report would print the raw arguments)
            message, formatted = f"{record.msg} (arguments that do not fit: {record.args!r})", False
        redacted = redact(message, uuids=uuids)
        if redacted != message or not formatted:
            record.msg, record.args = redacted, None
        if record.exc_info:
            record.exc_text = record.exc_text or _TRACEBACKS.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, uuids=uuids)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, uuids=uuids)
        return True


_REDACT_KEYS = RedactKeysFilter()


def configure(config: dict[str, Any]) -> None:
    """LOGGING_CONFIG: `dictConfig`, then the key redaction on every handler of every logger.

    Handlers that LOGGING does not name are covered too: Django's defaults
    (runserver's request lines on `django.server`) and any a setting adds.
    """
    logging.config.dictConfig(config)
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):  # placeholders have none
            if _REDACT_KEYS not in handler.filters:
                handler.addFilter(_REDACT_KEYS)
