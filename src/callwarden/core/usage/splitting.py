"""Cutting a file or an HTTP body into raw items: one JSON document, one CSV row, one log line.

Every piece of input ends up in exactly one item, including pieces that are not valid: those
become items that fail to normalise and go to the dead-letter store with their text, so nothing
is dropped silently. Only blank lines are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import orjson

from callwarden.core.usage.record import RawItem

__all__ = ["json_items", "line_items", "lines_of", "table_items"]

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def lines_of(data: str | Iterable[str]) -> Iterator[str]:
    """The lines of `data` without their line endings (a byte-order mark is removed).

    Only "\n" (and "\r\n") end a line: JSON strings may hold U+2028 and other characters that
    str.splitlines() would cut at.
    """
    source: Iterable[str] = data.split("\n") if isinstance(data, str) else data
    first = True
    for line in source:
        if first:
            first = False
            if line.startswith("\ufeff"):
                line = line[1:]
        yield line.rstrip("\r\n")


def _depth_change(line: str) -> int:
    """How much `line` opens (positive) or closes JSON objects and arrays, ignoring strings."""
    bare = _JSON_STRING.sub("", line) if '"' in line else line
    return bare.count("{") + bare.count("[") - bare.count("}") - bare.count("]")


def _expand(text: str, position: str) -> Iterator[RawItem]:
    """An array document becomes one item per element; anything else stays one item."""
    if text.lstrip().startswith("["):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            yield RawItem(text, position)
            return
        if isinstance(parsed, list):
            for index, element in enumerate(parsed, 1):
                yield RawItem(orjson.dumps(element).decode(), f"{position} item {index}")
            return
    yield RawItem(text, position)


def json_items(data: str | Iterable[str]) -> Iterator[RawItem]:
    """JSON documents from one object, an array of objects, JSON lines or pretty-printed documents.

    A document may span lines; it ends where its braces balance. A line starting at column 0
    with "{" or "[" while a document is still open starts a new document, so one truncated
    document cannot swallow the rest of a file.
    """
    pending: list[str] = []
    depth = 0
    start = 0
    end = 0
    for number, line in enumerate(lines_of(data), 1):
        stripped = line.strip()
        if not pending:
            if not stripped:
                continue
            if stripped[0] == "{" and stripped[-1] == "}":
                yield RawItem(stripped, f"line {number}")
                continue
            change = _depth_change(line)
            if change <= 0:
                yield from _expand(stripped, f"line {number}")
                continue
            pending = [line]
            depth = change
            start = end = number
            continue
        if not stripped:
            continue
        if line[:1] in ("{", "[") and depth > 0:
            yield from _expand("\n".join(pending), _span(start, end))
            pending = []
            change = _depth_change(line)
            if change <= 0:
                yield from _expand(stripped, f"line {number}")
            else:
                pending = [line]
                depth = change
                start = end = number
            continue
        pending.append(line)
        end = number
        depth += _depth_change(line)
        if depth <= 0:
            yield from _expand("\n".join(pending), _span(start, number))
            pending = []
    if pending:
        yield from _expand("\n".join(pending), _span(start, end))


def _span(first: int, last: int) -> str:
    return f"line {first}" if first == last else f"lines {first}-{last}"


def _line_units(
    data: str | Iterable[str], join_open_quotes: bool
) -> Iterator[tuple[str, int, int]]:
    """(text, first line, last line) of each non-blank line, or of lines joined by an open
    quote; the shared loop of `line_items` and `table_items`."""
    pending: list[str] = []
    start = 0
    number = 0
    for number, line in enumerate(lines_of(data), 1):
        if pending:
            pending.append(line)
            if line.count('"') % 2 == 1:
                yield "\n".join(pending), start, number
                pending = []
            continue
        if not line.strip():
            continue
        if join_open_quotes and '"' in line and line.count('"') % 2 == 1:
            pending = [line]
            start = number
            continue
        yield line, number, number
    if pending:
        yield "\n".join(pending), start, number


def line_items(data: str | Iterable[str], *, join_open_quotes: bool = False) -> Iterator[RawItem]:
    """One item per non-blank line.

    With `join_open_quotes`, a line with an odd number of double quotes continues on the next
    line (a CSV field holding a line break).
    """
    for text, first, last in _line_units(data, join_open_quotes):
        yield RawItem(text, f"line {first}" if first == last else _span(first, last))


def table_items(data: str | Iterable[str]) -> Iterator[RawItem]:
    """CSV rows under a header row; each item carries the header line and its row.

    Keeping the header with each row makes every item self-contained, so a dead letter can be
    fixed and replayed on its own.
    """
    units = _line_units(data, True)
    for header, _, _ in units:
        prefix = header + "\n"
        for text, first, last in units:
            yield RawItem(prefix + text, f"line {first}" if first == last else _span(first, last))
