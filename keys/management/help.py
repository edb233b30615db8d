"""What the keys app's commands share: help that keeps its line breaks and ends with examples."""

from __future__ import annotations

from argparse import RawDescriptionHelpFormatter
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class ExplainedCommand(BaseCommand):
    """A command whose `--help` prints `description` and `examples` as written."""

    description = ""
    examples = ""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        parser.description = self.description or parser.description
        parser.epilog = self.examples
        return parser
