"""The id of the request being served, in a context variable: set by the middleware, read by log lines and runners."""

from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
