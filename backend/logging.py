"""The request id travels in a context variable so every log line can name it."""

import logging

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


class RedactKeysFilter(logging.Filter):
    """The application never logs a key it received, whatever logged it.

    A UUID cannot be told from a key id by its shape, so it is redacted from every
    line that keyscope does not write itself (Django's request and SQL logs, say);
    keyscope's own lines keep the key ids they name.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message, uuids=not record.name.startswith(OWN_LOGGERS))
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True
