"""The geometry of a key's usage chart: 30 days of requests as bars, drawn by a template as SVG.

Only numbers are worked out here (a rounded top of the scale, each bar's place and height,
which days get a date under them); keys/usage_chart.html draws them, and a table beside
the chart gives the same numbers to screen readers and to anyone who wants them exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from keys.usage import DayCount

WIDTH, HEIGHT = 720, 190
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 18, 34  # margins: the scale's numbers on the left, dates below
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
BAR_SHARE = 0.72  # of a day's slot; the rest is the gap
MIN_BAR = 1.5  # a day with no request still shows on the baseline


@dataclass(frozen=True)
class Bar:
    day: date
    count: int
    x: float
    y: float
    width: float
    height: float
    label_x: float
    is_today: bool
    dated: bool  # a date under it: every seventh day back from today, and today


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class UsageChart:
    bars: list[Bar]
    ticks: list[Tick]
    total: int
    busiest: Bar | None
    today: Bar
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = TOP + PLOT_HEIGHT
    right_edge: int = WIDTH - RIGHT


def nice_top(highest: int) -> int:
    """The top of the scale: 1, 2 or 5 times a power of ten, at least `highest` (and at least 1)."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= highest:
                return step * magnitude
        magnitude *= 10


def usage_chart(days: list[DayCount]) -> UsageChart:
    """`days` as keys.usage.usage_for() gives them: oldest first, today last."""
    counts = [(date.fromisoformat(day["date"]), int(day["count"])) for day in days]
    top = nice_top(max((count for _, count in counts), default=0))
    slot = PLOT_WIDTH / max(len(counts), 1)
    bars = []
    for index, (day, count) in enumerate(counts):
        height = max(PLOT_HEIGHT * count / top, MIN_BAR)
        x = LEFT + index * slot + slot * (1 - BAR_SHARE) / 2
        from_today = len(counts) - 1 - index
        bars.append(
            Bar(
                day=day,
                count=count,
                x=round(x, 1),
                y=round(TOP + PLOT_HEIGHT - height, 1),
                width=round(slot * BAR_SHARE, 1),
                height=round(height, 1),
                label_x=round(x + slot * BAR_SHARE / 2, 1),
                is_today=from_today == 0,
                dated=from_today % 7 == 0,
            )
        )
    ticks = [Tick(value, round(TOP + PLOT_HEIGHT - PLOT_HEIGHT * value / top, 1)) for value in sorted({0, top // 2, top})]
    used = [bar for bar in bars if bar.count]
    busiest = max(used, key=lambda bar: (bar.count, bar.day)) if used else None
    return UsageChart(bars=bars, ticks=ticks, total=sum(count for _, count in counts), busiest=busiest, today=bars[-1])
