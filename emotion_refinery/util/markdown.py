"""Markdown tables, as report.md and the leakage audit write them."""

from __future__ import annotations

from typing import Any

__all__ = ["markdown_table"]


def markdown_table(header: list[str], rows: list[list[Any]], align: str) -> list[str]:
    """The lines of a markdown table: ``header``, the alignment row (``align``: one letter per column, ``l``
    left, ``r`` right) and one line per row of ``rows`` (cells as ``str`` gives them)."""
    marks = {"l": "---", "r": "---:"}

    def line(cells) -> str:
        return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"

    return [line(header), "|" + "".join(marks[a] + "|" for a in align)] + [line(row) for row in rows]
