"""`python manage.py test` runs the same pytest suite as `make test`."""

import sys
from typing import Any

import pytest


class PytestRunner:
    def __init__(self, verbosity: int = 1, failfast: bool = False, keepdb: bool = False, **kwargs: Any) -> None:
        self.verbosity = verbosity
        self.failfast = failfast
        self.keepdb = keepdb

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        pass

    def run_tests(self, test_labels: list[str], **kwargs: Any) -> int:
        argv: list[str] = []
        if self.verbosity == 0:
            argv.append("--quiet")
        elif self.verbosity > 1:
            argv.append("-v")
        if self.failfast:
            argv.append("--exitfirst")
        if self.keepdb:
            argv.append("--reuse-db")
        argv.extend(test_labels)
        return int(pytest.main(argv)) and 1 or 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(PytestRunner().run_tests(sys.argv[1:]))
