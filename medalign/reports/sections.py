"""A results section as data: a heading, then paragraphs and tables, rendered once to
Markdown (results.md) and once to HTML (report.html) from the same object.

    section = Section("RL rewards: ...", (Table(header, rule, rows), "p: Welch's ..."))
    section.markdown()     # "\\n## RL rewards: ...\\n\\n| stage | ... |\\n...\\n"
    section.html()         # ["<h2>RL rewards: ...</h2>", "<table>...</table>", "<p>...</p>"]

Why: report.html used to re-read results.md and split it by `## ` heading, so the two
files agreed only as long as the Markdown parsed back. The curriculum now builds its
sections once (medalign/reports/results.py), writes their Markdown to results.md and their
data to results_sections.json, which report.html renders.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rule: str  # the Markdown alignment line, e.g. "|---|---:|"
    rows: tuple[tuple[str, ...], ...]

    def markdown(self) -> str:
        lines = [_row(self.header), self.rule, *(_row(r) for r in self.rows)]
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{_e(c)}</th>" for c in self.header)
        body = ["".join(f"<td>{_e(c)}</td>" for c in row) for row in self.rows]
        return "<table>" + "".join(f"<tr>{r}</tr>" for r in [head, *body]) + "</table>"


@dataclass(frozen=True)
class Section:
    """One `## ` section of results.md; `in_html`: report.html shows it too."""

    heading: str
    blocks: tuple[str | Table, ...]  # a str is a one-line paragraph
    in_html: bool = True

    def markdown(self) -> str:
        parts = [b if isinstance(b, str) else b.markdown() for b in self.blocks]
        return f"\n## {self.heading}\n\n" + "\n\n".join(parts) + "\n"

    def html(self) -> list[str]:
        out = [f"<h2>{_e(self.heading)}</h2>"]
        out += [f"<p>{_e(b.strip())}</p>" if isinstance(b, str) else b.html() for b in self.blocks]
        return out

    def to_json(self) -> dict[str, Any]:
        blocks = [
            b if isinstance(b, str) else {"header": b.header, "rule": b.rule, "rows": b.rows}
            for b in self.blocks
        ]
        return {"heading": self.heading, "blocks": blocks, "in_html": self.in_html}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Section:
        blocks = tuple(
            b
            if isinstance(b, str)
            else Table(tuple(b["header"]), b["rule"], tuple(tuple(r) for r in b["rows"]))
            for b in data["blocks"]
        )
        return cls(data["heading"], blocks, data.get("in_html", True))

    @classmethod
    def from_markdown(cls, text: str, in_html: bool = True) -> Section | None:
        """A section from Markdown that a table builder returns as text (the forgetting
        table of medalign/reports/paired.py): its one `## ` heading, one-line paragraphs
        and pipe tables. None for "" (no such table)."""
        if not text.strip():
            return None
        heading, _, body = text.strip("\n").partition("\n")
        blocks: list[str | Table] = []
        lines: list[str] = []
        for line in [*body.splitlines(), ""]:
            if line.startswith("|"):
                lines.append(line)
                continue
            if lines:
                cells = [_cells(x) for x in lines]
                blocks.append(Table(cells[0], lines[1], tuple(cells[2:])))
                lines = []
            if line.strip():
                blocks.append(line)
        return cls(heading.removeprefix("## "), tuple(blocks), in_html)


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cells(line: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in line.strip().strip("|").split("|"))


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)
