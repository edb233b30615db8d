"""Odd `Accept`, `?format=`, credentials, bodies and query strings on every operation: never a 500,
always JSON in the contract's error shape.

The operations, their body fields and query parameters come from the OpenAPI
schema, so a new route or field is fuzzed without being listed here. Each
request runs in a transaction rolled back after it, so every one meets the
same data.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

import pytest
from django.db import transaction
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from backend.tests.log_capture import written
from deployments.services import group_create
from keys.tests.helpers import basic, execute
from organizations.tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

# In a JSON body any string can arrive, unpaired surrogates included (as \u escapes).
ODD_STRINGS = {"nul": "a\x00b", "high-surrogate": "\ud800", "low-surrogate": "z\udfff"}
# In a header or a URL only bytes arrive: the server reads header bytes as latin-1, so a
# surrogate comes as the UTF-8 bytes that would encode one.
ODD_HEADER_TEXT = {
    "nul": "\x00",
    "utf8-of-a-surrogate": "\xed\xa0\x80",
    "nbsp": "\xa0",
    "nel": "\x85",
    "del": "\x7f",
    "latin1": "\xff\xfe",
}
ODD_QUERY_TEXT = {"nul": "a%00b", "utf8-of-a-surrogate": "%ED%A0%80", "invalid-utf8": "%FF%FE"}
ODD_ACCEPTS = ["text/html", "application/xml", "image/png;q=1, */*;q=0", "application/json; indent=x", "\x00",
               "application/json;q=0", "*/*;q=abc", "x" * 10_000, "\xed\xa0\x80"]
GITHUB_SCHEME = "githubSecretScanningSignature"
SIGN_WITH = "sign-with"  # in a request's headers: the GitHub signer whose signature call() adds
ODD_FORMATS = ["x", "api", "html", "yaml", "openapi", "%00", "%ED%A0%80", "json%00"]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # with `{…}` path parameters
    key_auth: bool  # a client API operation (a key); else the management API (a user)
    anonymous: bool  # no credentials at all (the leak report endpoint): there is nothing to refuse
    signed: bool  # GitHub's secret scanning alerts: the body's signature is the credential
    body_fields: tuple[str, ...] | None  # None: no body; (): any JSON object
    query: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@cache
def operations() -> tuple[Operation, ...]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    found = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is None:
                fields = None
            elif "$ref" in body:
                fields = tuple(components[body["$ref"].rsplit("/", 1)[1]].get("properties", {}))
            else:
                fields = ()
            schemes = {name for requirement in operation.get("security", []) for name in requirement}
            query = tuple(parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "query")
            key_auth = not schemes & {"basicAuth", "cookieAuth"}
            signed = GITHUB_SCHEME in schemes
            found.append(Operation(method.upper(), path, key_auth, not schemes, signed, fields, query))
    return tuple(found)


@pytest.fixture
def world(settings, github, admin_a, deployment_a1, deployment_key_a1, global_all_key_a):
    """What the requests name: org A's objects, a working key and a working login; no throttling in the way."""
    settings.KEYSCOPE_FAILED_AUTH_PER_MINUTE = 0
    settings.KEYSCOPE_LOGIN_FAILURES_PER_MINUTE = settings.KEYSCOPE_LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE = 10**6
    settings.KEYSCOPE_CREDENTIAL_REPORTS_PER_MINUTE = 0
    execution_id = execute(Client(), "org-a", "a-one", global_all_key_a[1]).json()["execution_id"]
    # `{slug}` names a-one everywhere: a group of that slug too, for groups/{slug}/.
    group_create(organization=deployment_a1.organization, slug="a-one", name="A one's group", deployments=[deployment_a1], actor=None)
    return {
        "names": {"org_slug": "org-a", "deployment_slug": "a-one", "slug": "a-one", "execution_id": execution_id},
        "deployment_key_id": str(deployment_key_a1[0].pk),
        "global_key_id": str(global_all_key_a[0].pk),
        "key": global_all_key_a[1],
        "user": admin_a.username,
        "github": github,
    }


def url_of(operation: Operation, world: dict, **names: str) -> str:
    """The operation's path, naming org A's objects or what `names` says."""
    key_id = world["global_key_id" if "/global-keys/" in operation.path else "deployment_key_id"]
    return operation.path.format(**{**world["names"], "id": key_id, **names})


def credentials(operation: Operation, world: dict) -> dict[str, Any]:
    if operation.signed:
        return {SIGN_WITH: world["github"]}  # call() signs the body it sends
    if operation.key_auth:
        return {"HTTP_AUTHORIZATION": f"Bearer {world['key']}"}
    return {"HTTP_AUTHORIZATION": basic(world["user"])}


CLIENT = Client()  # one for every request: they carry their own credentials, and no cookie is kept


def call(operation: Operation, url: str, headers: dict[str, Any], body: Any = None):
    """One request, its effects rolled back."""
    raw = b"" if body is None else json.dumps(body).encode()  # ensure_ascii: surrogates travel as \u escapes
    headers = dict(headers)
    signer = headers.pop(SIGN_WITH, None)
    if signer is not None:
        headers.update(signer.headers(raw))
    with transaction.atomic():
        response = CLIENT.generic(operation.method, url, raw, content_type="application/json", **headers)
        transaction.set_rollback(True)
    CLIENT.cookies.clear()
    return response


def error_shape(body: Any) -> bool:
    """{"detail", "code"}, or DRF's field -> messages (nested for maps and lists)."""
    if isinstance(body, dict) and set(body) == {"detail", "code"}:
        return all(isinstance(value, str) and value for value in body.values())

    def messages(value: Any) -> bool:
        if isinstance(value, list):
            return bool(value) and all(isinstance(item, str) or messages(item) for item in value)
        return isinstance(value, dict) and bool(value) and all(messages(item) for item in value.values())

    return isinstance(body, dict) and bool(body) and all(messages(value) for value in body.values())


def check(operation: Operation, response, what: str, expect: Callable[[int, Any], bool] | None = None) -> str | None:
    """The failure, if the answer is a 5xx, is not JSON, breaks the error shape or is not what `expect` allows."""
    where = f"{operation} {what}: {response.status_code}"
    if response.status_code >= 500:
        return f"{where} {response.content[:200]!r}"
    if response.status_code == 204:
        return None
    if response["Content-Type"] != "application/json":
        return f"{where} answered {response['Content-Type']}"
    body = response.json()
    if response.status_code >= 400 and not error_shape(body):
        return f"{where} broke the error shape: {body!r:.200}"
    if expect is not None and not expect(response.status_code, body):
        return f"{where} unexpected: {body!r:.200}"
    return None


def run_all(cases: Iterator[str | None]) -> None:
    failures = [failure for failure in cases if failure]
    assert not failures, "\n".join(failures)


def representatives() -> list[Operation]:
    """Credentials are read the same way by every operation of an API: one that reads, one that writes, of each."""
    chosen: dict[tuple[bool, bool], Operation] = {}
    for operation in operations():
        if operation.anonymous or operation.signed:  # no key or login to read
            continue
        chosen.setdefault((operation.key_auth, operation.body_fields is None), operation)
    return list(chosen.values())


def test_the_schema_lists_both_apis():
    assert {operation.key_auth for operation in operations()} == {True, False}
    assert any(operation.body_fields for operation in operations())


# Accept and ?format= ------------------------------------------------------------------


def plain_json_answers(world: dict) -> dict[Operation, Any]:
    """Each operation's answer to `Accept: application/json`: what every other Accept must get too."""
    return {
        operation: call(operation, url_of(operation, world), {**credentials(operation, world), "HTTP_ACCEPT": "application/json"})
        for operation in operations()
    }


def same_answer(plain) -> Callable[[int, Any], bool]:
    return lambda status, body: status == plain.status_code and (status < 400 or body == plain.json())


def test_any_accept_gets_the_json_answer_on_every_operation(world):
    plain = plain_json_answers(world)

    def cases() -> Iterator[str | None]:
        for operation in operations():
            for accept in ODD_ACCEPTS:
                headers = {**credentials(operation, world), "HTTP_ACCEPT": accept}
                response = call(operation, url_of(operation, world), headers)
                yield check(operation, response, f"Accept {accept[:20]!r}", same_answer(plain[operation]))

    run_all(cases())


def test_any_format_gets_the_json_answer_on_every_operation(world):
    plain = plain_json_answers(world)

    def cases() -> Iterator[str | None]:
        for operation in operations():
            for value in ODD_FORMATS:
                response = call(operation, f"{url_of(operation, world)}?format={value}", credentials(operation, world))
                yield check(operation, response, f"?format={value}", same_answer(plain[operation]))

    run_all(cases())


@pytest.mark.parametrize("accept", ["text/html", "application/xml"])
@pytest.mark.parametrize("value", ["", "x"])
def test_a_refused_credential_gets_json_whatever_it_accepts(world, accept, value):
    def cases() -> Iterator[str | None]:
        for operation in operations():
            bad = {"HTTP_AUTHORIZATION": "Bearer ksg_bad" if operation.key_auth else basic(world["user"], "wrong")}
            url = url_of(operation, world) + (f"?format={value}" if value else "")
            response = call(operation, url, {**bad, "HTTP_ACCEPT": accept})
            refused = lambda status, body: status == 401  # noqa: E731
            yield check(operation, response, f"bad credentials, Accept {accept}", None if operation.anonymous else refused)

    run_all(cases())


# Credentials ---------------------------------------------------------------------------


def odd_key_headers(key: str, odd: str) -> dict[str, dict[str, str]]:
    return {
        "bearer-key-then-odd": {"HTTP_AUTHORIZATION": f"Bearer {key}{odd}"},
        "bearer-odd-then-key": {"HTTP_AUTHORIZATION": f"Bearer {odd}{key}"},
        "bearer-odd-inside-key": {"HTTP_AUTHORIZATION": f"Bearer {key[:20]}{odd}{key[20:]}"},
        "bearer-odd-alone": {"HTTP_AUTHORIZATION": f"Bearer {odd}"},
        "odd-scheme": {"HTTP_AUTHORIZATION": f"Bearer{odd}{key}"},
        "x-api-key-then-odd": {"HTTP_X_API_KEY": f"{key}{odd}"},
        "x-api-key-odd-alone": {"HTTP_X_API_KEY": odd},
        "both-odd": {"HTTP_AUTHORIZATION": f"Basic {odd}", "HTTP_X_API_KEY": f"{odd}{key}"},
    }


def odd_basic_headers(user: str, odd: str) -> dict[str, dict[str, str]]:
    """The right password each time: the odd character alone must make the refusal."""

    def encoded(text: str) -> str:
        return base64.b64encode(text.encode("latin-1")).decode()

    return {
        "odd-in-username": {"HTTP_AUTHORIZATION": f"Basic {encoded(f'{user}{odd}:{TEST_PASSWORD}')}"},
        "odd-before-username": {"HTTP_AUTHORIZATION": f"Basic {encoded(f'{odd}{user}:{TEST_PASSWORD}')}"},
        "odd-in-password": {"HTTP_AUTHORIZATION": f"Basic {encoded(f'{user}:{TEST_PASSWORD}{odd}')}"},
        "odd-unencoded": {"HTTP_AUTHORIZATION": f"Basic {odd}"},
        "odd-scheme": {"HTTP_AUTHORIZATION": f"Basic{odd}{encoded(f'{user}:{TEST_PASSWORD}')}"},
    }


def lenient_basic_headers(user: str, odd: str) -> dict[str, dict[str, str]]:
    """Spellings DRF may accept (its base64 decoding skips what is not base64): any answer but a 5xx."""
    credentials = base64.b64encode(f"{user}:{TEST_PASSWORD}".encode()).decode()
    return {
        "odd-after-base64": {"HTTP_AUTHORIZATION": f"Basic {credentials}{odd}"},
        "odd-inside-base64": {"HTTP_AUTHORIZATION": f"Basic {credentials[:4]}{odd}{credentials[4:]}"},
    }


@pytest.mark.parametrize("odd", ODD_HEADER_TEXT.values(), ids=ODD_HEADER_TEXT)
def test_odd_characters_in_any_credential_are_a_401_and_never_logged(world, odd, debug_log):
    key_refusals = {"invalid_key", "not_authenticated"}

    def cases() -> Iterator[str | None]:
        for operation in representatives():
            if operation.key_auth:
                variants = odd_key_headers(world["key"], odd)
                expect = lambda status, body: status == 401 and body["code"] in key_refusals  # noqa: E731
            else:
                variants = odd_basic_headers(world["user"], odd)
                expect = lambda status, body: status == 401  # noqa: E731
            for name, headers in variants.items():
                yield check(operation, call(operation, url_of(operation, world), headers), name, expect)
            if not operation.key_auth:
                for name, headers in lenient_basic_headers(world["user"], odd).items():
                    yield check(operation, call(operation, url_of(operation, world), headers), name)

    run_all(cases())
    logged = written(*debug_log)  # at DEBUG, every handler
    assert world["key"] not in logged and TEST_PASSWORD not in logged


# Bodies and query strings -------------------------------------------------------------------


def odd_bodies(fields: tuple[str, ...], odd: str) -> Iterator[tuple[str, dict]]:
    """The odd string in each field (as the value, in a list, as a map's key), and as a field's name."""
    for field in fields or ("text",):
        yield f"{field}=odd", {field: odd}
        yield f"{field}=[odd]", {field: [odd]}
    yield "odd in a map", {(fields or ("text",))[-1]: {odd: "value", "name": odd}}
    yield "odd field name", {f"x{odd}": 1}


@pytest.mark.parametrize("odd", ODD_STRINGS.values(), ids=ODD_STRINGS)
def test_odd_strings_in_any_body_field_are_a_400_on_every_operation(world, odd):
    def cases() -> Iterator[str | None]:
        for operation in operations():
            if operation.body_fields is None:
                continue
            for name, body in odd_bodies(operation.body_fields, odd):
                response = call(operation, url_of(operation, world), credentials(operation, world), body)
                yield check(operation, response, name, lambda status, body: status == 400)

    run_all(cases())


@pytest.mark.parametrize("odd", ODD_QUERY_TEXT.values(), ids=ODD_QUERY_TEXT)
def test_odd_query_parameters_never_break_an_operation(world, odd):
    def cases() -> Iterator[str | None]:
        for operation in operations():
            for name in (*operation.query, "search", f"x{odd}"):
                url = f"{url_of(operation, world)}?{quote(name, safe='%')}={odd}"
                yield check(operation, call(operation, url, credentials(operation, world)), f"?{name}=")

    run_all(cases())


@pytest.mark.parametrize("odd", ODD_QUERY_TEXT.values(), ids=ODD_QUERY_TEXT)
def test_odd_path_parameters_are_a_404_on_every_operation(world, odd):
    def cases() -> Iterator[str | None]:
        for operation in operations():
            for name in re.findall(r"{(\w+)}", operation.path):
                response = call(operation, url_of(operation, world, **{name: odd}), credentials(operation, world))
                yield check(operation, response, f"{{{name}}}={odd}", lambda status, body: status == 404)

    run_all(cases())
