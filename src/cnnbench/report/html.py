"""``Document`` → one self-contained HTML page: figures as base64 data URIs, inline CSS and JS, no network.

The page opens from disk or as a mail attachment. Tables with ``sortable`` sort on a header click by
each cell's ``data-sort`` value (numbers numerically, empty cells last).
"""

from __future__ import annotations

import base64
from html import escape

from cnnbench.report.document import Block, Bullets, Code, Details, Document, Gallery, Image, Paragraph, Table

_CSS = """
:root { --fg:#1b1f24; --muted:#57606a; --line:#d0d7de; --best:#dafbe1; --tie:#f1f8e9; --bad:#ffebe9; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: var(--fg);
       margin: 0 auto; padding: 24px 32px 64px; max-width: 1500px; }
h1 { font-size: 1.8em; margin: 0 0 4px; } h2 { border-bottom: 1px solid var(--line); padding-bottom: 4px;
       margin-top: 40px; } .subtitle { color: var(--muted); margin: 0 0 16px; }
nav { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 8px 16px; margin: 16px 0; }
nav a { margin-right: 14px; white-space: nowrap; color: #0969da; text-decoration: none; }
p.note, ul.note { color: var(--muted); font-size: 0.92em; }
p.warn, ul.warn { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 8px 12px; }
ul.warn { padding-left: 32px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 0.88em; }
.table-wrap { overflow-x: auto; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; white-space: normal; min-width: 4.5em; vertical-align: bottom; }
td:first-child, th:first-child { text-align: left; }
table.kv th, table.kv td { text-align: left; white-space: normal; }
td.text:first-child { white-space: nowrap; }
p.caption { color: var(--muted); font-size: 0.9em; margin: 12px 0 2px; }
td.text { text-align: left; white-space: normal; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #8c959f; font-size: 0.8em; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--fg); }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--fg); }
td.best { background: var(--best); font-weight: 600; } td.best::after { content: " \\2605"; color: #1a7f37; }
td.tie { background: var(--tie); } td.tie::after { content: " \\2248"; color: #57606a; }
td.bad { background: var(--bad); }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px; margin-right: 6px;
          vertical-align: -1px; border: 1px solid rgba(0,0,0,0.3); }
figure { margin: 12px 0 24px; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: var(--muted); font-size: 0.9em; margin-top: 4px; }
.gallery { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.gallery figure { margin: 0; } .gallery figure.narrow { flex: 0 1 480px; } .gallery figure.wide { flex: 1 1 100%; }
details { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; margin: 8px 0; }
details > summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f8fa; padding: 10px 12px; border-radius: 6px; overflow-x: auto; font-size: 0.85em; }
"""

_JS = """
(function () {
  function key(cell) {
    var v = cell.getAttribute('data-sort');
    if (v === null || v === '') return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener('click', function () {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          if (x === null && y === null) return 0;
          if (x === null) return 1;   // empty cells last, whichever the direction
          if (y === null) return -1;
          var c = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(doc: Document, swatches: dict[str, str] | None = None) -> str:
    """The whole page as one string.

    Args:
        swatches: model → colour; a model's name in the first column of a table gets its colour chip.
    """
    swatches = swatches or {}
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request: the page makes no request at all
        f"<title>{escape(doc.title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{escape(doc.title)}</h1>",
        f'<p class="subtitle">{escape(doc.subtitle)}</p>',
        # spaces between the links: the bar wraps on a narrow window instead of running off it
        "<nav>" + " ".join(f'<a href="#{escape(s.anchor)}">{escape(s.title)}</a>' for s in doc.sections) + "</nav>",
    ]
    for section in doc.sections:
        out.append(f'<section id="{escape(section.anchor)}"><h2>{escape(section.title)}</h2>')
        out.extend(_block(b, swatches) for b in section.blocks)
        out.append("</section>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"


def _block(block: Block, swatches: dict[str, str]) -> str:
    if isinstance(block, Paragraph):
        return f'<p class="{escape(block.kind)}">{escape(block.text)}</p>'
    if isinstance(block, Bullets):
        items = "".join(f"<li>{escape(item)}</li>" for item in block.items)
        return f'<ul class="{escape(block.kind)}">{items}</ul>'
    if isinstance(block, Code):
        return f"<pre>{escape(block.text)}</pre>"
    if isinstance(block, Image):
        return _figure(block)
    if isinstance(block, Gallery):
        return '<div class="gallery">' + "".join(_figure(img) for img in block.images) + "</div>"
    if isinstance(block, Details):
        inner = "\n".join(_block(b, swatches) for b in block.blocks)
        return f"<details{' open' if block.open else ''}><summary>{escape(block.summary)}</summary>{inner}</details>"
    if isinstance(block, Table):
        return _table(block, swatches)
    raise TypeError(f"unknown report block {type(block).__name__}")


def _figure(img: Image) -> str:
    caption = f"<figcaption>{escape(img.caption)}</figcaption>" if img.caption else ""
    css = "wide" if img.wide else "narrow"
    # id and data-* attributes: what a script or a test reads about the figure without decoding pixels
    attrs = f' id="figure-{escape(img.name)}"' + "".join(_attr(f"data-{k}", v) for k, v in img.data.items())
    return f'<figure class="{css}"{attrs}><img src="{data_uri(img.png)}" alt="{escape(img.alt)}">{caption}</figure>'


def _table(table: Table, swatches: dict[str, str]) -> str:
    classes = " ".join(c for c in (table.css, "sortable" if table.sortable else "") if c)
    head = "".join(f'<th{_attr("title", c.title)} scope="col">{escape(c.label)}</th>' for c in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for j, cell in enumerate(row):
            css = [c for c in (cell.css, "best" if cell.best else "", "tie" if cell.tie else "") if c]
            if isinstance(cell.sort, str) or (cell.sort is None and j == 0):
                css.append("text")
            text = escape(cell.text)
            if j == 0 and cell.text in swatches:
                text = f'<span class="swatch" style="background:{escape(swatches[cell.text])}"></span>{text}'
            sort = "" if cell.sort is None else (repr(cell.sort) if isinstance(cell.sort, float) else str(cell.sort))
            cells.append(
                f"<td{_attr('class', ' '.join(css))}{_attr('data-sort', sort)}{_attr('title', cell.title)}>{text}</td>"
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    # the caption goes above the scrolling box, so a wide table never hides it
    caption = f'<p class="caption">{escape(table.caption)}</p>' if table.caption else ""
    return (
        f'{caption}<div class="table-wrap"><table id="{escape(table.table_id)}"{_attr("class", classes)}>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _attr(name: str, value: str | None) -> str:
    return f' {name}="{escape(value)}"' if value else ""
