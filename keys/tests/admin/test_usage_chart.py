"""A key's page draws its requests per day as an SVG bar chart, with the same numbers in a table."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from django.test import Client

from keys import usage
from keys.tests.helpers import DEPLOYMENT, admin_url, execute
from keys.usage_chart import nice_top, usage_chart

pytestmark = pytest.mark.django_db


def days_of(counts: list[int], today: date = date(2026, 12, 2)) -> list[usage.DayCount]:
    return [{"date": (today - timedelta(days=len(counts) - 1 - i)).isoformat(), "count": c} for i, c in enumerate(counts)]


@pytest.mark.parametrize(("highest", "top"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (150, 200), (500, 500)])
def test_the_scale_ends_on_a_round_number(highest, top):
    assert nice_top(highest) == top


def test_thirty_days_make_thirty_bars_today_last_and_a_date_every_week():
    chart = usage_chart(days_of([0] * 20 + [4, 0, 0, 0, 0, 0, 0, 0, 0, 9]))

    assert len(chart.bars) == 30 and chart.total == 13
    assert chart.today.is_today and chart.today.count == 9 and chart.bars[-1] is chart.today
    assert [bar.day.day for bar in chart.bars if bar.dated] == [4, 11, 18, 25, 2]
    assert chart.busiest is chart.today and [tick.value for tick in chart.ticks] == [0, 5, 10]
    empty = chart.bars[0]
    assert 0 < empty.height < chart.today.height  # a day without requests still shows on the baseline
    assert all(bar.x + bar.width <= chart.right_edge for bar in chart.bars)  # nothing drawn off the chart


def test_the_key_page_shows_todays_requests_in_the_chart_and_the_table(client_a, deployment_key_a1):
    key, full_key = deployment_key_a1
    api = Client()
    for _ in range(3):
        assert execute(api, "org-a", "a-one", full_key).status_code == 200

    page = client_a.get(admin_url(DEPLOYMENT, "change", key.pk)).content.decode()

    assert '<svg class="key-usage-chart"' in page and 'role="img"' in page
    today = re.search(r'<rect class="key-usage-bar key-usage-today"[^>]*><title>[^<]*: (\d+) requests?</title>', page)
    assert today is not None and today.group(1) == "3"
    rows = re.findall(r"<tr(?: class=\"key-usage-today-row\")?><th scope=\"row\">.*?</th><td>(\d+)</td></tr>", page)
    assert len(rows) == 30 and rows[-1] == "3" and set(rows[:-1]) == {"0"}
    assert "3 requests in 30 days" in page
    last_used = re.search(r'field-last_used_at.*?<div class="readonly">([^<]*)</div>', page, re.S)
    assert last_used is not None and last_used.group(1).endswith(" UTC")  # flushed before the page, as the chart is


def test_the_chart_reads_its_numbers_from_usage_for(client_a, deployment_key_a1, monkeypatch):
    key, _ = deployment_key_a1
    asked = []

    def fake_usage_for(key_id: str, days: int = 30) -> list[usage.DayCount]:
        asked.append((key_id, days))
        return days_of([0] * 28 + [40, 12])

    monkeypatch.setattr(usage, "usage_for", fake_usage_for)
    page = client_a.get(admin_url(DEPLOYMENT, "change", key.pk)).content.decode()

    assert asked == [(str(key.pk), 30)]
    assert "52 requests in 30 days" in page and "the busiest day" in page
    assert ">50</text>" in page  # the top of the scale
