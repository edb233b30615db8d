"""What the bench measures: the variants, one request shape each, and how bursts are paired with the baseline."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar


@dataclass
class Variant:
    id: str
    label: str
    method: str = "GET"
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    cold: bool = False  # in-process: flush the verification cache before every request; HTTP: the cache-off server
    expected_status: int = 200
    peer: bool = False


BASELINE = "baseline"
VARIANT_IDS = [
    BASELINE,
    "dep-warm",
    "dep-warm-limit",
    "global-all-warm",
    "global-scope-warm",
    "scoped-warm",
    "dep-cold",
    "global-scope-cold",
    "global-wide-cold",
    "group-warm",
    "group-cold",
    "junk",
    "drf-api-key",
    "execute",
]


def build_variants(fixtures: dict[str, Any], peer: bool) -> list[Variant]:
    org, dep = fixtures["org_slug"], fixtures["deployment_slug"]
    scoped, wide = fixtures["scope_size"], fixtures["deployments_total"]
    grouped = f"global key bound to {fixtures['groups']:,} groups of {fixtures['group_size']:,} deployments"
    guarded = f"/bench/keyscope/{org}/{dep}/"

    def bearer(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {fixtures['keys'][name]}"}

    variants = [
        Variant(BASELINE, "no auth (baseline)", path=f"/bench/noauth/{org}/{dep}/"),
        Variant("dep-warm", "deployment key, warm, limit off", path=guarded, headers=bearer("dep")),
        Variant("dep-warm-limit", "deployment key, warm, Redis limit on", path=guarded, headers=bearer("dep_limit")),
        Variant("global-all-warm", "global allow_all key, warm, limit off", path=guarded, headers=bearer("global_all")),
        Variant(
            "global-scope-warm",
            f"global key, scope of {scoped:,} deployments, warm, limit off",
            path=guarded,
            headers=bearer("global_scope"),
        ),
        Variant(
            "scoped-warm",
            f"deployment key, one scope and {fixtures['networks']} allowed networks, warm, limit off",
            path=guarded,
            headers=bearer("scoped"),
        ),
        Variant("dep-cold", "deployment key, cache cold, limit off", path=guarded, headers=bearer("dep"), cold=True),
        Variant(
            "global-scope-cold",
            f"global key, scope of {scoped:,} deployments, cache cold, limit off",
            path=guarded,
            headers=bearer("global_scope"),
            cold=True,
        ),
        Variant(
            "global-wide-cold",
            f"global key, scope of all {wide:,} deployments, cache cold, limit off",
            path=guarded,
            headers=bearer("global_wide"),
            cold=True,
        ),
        Variant("group-warm", f"{grouped}, warm, limit off", path=guarded, headers=bearer("group")),
        Variant("group-cold", f"{grouped}, cache cold, limit off", path=guarded, headers=bearer("group"), cold=True),
        Variant("junk", "junk key (bad checksum), 401", path=guarded, headers=bearer("junk"), expected_status=401),
    ]
    if peer:
        variants.append(
            Variant(
                "drf-api-key",
                "djangorestframework-api-key HasAPIKey",
                path="/bench/drf-api-key/",
                headers={"Authorization": f"Api-Key {fixtures['keys']['peer']}"},
                peer=True,
            )
        )
    variants.append(
        Variant(
            "execute",
            "POST execute, end to end (deployment key, warm, Execution insert)",
            method="POST",
            path=f"/api/v1/deployments/{org}/{dep}/execute/",
            headers=bearer("dep"),
            body="{}",
        )
    )
    return variants


T = TypeVar("T")


def run_pairs(
    variants: list[Variant], rounds: int, burst: Callable[[Variant, Variant], T]
) -> tuple[dict[str, list[T]], dict[str, list[tuple[T, T]]]]:
    """Each round, every variant but the baseline (order rotated per round) right after a baseline burst of its own.

    A ratio then compares two bursts a moment apart rather than a variant with a baseline up to a round
    away, so load from elsewhere on the machine, which comes and goes, hits both sides of it alike.
    `burst(variant, beside)` measures `variant` once; `beside` is the non-baseline variant of the pair.
    Returns each variant's bursts (the baseline's: all of them) and its (baseline, variant) pairs; the
    baseline is paired with itself, so its ratios come out 1.
    """
    baseline = next(v for v in variants if v.id == BASELINE)
    others = [v for v in variants if v is not baseline]
    bursts: dict[str, list[T]] = {v.id: [] for v in variants}
    pairs: dict[str, list[tuple[T, T]]] = {v.id: [] for v in variants}
    for r in range(rounds):
        shift = r % len(others)
        for v in others[shift:] + others[:shift]:
            base = burst(baseline, v)
            measured = burst(v, v)
            bursts[BASELINE].append(base)
            bursts[v.id].append(measured)
            pairs[BASELINE].append((base, base))
            pairs[v.id].append((base, measured))
    return bursts, pairs


def median_of_known(values: Iterable[float | None]) -> float | None:
    """The median of the values there are; None when there are none (no CPU figures without /proc)."""
    known = [x for x in values if x is not None]
    return statistics.median(known) if known else None
