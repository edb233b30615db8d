"""The request id travels in a context variable so every log line can name it."""

import logging
import re

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


# A keyscope key anywhere in a log line (a client that put one in a URL, say).
KEY_PATTERN = re.compile(r"ks[dg]_[0-9A-Za-z]{38}")


def redact(text: str) -> str:
    return KEY_PATTERN.sub(lambda match: match.group(0)[:4] + "[redacted]", text)


class RedactKeysFilter(logging.Filter):
    """The application never logs a key it received (CONTRACT §3), whatever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True
