import io
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings
from rest_framework import exceptions, parsers, status
from rest_framework.exceptions import ParseError

# Deeper documents parse, but Python's recursion limit then breaks whatever
# encodes them again (the database adapter, the renderer) with a 500.
MAX_JSON_DEPTH = 100
TOO_DEEP = "JSON parse error - the document is nested too deeply."


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def check_body_size(declared_length: Any, body: bytes | None = None) -> None:
    """413 when the declared Content-Length, or the body itself, is over KEYSCOPE_MAX_BODY_BYTES."""
    limit = settings.KEYSCOPE_MAX_BODY_BYTES
    try:
        declared = int(declared_length or 0)
    except ValueError:
        declared = 0
    if declared > limit or (body is not None and len(body) > limit):
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")


def check_shape(data: Any) -> None:
    """Bounded nesting and finite numbers (`1e999` parses as infinity, which JSON cannot hold)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ParseError("JSON parse error - numbers must be finite.")
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ParseError(TOO_DEEP)
            stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))


# Only a \u escape puts a surrogate in a parsed document, and a pair of them decodes to one character.
_UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")


def _strings(data: Any) -> Iterator[str]:
    """Every string of a parsed JSON document, object keys included."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            yield value


def check_encodable(data: Any) -> None:
    """An unpaired surrogate cannot be written as UTF-8: every message that echoed it would be a 500."""
    if any(_UNPAIRED_SURROGATE.search(value) for value in _strings(data)):
        raise ParseError("JSON parse error - strings may not contain unpaired surrogates.")


def check_storable(data: Any) -> None:
    """Strings PostgreSQL's jsonb refuses (NUL, unpaired surrogates) are a 400, not a 500 at save time."""
    if any("\x00" in value or _UNPAIRED_SURROGATE.search(value) for value in _strings(data)):
        raise ParseError("JSON parse error - strings may not contain NUL characters or unpaired surrogates.")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with the body size and nesting bounded: 413 or 400 instead of a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        request = (parser_context or {}).get("request")
        check_body_size(request.META.get("CONTENT_LENGTH") if request is not None else None)
        body = stream.read(settings.KEYSCOPE_MAX_BODY_BYTES + 1)
        check_body_size(None, body)
        try:
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        check_shape(data)
        if b"\\u" in body:
            check_encodable(data)
        return data
