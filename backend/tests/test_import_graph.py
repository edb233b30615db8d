"""The apps' modules import each other without a cycle, and only down the order lib ← organizations ← deployments ← keys ← backend."""

import importlib.util
from pathlib import Path

from django.conf import settings

_spec = importlib.util.spec_from_file_location("import_graph", Path(settings.BASE_DIR) / "scripts" / "import_graph.py")
assert _spec is not None and _spec.loader is not None
import_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_graph)


def test_the_import_graph_has_no_cycle_and_reaches_up_only_where_it_says_why():
    assert import_graph.problems() == []


def test_the_check_sees_imports_inside_functions(tmp_path, monkeypatch):
    for package, source in {
        "lib": "",
        "organizations": "def f():\n    from keys.models import X\n",
        "deployments": "",
        "keys": "from organizations import models\n",
        "backend": "",
    }.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "models.py").write_text(source)
    monkeypatch.setattr(import_graph, "BASE_DIR", tmp_path)
    monkeypatch.setattr(import_graph, "ALLOWED_REACH_UPS", {})

    assert import_graph.problems() == [
        "cycle: keys.models ↔ organizations.models",
        "reaches up: organizations.models imports keys.models",
    ]
