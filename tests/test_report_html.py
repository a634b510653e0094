"""HTML and Markdown rendering of a report Document: escaping, embedded figures, sortable tables."""

from __future__ import annotations

import base64
import re

from cnnbench.report.document import Bullets, Cell, Code, Column, Details, Document, Image, Paragraph, Section, Table
from cnnbench.report.html import render_html
from cnnbench.report.markdown import render_markdown
from cnnbench.report.style import new_figure, png_bytes


def _png() -> bytes:
    fig = new_figure(2, 1)
    fig.subplots().plot([0, 1], [1, 0])
    return png_bytes(fig)


def _doc(png: bytes) -> Document:
    table = Table(
        "results",
        [Column("Model", "architecture"), Column("Test acc (%)", "higher is better")],
        [
            [Cell("a<b>", "a<b>"), Cell("99.10 ± 0.10", 0.991, best=True)],
            [Cell("c|d", "c|d"), Cell("", None)],
        ],
        caption="One row per model",
    )
    section = Section(
        "Results & more",
        "results",
        [
            Paragraph("<script>alert(1)</script>", "warn"),
            table,
            Image("acc", png, "accuracy chart", "caption *here*"),
            Details("Layers of x", [Code("```\nconv\n```"), Bullets(["one", "two_three"])]),
        ],
    )
    return Document("Report <title>", "sub", [section])


def test_html_is_self_contained_and_escaped():
    png = _png()
    page = render_html(_doc(png), {"a<b>": "#1f77b4"})
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>Report &lt;title&gt;</title>" in page
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == 1 and srcs[0].startswith("data:image/png;base64,")
    assert base64.b64decode(srcs[0].split(",", 1)[1]) == png
    assert not re.search(r"(src|href)=\"(https?:|//)", page)  # nothing fetched from the network
    assert '<link rel="icon" href="data:,">' in page  # no favicon request
    assert page.count("<script>") == 1  # only the inline sorting script


def test_html_table_carries_sort_values_best_marks_and_swatches():
    page = render_html(_doc(_png()), {"a<b>": "#1f77b4"})
    assert '<table id="results" class="sortable">' in page
    assert 'class="best" data-sort="0.991"' in page
    assert '<span class="swatch" style="background:#1f77b4"></span>a&lt;b&gt;' in page
    assert "<td></td>" in page  # an empty cell has no data-sort: sorted last
    assert 'title="higher is better"' in page
    assert "<details><summary>Layers of x</summary>" in page


def test_the_section_bar_can_wrap_between_its_links():
    two = Document("r", "", [Section("One", "one", [Paragraph("a")]), Section("Two", "two", [Paragraph("b")])])
    page = render_html(two, {})
    assert '<nav><a href="#one">One</a> <a href="#two">Two</a></nav>' in page  # a space: a line may break there


def test_markdown_twin_has_the_same_content_with_figure_links():
    md = render_markdown(_doc(_png()), "figures")
    assert md.startswith("# Report \\<title\\>")
    assert "![accuracy chart](figures/acc.png)" in md
    assert "| a\\<b\\> | **99.10 ± 0.10** ★ |" in md
    assert "| c\\|d |  |" in md  # a pipe in a cell does not break the table
    assert "> **Note:** \\<script\\>alert(1)\\</script\\>" in md
    assert "~~~~\n```\nconv\n```\n~~~~" in md  # a fence inside code gets a longer fence
    assert "- two\\_three" in md
    assert '<a id="results"></a>' in md and "## Results & more" in md
