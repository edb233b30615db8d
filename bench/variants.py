"""What the bench measures: the variants, one request shape each, and how bursts are paired with the baseline."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.seed import PopulationKey


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
    # Each request one of these keys, on its own path (the Authorization header and the path replaced), drawn
    # with a Zipf distribution of exponent `zipf` (rank = position), or in order, round and round, without it.
    pool: list[PopulationKey] | None = None
    zipf: float | None = None
    # A new pool of (about) this many keys for each burst, made by `fresh`: keys no one issued, never repeated.
    fresh: Callable[[int], list[PopulationKey]] | None = None
    # Settings of this row (override_settings in-process; the server's environment over HTTP).
    settings: dict[str, Any] = field(default_factory=dict)
    # In-process, the client address (REMOTE_ADDR) of this row's requests, so what it does to its address (a
    # throttle) stays with it; over HTTP it has a server of its own.
    address: str | None = None
    paired_with: str = "baseline"  # the row each burst of this one follows, and its ratios compare with
    # Before the rounds, this many passes over the pool in order: the traffic's steady state, every key it
    # will draw already seen by the workers (over HTTP, a pass reaches each key on one worker of two).
    warm_passes: int = 0

    def server_name(self) -> str:
        """Which gunicorn serves this row over HTTP: the cache-off one for cold rows, one per distinct settings."""
        if self.cold:
            return "cold"
        return "main" if not self.settings else ",".join(f"{k}={v}" for k, v in sorted(self.settings.items()))

    def server_env(self) -> dict[str, str]:
        return {"KEYSCOPE_VERIFICATION_CACHE_SECONDS": "0"} if self.cold else {k: str(v) for k, v in self.settings.items()}


BASELINE = "baseline"
SAME_AGAIN = "baseline-again"  # the baseline's request as a variant: what a ratio of identical requests comes out at
VARIANT_IDS = [
    BASELINE,
    SAME_AGAIN,
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
    "mixed",
    "junk",
    "junk-throttled",
    "unknown",
    "unknown-cached",
    "drf-api-key",
    "execute-noauth",
    "execute",
]
MIXED_ZIPF_S = 1.1
MIXED_WARM_PASSES = 3  # over HTTP each worker then has seen 7 keys in 8, and the hot ones surely
# The failed-auth limit of the throttled row: the product's default (the run raises it for the others).
THROTTLED_FAILED_AUTH_PER_MINUTE = 60


def unknown_keys(path: str, count: int) -> list[PopulationKey]:
    """`count` well-formed, checksummed keys that no one issued (of both kinds): each costs a lookup to learn so."""
    from keys import crypto

    return [PopulationKey(path=path, key=crypto.generate_key("deployment" if i % 2 else "global")) for i in range(count)]


def build_variants(fixtures: dict[str, Any], peer: bool) -> list[Variant]:
    org, dep = fixtures["org_slug"], fixtures["deployment_slug"]
    scoped, wide = fixtures["scope_size"], fixtures["deployments_total"]
    grouped = f"global key bound to {fixtures['groups']:,} groups of {fixtures['group_size']:,} deployments"
    guarded = f"/bench/keyscope/{org}/{dep}/"

    def bearer(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {fixtures['keys'][name]}"}

    variants = [
        Variant(BASELINE, "no auth (baseline)", path=f"/bench/noauth/{org}/{dep}/"),
        Variant(SAME_AGAIN, "the baseline's request again, paired like every row: the ratios' noise", path=f"/bench/noauth/{org}/{dep}/"),
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
    ]
    population = fixtures["population"][: fixtures["mixed_keys"]]
    if population:
        variants.append(
            Variant(
                "mixed",
                f"{len(population):,} keys of both kinds (global ones with a list of deployments, half of each kind"
                f" one scope), Zipf s={MIXED_ZIPF_S} draws, steady state, limit off",
                path=population[0].path,
                headers={"Authorization": f"Bearer {population[0].key}"},
                pool=population,
                zipf=MIXED_ZIPF_S,
                warm_passes=MIXED_WARM_PASSES,
            )
        )
    never_issued = unknown_keys(guarded, 1)[0]
    variants += [
        Variant("junk", "junk key (bad checksum), 401", path=guarded, headers=bearer("junk"), expected_status=401),
        Variant(
            "junk-throttled",
            f"junk key from a throttled address (failed-auth limit {THROTTLED_FAILED_AUTH_PER_MINUTE}/min), 429",
            path=guarded,
            headers=bearer("junk"),
            expected_status=429,
            settings={"KEYSCOPE_FAILED_AUTH_PER_MINUTE": THROTTLED_FAILED_AUTH_PER_MINUTE},
            address="203.0.113.99",
        ),
        Variant(
            "unknown",
            "well-formed key no one issued, a new one each request, 401",
            path=guarded,
            headers={"Authorization": f"Bearer {never_issued.key}"},
            expected_status=401,
            fresh=lambda count: unknown_keys(guarded, count),
        ),
        Variant(
            "unknown-cached",
            "well-formed key no one issued, the same one again, 401",
            path=guarded,
            headers={"Authorization": f"Bearer {never_issued.key}"},
            expected_status=401,
        ),
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
    variants += [
        Variant(
            "execute-noauth",
            "POST execute with no authentication (the same view and Execution insert, the key check skipped)",
            method="POST",
            path=f"/bench/execute-noauth/{org}/{dep}/",
            body="{}",
        ),
        Variant(
            "execute",
            "POST execute, end to end (deployment key, warm, Execution insert); ratios against `execute-noauth`",
            method="POST",
            path=f"/api/v1/deployments/{org}/{dep}/execute/",
            headers=bearer("dep"),
            body="{}",
            paired_with="execute-noauth",
        ),
    ]
    return variants


T = TypeVar("T")


def run_pairs(
    variants: list[Variant], rounds: int, burst: Callable[[Variant, Variant], T]
) -> tuple[dict[str, list[T]], dict[str, list[tuple[T, T]]]]:
    """Each round, every variant but the baseline (order rotated per round) right after a burst of its own
    baseline (`paired_with`: the no-auth baseline, or `execute-noauth` for `execute`).

    A ratio then compares two bursts a moment apart rather than a variant with a baseline up to a round
    away, so load from elsewhere on the machine, which comes and goes, hits both sides of it alike.
    `burst(variant, beside)` measures `variant` once; `beside` is the variant of the pair that is measured.
    Returns each variant's bursts (the baseline's: all of them) and its (baseline, variant) pairs; the
    baseline is paired with itself, so its ratios come out 1. A row that serves as another's baseline keeps
    only its own pairs, and its bursts measured as a baseline are not among its figures.
    """
    by_id = {v.id: v for v in variants}
    baseline = by_id[BASELINE]
    others = [v for v in variants if v is not baseline]
    bursts: dict[str, list[T]] = {v.id: [] for v in variants}
    pairs: dict[str, list[tuple[T, T]]] = {v.id: [] for v in variants}
    for r in range(rounds):
        shift = r % len(others)
        for v in others[shift:] + others[:shift]:
            base = burst(by_id[v.paired_with], v)
            measured = burst(v, v)
            if v.paired_with == BASELINE:
                bursts[BASELINE].append(base)
                pairs[BASELINE].append((base, base))
            bursts[v.id].append(measured)
            pairs[v.id].append((base, measured))
    return bursts, pairs


def median_of_known(values: Iterable[float | None]) -> float | None:
    """The median of the values there are; None when there are none (no CPU figures without /proc)."""
    known = [x for x in values if x is not None]
    return statistics.median(known) if known else None
