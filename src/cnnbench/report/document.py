"""The report as data: sections of paragraphs, tables, figures and collapsible blocks.

``content.py`` builds a ``Document``; ``html.py`` and ``markdown.py`` render the same one, so the
two files never disagree. Text here is plain text: each renderer escapes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Union


@dataclass
class Cell:
    text: str
    sort: float | str | None = None  # what the browser sorts by; None sorts last
    best: bool = False  # the best value of its column
    tie: bool = False  # within seed spread of the best value
    title: str | None = None  # tooltip
    css: str | None = None  # extra class: "bad" for failed runs


@dataclass
class Column:
    label: str
    title: str | None = None  # tooltip: what the column measures, its unit, which way is better


@dataclass
class Table:
    table_id: str
    columns: list[Column]
    rows: list[list[Cell]]
    caption: str = ""
    sortable: bool = True
    css: str = ""


@dataclass
class Image:
    name: str  # file stem under figures/
    png: bytes
    alt: str
    caption: str = ""
    wide: bool = True  # full width; False lets several share a row
    data: dict[str, str] = field(default_factory=dict)  # facts about the figure, as data-* attributes in HTML


@dataclass
class Gallery:
    images: list[Image]


@dataclass
class Paragraph:
    text: str
    kind: str = "p"  # p | note | warn


@dataclass
class Bullets:
    items: list[str]
    kind: str = "p"  # p | note | warn


@dataclass
class Code:
    text: str


@dataclass
class Details:
    summary: str
    blocks: list[Block]
    open: bool = False


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


Block = Union[Table, Image, Gallery, Paragraph, Bullets, Code, Details]  # noqa: UP007 (a runtime alias)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]

    def images(self) -> Iterator[Image]:
        """Every image, in page order (to write figures/ beside report.md)."""

        def walk(blocks: list[Block]) -> Iterator[Image]:
            for block in blocks:
                if isinstance(block, Image):
                    yield block
                elif isinstance(block, Gallery):
                    yield from block.images
                elif isinstance(block, Details):
                    yield from walk(block.blocks)

        for section in self.sections:
            yield from walk(section.blocks)

    def tables(self) -> Iterator[Table]:
        def walk(blocks: list[Block]) -> Iterator[Table]:
            for block in blocks:
                if isinstance(block, Table):
                    yield block
                elif isinstance(block, Details):
                    yield from walk(block.blocks)

        for section in self.sections:
            yield from walk(section.blocks)
