"""``Document`` → ``report.md``: the same content, figures as PNG files in a folder beside it."""

from __future__ import annotations

from cnnbench.report.document import Block, Bullets, Code, Details, Document, Gallery, Image, Paragraph, Table


def render_markdown(doc: Document, figures_dir: str = "figures") -> str:
    """Markdown (GitHub flavour: pipe tables, ``<details>``); images link to ``figures_dir/<name>.png``."""
    out = [f"# {_inline(doc.title)}", "", f"*{_inline(doc.subtitle)}*", ""]
    out += ["Contents: " + " · ".join(f"[{_inline(s.title)}](#{s.anchor})" for s in doc.sections), ""]
    for section in doc.sections:
        out += [f'<a id="{section.anchor}"></a>', "", f"## {_inline(section.title)}", ""]
        for block in section.blocks:
            out += _block(block, figures_dir)
    return "\n".join(out).rstrip() + "\n"


def _inline(text: str) -> str:
    """Escape what Markdown would read as markup inside running text."""
    for ch in ("\\", "*", "_", "`", "[", "]", "<", ">", "|"):
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", " ")


def _block(block: Block, figures_dir: str) -> list[str]:
    if isinstance(block, Paragraph):
        text = _inline(block.text)
        if block.kind == "warn":
            return [f"> **Note:** {text}", ""]
        if block.kind == "note":
            return [f"*{text}*" if text else "", ""]
        return [text, ""]
    if isinstance(block, Bullets):
        prefix = "> " if block.kind == "warn" else ""
        return [f"{prefix}- {_inline(item)}" for item in block.items] + [""]
    if isinstance(block, Code):
        fence = "~~~~" if "```" in block.text else "```"
        return [fence, block.text.rstrip("\n"), fence, ""]
    if isinstance(block, Image):
        return _image(block, figures_dir)
    if isinstance(block, Gallery):
        return [line for img in block.images for line in _image(img, figures_dir)]
    if isinstance(block, Details):
        lines = ["<details>", f"<summary>{_html_text(block.summary)}</summary>", ""]
        for inner in block.blocks:
            lines += _block(inner, figures_dir)
        return lines + ["</details>", ""]
    if isinstance(block, Table):
        return _table(block)
    raise TypeError(f"unknown report block {type(block).__name__}")


def _image(img: Image, figures_dir: str) -> list[str]:
    lines = [f"![{_inline(img.alt)}]({figures_dir}/{img.name}.png)", ""]
    if img.caption:
        lines += [f"*{_inline(img.caption)}*", ""]
    return lines


def _table(table: Table) -> list[str]:
    lines = [f"*{_inline(table.caption)}*", ""] if table.caption else []
    lines.append("| " + " | ".join(_cell_text(c.label) for c in table.columns) + " |")
    lines.append("|" + "|".join(":---" if j == 0 else "---:" for j in range(len(table.columns))) + "|")
    for row in table.rows:
        cells = []
        for cell in row:
            text = _cell_text(cell.text)
            if cell.best and text:
                text = f"**{text}** ★"
            elif cell.tie and text:
                text = f"{text} ≈"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _cell_text(text: str) -> str:
    return _inline(text).replace("\n", "<br>")


def _html_text(text: str) -> str:
    from html import escape

    return escape(text)
