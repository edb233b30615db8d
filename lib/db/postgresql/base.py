"""PostgreSQL whose connection health check is paid by a connection that has sat idle, not by every request.

Django's CONN_HEALTH_CHECKS runs `SELECT 1` before the first query of every
request: on a cold key check, a second round trip beside the lookup. Here a
connection that answered a statement less than
KEYSCOPE_DB_HEALTH_CHECK_IDLE_SECONDS ago is taken as alive and not checked;
one idle for longer is checked as Django would. A request that finds the
server gone anyway (it restarted within that second) gets the 503 of any
database error, and its connection is closed at the end of the request, so
the next one reconnects (Django's own handling of errors).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    health_check_done: bool  # Django's, set per request (not typed by its stubs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answered_at = float("-inf")  # when a statement on this connection last came back without an error
        self.execute_wrappers.append(self._note_answer)

    def _note_answer(self, execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        result = execute(sql, params, many, context)
        self.answered_at = time.monotonic()
        return result

    def close_if_health_check_failed(self) -> None:
        idle = settings.KEYSCOPE_DB_HEALTH_CHECK_IDLE_SECONDS
        if self.connection is not None and not self.health_check_done and time.monotonic() - self.answered_at < idle:
            self.health_check_done = True  # it answered a moment ago
            return
        super().close_if_health_check_failed()
