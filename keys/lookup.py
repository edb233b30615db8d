"""The cold key lookup: one hand-written query that finds a digest among current and rotated-out secrets.

A keyscope key's prefix names its kind, so it is looked up among that kind's keys
only. An imported UUID has no prefix: it is looked up among
deployment keys and global keys in the same statement, deployment keys first.

Cold requests skip the ORM's query building (about as costly as the database
round trip itself): the SQL is built once per connection vendor from the
models' metadata, and values go through Django's own converters, so SQLite and
PostgreSQL read alike. On PostgreSQL the statement is prepared on the server.

What it returns is a small frozen record (not a model instance), so it can be
cached and compared cheaply; keys/verification.py decides what it may do.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, models

from deployments.models import Deployment, GroupDeployment
from keys import crypto
from keys.allowed_ips import CompiledNetwork, compile_networks
from keys.models import MODEL_BY_KIND, GlobalKeyDeployment, GlobalKeyGroup, RetiredSecret
from organizations.models import Organization


@dataclass(frozen=True, slots=True)  # slots: a worker may hold 100,000 of these
class VerifiedKey:
    kind: crypto.KeyKind
    id: str
    name: str
    last4: str
    format: str  # of the key's current secret: "keyscope", or "uuid" until an imported key is rotated
    organization_id: int
    organization_slug: str
    organization_rate_limit: int | None
    deployment_id: int | None  # deployment keys only
    allow_all_deployments: bool
    is_active: bool
    expires_at: datetime | None
    revoked_at: datetime | None
    rate_limit_per_minute: int | None
    last_used_at: datetime | None
    scopes: frozenset[str]
    allowed_ips: tuple[str, ...]  # canonical, as stored; () allows any address
    allowed_networks: tuple[CompiledNetwork, ...]  # the same, parsed once per lookup
    # A rotated-out secret works until then (None: the key's current secret).
    retired_valid_until: datetime | None = None

    @property
    def key_masked(self) -> str:
        return crypto.mask(self.kind, self.last4, self.format)

    def failure_at(self, now: datetime) -> str | None:
        """The code of the first status rule this key breaks at `now`, or None.

        Revoked (or a rotated-out secret past its grace), then expired, then inactive:
        the order in which the client API reports them.
        """
        if self.revoked_at is not None or (self.retired_valid_until is not None and self.retired_valid_until <= now):
            return "key_revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "key_expired"
        if not self.is_active:
            return "key_inactive"
        return None


@dataclass(frozen=True, slots=True)
class DeploymentRef:
    id: int
    organization_id: int
    slug: str
    is_active: bool
    runner: str


class Column(NamedTuple):
    """One selected column: its name in the record, and where it is read (a model's field, under a table alias).

    `absent`: the other kind's column, NULL in this kind's branch, so both kinds' rows line up.
    """

    name: str
    model: type[models.Model]
    field: str
    alias: str
    absent: bool = False

    def _field(self) -> models.Field[Any, Any]:
        field = self.model._meta.get_field(self.field)
        assert isinstance(field, models.Field)  # a concrete column, never a reverse relation
        return field

    def sql(self, quote: Any) -> str:
        field = self._field()
        if self.absent:
            # Typed, so that PostgreSQL can match it with the other kind's column across UNION ALL.
            return f"CAST(NULL AS {field.db_type(connection)})"
        return f"{self.alias}.{quote(field.column)}"

    def converters(self) -> tuple[Any, list[Any]]:
        """The column's Django converters, so raw rows read as the ORM would read them."""
        column = self._field().get_col(self.alias)
        return column, connection.ops.get_db_converters(column) + column.get_db_converters(connection)


_COMMON_FIELDS = (
    "id", "name", "last4", "format", "is_active", "expires_at", "revoked_at", "rate_limit_per_minute", "last_used_at",
    "scopes", "allowed_ips",
)  # fmt: skip
# What the lookup reads of the deployment a request names (table alias t), beside the key;
# then whether a global key's list or one of its groups holds it.
_TARGET_COLUMNS = (
    Column("target_id", Deployment, "id", "t"),
    Column("target_is_active", Deployment, "is_active", "t"),
    Column("target_runner", Deployment, "runner", "t"),
)
TARGET_FIELDS = (*(column.name for column in _TARGET_COLUMNS), "target_in_scope")
_RETIRED_VALID_UNTIL = Column("retired_valid_until", RetiredSecret, "valid_until", "r")


class KeyLookupQuery:
    """The lookup of a digest among the keys of some kinds: one kind for a keyscope key, both for a UUID.

    Given the slug of the deployment a request names, the same query also fetches
    that deployment of the key's organization and whether a selected-scope global
    key opens it (through its list or a group), so a cold request makes one query
    instead of three. What it
    learns of the deployment is only cached, and acted on after the key has passed.
    """

    def __init__(self, kinds: tuple[crypto.KeyKind, ...]) -> None:
        self.kinds = kinds
        self._prepared: dict[tuple[str, bool], tuple[str, list[tuple[str, Any]]]] = {}

    @staticmethod
    def _columns(kind: crypto.KeyKind) -> list[Column]:
        """A kind's columns, in the same order and number for both kinds."""
        model = MODEL_BY_KIND[kind]
        organization = (
            Column("organization_id", Deployment, "organization", "d")
            if kind == "deployment"
            else Column("organization_id", model, "organization", "k")
        )
        return [
            *(Column(name, model, name, "k") for name in _COMMON_FIELDS),
            Column("deployment_id", MODEL_BY_KIND["deployment"], "deployment", "k", absent=kind != "deployment"),
            Column("allow_all_deployments", MODEL_BY_KIND["global"], "allow_all_deployments", "k", absent=kind != "global"),
            organization,
            Column("organization_slug", Organization, "slug", "o"),
            Column("organization_rate_limit", Organization, "default_rate_limit_per_minute", "o"),
        ]

    @staticmethod
    def _branches(kind: crypto.KeyKind, with_target: bool) -> str:
        """A kind's current secrets, then its rotated-out ones; each row ends with the kind's name."""
        qn = connection.ops.quote_name
        model = MODEL_BY_KIND[kind]
        select = ", ".join(column.sql(qn) for column in KeyLookupQuery._columns(kind))
        table = qn(model._meta.db_table)
        organizations = qn(Organization._meta.db_table)
        deployments = qn(Deployment._meta.db_table)
        if kind == "deployment":
            joins = (
                f"JOIN {deployments} d ON d.{qn('id')} = k.{qn('deployment_id')} "
                f"JOIN {organizations} o ON o.{qn('id')} = d.{qn('organization_id')}"
            )
        else:
            joins = f"JOIN {organizations} o ON o.{qn('id')} = k.{qn('organization_id')}"
        if with_target:
            # t: the named deployment of the key's own organization, if it exists.
            joins += f" LEFT JOIN {deployments} t ON t.{qn('organization_id')} = o.{qn('id')} AND t.{qn('slug')} = %s"
            select += "".join(f", {column.sql(qn)}" for column in _TARGET_COLUMNS)
            if kind == "global":
                # In scope: on the key's own list, or in one of its groups now (keys.models.deployments_in_scope).
                links = qn(GlobalKeyDeployment._meta.db_table)
                key_groups = qn(GlobalKeyGroup._meta.db_table)
                members = qn(GroupDeployment._meta.db_table)
                select += (
                    f", CASE WHEN EXISTS (SELECT 1 FROM {links} g WHERE g.{qn('key_id')} = k.{qn('id')}"
                    f" AND g.{qn('deployment_id')} = t.{qn('id')})"
                    f" OR EXISTS (SELECT 1 FROM {members} gd JOIN {key_groups} kg ON kg.{qn('group_id')} = gd.{qn('group_id')}"
                    f" WHERE kg.{qn('key_id')} = k.{qn('id')} AND gd.{qn('deployment_id')} = t.{qn('id')})"
                    " THEN 1 END"
                )
            else:
                select += ", CAST(NULL AS integer)"
        retired = RetiredSecret._meta
        return (
            f"SELECT {select}, NULL, '{kind}' FROM {table} k {joins} WHERE k.{qn('digest')} = %s "
            f"UNION ALL "
            f"SELECT {select}, {_RETIRED_VALID_UNTIL.sql(qn)}, '{kind}' FROM {qn(retired.db_table)} r "
            f"JOIN {table} k ON k.{qn('id')} = r.{qn('key_id')} {joins} "
            f"WHERE r.{qn('digest')} = %s AND r.{qn('key_kind')} = %s"
        )

    def _prepare(self, with_target: bool) -> tuple[str, list[tuple[str, Any]]]:
        prepared = self._prepared.get((connection.vendor, with_target))
        if prepared is not None:
            return prepared
        selected = self._columns(self.kinds[0])
        if with_target:
            selected += _TARGET_COLUMNS
        sql = " UNION ALL ".join(self._branches(kind, with_target) for kind in self.kinds)
        if len(self.kinds) > 1:
            # Deployment keys first: the kind's name, the last column, sorts them so.
            sql += f" ORDER BY {len(selected) + int(with_target) + 2}"
        converters = [(column.name, column.converters()) for column in selected]
        if with_target:
            converters.append(("target_in_scope", (None, [])))
        converters.append((_RETIRED_VALID_UNTIL.name, _RETIRED_VALID_UNTIL.converters()))
        converters.append(("kind", (None, [])))
        self._prepared[(connection.vendor, with_target)] = (sql, converters)
        return sql, converters

    def run(self, key_digest: str, deployment_slug: str | None = None) -> tuple[VerifiedKey | None, dict[str, Any]]:
        """The key with this digest (None when no key ever had it), and what was learnt of the named deployment."""
        with_target = deployment_slug is not None
        sql, converters = self._prepare(with_target)
        params: list[Any] = []
        for kind in self.kinds:
            params += [deployment_slug, key_digest, deployment_slug, key_digest, kind] if with_target else [key_digest, key_digest, kind]
        row = _fetch_one(sql, params)
        if row is None:
            return None, {}
        values: dict[str, Any] = {}
        for value, (name, (column, found)) in zip(row, converters, strict=True):
            for converter in found:
                value = converter(value, column, connection)
            values[name] = value
        target = {name: values.pop(name) for name in TARGET_FIELDS if name in values}
        values["id"] = str(values["id"])
        values["is_active"] = bool(values["is_active"])
        values["allow_all_deployments"] = bool(values["allow_all_deployments"])
        values["scopes"] = frozenset(values["scopes"] or ())
        values["allowed_ips"] = tuple(values["allowed_ips"] or ())
        values["allowed_networks"] = compile_networks(values["allowed_ips"])
        return VerifiedKey(**values), target


# A keyscope key's prefix names the one kind to look among; an imported UUID may be either (deployment first).
LOOKUPS: dict[crypto.KeyKind, KeyLookupQuery] = {"deployment": KeyLookupQuery(("deployment",)), "global": KeyLookupQuery(("global",))}
UUID_LOOKUP = KeyLookupQuery(("deployment", "global"))


def lookup_for(candidate: crypto.Candidate) -> KeyLookupQuery:
    """The lookup a well-formed key needs: its own kind's, or both kinds' for a UUID."""
    return UUID_LOOKUP if candidate.kind is None else LOOKUPS[candidate.kind]


def _fetch_one(sql: str, params: list[Any]) -> Any:
    """The lookup's one row (or None).

    On PostgreSQL with nothing logging queries (a serving worker), one preparing cursor per
    connection is kept and reused, past Django's cursor wrappers: what they do for one
    statement (the health check, a broken transaction refused, errors wrapped, the
    connection's answer noted for lib/db/postgresql) is done here, saving the wrapper and a new
    cursor per cold request (about 30 µs of a 200-300 µs lookup, measured back to back). Anything
    that logs queries (assertNumQueries, CaptureQueriesContext, DEBUG) gets Django's own
    cursor, so the lookup is counted and logged like any query.
    """
    if connection.vendor != "postgresql" or not settings.KEYSCOPE_PREPARED_KEY_LOOKUP or connection.queries_logged:
        with _lookup_cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    raw = connection.connection
    with connection.wrap_database_errors:
        kept = getattr(connection, "_keyscope_lookup_cursor", None)
        if kept is None or kept[0] is not raw:
            kept = connection._keyscope_lookup_cursor = (raw, _preparing_cursor_class()(raw))  # type: ignore[attr-defined]
        cursor = kept[1]
        cursor.execute(sql, params)
        row = cursor.fetchone()
    connection.answered_at = time.monotonic()  # type: ignore[attr-defined]  # lib.db.postgresql's health-check clock
    return row


def _lookup_cursor() -> Any:
    """A cursor for the key lookup: on PostgreSQL, one that prepares its statement on the server.

    The server then plans the lookup once per connection instead of once per cold request.
    Elsewhere, or with KEYSCOPE_PREPARED_KEY_LOOKUP=false, it is Django's own cursor.
    """
    if connection.vendor != "postgresql" or not settings.KEYSCOPE_PREPARED_KEY_LOOKUP:
        return connection.cursor()
    # What connection.cursor() does, with a preparing cursor on the same connection: the same
    # health check, error wrapping and query logging (the lookup still counts in assertNumQueries).
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(_preparing_cursor_class()(connection.connection))  # type: ignore[attr-defined]


@functools.cache
def _preparing_cursor_class() -> type:
    import psycopg

    class LoggedQuery:
        """What Django's query log reads of a cursor (`_query.query`), composed only if it is read."""

        def __init__(self, sql: str, params: Any) -> None:
            self.sql, self.params = sql, params

        @property
        def query(self) -> bytes:
            return connection.ops.compose_sql(self.sql, self.params).encode()  # type: ignore[attr-defined]

    class PreparingCursor(psycopg.Cursor):
        """Binds parameters on the server and has psycopg prepare each statement on its first run."""

        def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None) -> Any:
            result = super().execute(query, params, prepare=True, binary=binary)
            self._query = LoggedQuery(query, params)  # type: ignore[assignment]
            return result

    return PreparingCursor
