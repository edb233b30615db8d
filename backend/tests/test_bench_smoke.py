"""`make bench` runs end to end with tiny sizes and prints every row (no wall-clock assertion).

The benchmark runs in a child process against the same PostgreSQL and Redis
as the suite, in a database of its own that it drops at the end. Without
djangorestframework-api-key (bench/requirements.txt) it measures keyscope's
variants only and says so.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from bench.variants import VARIANT_IDS

BASE_DIR = Path(settings.BASE_DIR)
PEER_ROW = "drf-api-key"
# The rows the bench itself promises, so a new variant cannot go untested here.
KEYSCOPE_ROWS = [variant for variant in VARIANT_IDS if variant != PEER_ROW]
RATIO_COLUMNS = (3, 6)  # "× baseline" in-process and over HTTP
ROW = re.compile(r"^\| `(?P<id>[a-z-]+)` ")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
        reason="the benchmark seeds PostgreSQL only (run under scripts/with-services.sh)",
    ),
]


def test_bench_prints_every_variant_with_numeric_ratios(tmp_path):
    peer_installed = importlib.util.find_spec("rest_framework_api_key") is not None
    output = tmp_path / "latest.md"
    env = {
        **os.environ,
        "BENCH_SIZE": "tiny",
        "BENCH_DATABASE_NAME": f"keyscope_bench_smoke_{os.getpid()}",
        "BENCH_OUTPUT": str(output),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-m", "bench.run"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=900
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert output.read_text().rstrip("\n") == result.stdout.rstrip("\n")
    sections = result.stdout.split("\n## ")[1:]
    scale_tables = [s for s in sections if not s.startswith("Targets")]
    assert len(scale_tables) == 2  # two scales in the tiny preset
    expected = KEYSCOPE_ROWS + ([PEER_ROW] if peer_installed else [])
    for section in scale_tables:
        tables = [block for block in section.split("\n\n") if block.startswith("| variant |")]
        assert len(tables) == 2  # the figures, then where the time goes
        figures, phases = ({m["id"]: line for line in t.splitlines() if (m := ROW.match(line))} for t in tables)
        assert sorted(figures) == sorted(phases) == sorted(expected)
        for line in figures.values():
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            for column in RATIO_COLUMNS:
                assert float(cells[column]) > 0, line
        for line in phases.values():
            assert float(line.strip("|").split("|")[1]) > 0, line  # µs per request
    if not peer_installed:
        assert "djangorestframework-api-key is not installed" in result.stdout
