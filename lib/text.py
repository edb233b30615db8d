"""Short texts for people: counted words, the first names of a long list, a cell cut visibly."""

from __future__ import annotations

from collections.abc import Iterable

ELLIPSIS = "…"


def plural(count: int, word: str, words: str | None = None) -> str:
    """ "1 key", "2 keys" ("2 addresses" with `words`)."""
    return f"{count} {word}" if count == 1 else f"{count} {words or word + 's'}"


def first_names(names: Iterable[str], total: int | None = None, shown: int = 3) -> str:
    """The first `shown` names, then "and N more" for the rest of `total` (all of `names` when None)."""
    names = list(names)
    total = len(names) if total is None else total
    first = names[:shown]
    more = total - len(first)
    return ", ".join(first) + (f" and {more} more" if more > 0 else "")


def cut(text: str, width: int) -> str:
    """`text` in at most `width` characters, ending in "…" when something was cut."""
    return text if len(text) <= width else text[: width - 1] + ELLIPSIS
