"""The request id travels in a context variable so every log line can name it."""

import logging
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id == "-":
            # Django logs "Not Found: ..." and other 4xx/5xx lines after the
            # middleware chain has returned, but passes the request along.
            request_id = getattr(getattr(record, "request", None), "request_id", None) or "-"
        record.request_id = request_id
        return True
