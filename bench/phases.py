"""Where each row's time goes, in-process: the key check's phases timed by perf_counter wrappers around them.

Not cProfile: its cost per call is of the order of these paths' own, so it
inflates the calls-heavy framework code most and misstates the shares. A
wrapper costs one perf_counter pair per phase per request, the same for
every row. The phases, outermost first:

- `screen`: ClientAPIView.dispatch's screen of the offered key before DRF wraps the request (the cache, the
  format and checksum, the digest filter, and for a key refused there its failed-auth count);
- `authenticate`: ApiKeyAuthentication.authenticate, DRF's call (for a valid key: the screen's answer reused,
  its status, addresses, rate limit and usage; for a cold key, the lookup);
- `database`: of `authenticate`, the lookup's round trip to PostgreSQL (keys.lookup._fetch_one);
- `deployment`: HasApiKey's scope check and resolve_deployment (the named deployment and the key's scope on it);
- `error response`: DRF's handle_exception for a refused key, the exception handler's response included.

The rest of a row's cost over the baseline (`other`) is the framework's
doing outside these calls, and the noise of a shared machine.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from typing import Any

from bench.variants import Variant

PHASES = ("screen", "authenticate", "database", "deployment", "error response")
NESTED = {"database": "authenticate"}  # timed inside that phase, so not added to it again


def _targets() -> list[tuple[str, Any, str]]:
    import bench.views
    import keys.views
    from keys import authentication, lookup

    return [
        ("screen", keys.views, "screen_request"),
        ("authenticate", authentication.ApiKeyAuthentication, "authenticate"),
        ("database", lookup, "_fetch_one"),
        ("deployment", authentication.HasApiKey, "has_permission"),
        ("deployment", bench.views, "resolve_deployment"),
        ("deployment", keys.views, "resolve_deployment"),
        ("error response", keys.views.ClientAPIView, "handle_exception"),
    ]


@contextlib.contextmanager
def timed_phases(spent: dict[str, float]) -> Iterator[None]:
    """Each phase's seconds added to `spent` while the block runs; the originals put back after."""
    originals = []
    for phase, owner, name in _targets():
        original = owner.__dict__[name]
        originals.append((owner, name, original))

        def wrapper(*args: Any, _original: Any = original, _phase: str = phase, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_phase] += time.perf_counter() - started

        setattr(owner, name, wrapper)
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def run_phases(
    variants: list[Variant], calls: dict[str, Any], settings_of: Any, rounds: int, requests: int
) -> dict[str, dict[str, float]]:
    """Per row: µs per request in all and in each phase, medians over `rounds` bursts of `requests` (rows rotated),
    and `over`, its whole cost less its baseline's (`paired_with`'s), of which `other` is in no phase."""
    samples: dict[str, list[dict[str, float]]] = {v.id: [] for v in variants}
    for number in range(rounds):
        shift = number % len(variants)
        for v in variants[shift:] + variants[:shift]:
            spent = dict.fromkeys(PHASES, 0.0)
            with settings_of(v):
                calls[v.id]()  # untimed, as the harness's bursts
                with timed_phases(spent):
                    started = time.perf_counter()
                    for _ in range(requests):
                        calls[v.id]()
                    whole = time.perf_counter() - started
            samples[v.id].append({"whole": whole, **spent})
    results = {}
    for v in variants:
        results[v.id] = {
            name: statistics.median(s[name] for s in samples[v.id]) / requests * 1e6 for name in ("whole", *PHASES)
        }
    for v in variants:
        row = results[v.id]
        row["over"] = row["whole"] - results[v.paired_with]["whole"] if v.paired_with in results else 0.0
        row["other"] = row["over"] - sum(row[p] for p in PHASES if p not in NESTED)
    return results
