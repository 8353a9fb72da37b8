"""HTML building blocks of the self-contained report: no external file, font, style or script.

Tables are sortable (click a header) and filterable (the box above them) by a
few lines of inline script; without script they are plain tables. Nothing is
wider than the page: tables wrap their cells, and below 720 px each row
becomes a small block of "column: value" lines.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import pandas as pd

STYLE = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0; color: #1d2330;
       background: #f4f5f7; line-height: 1.5; }
main { max-width: 1120px; margin: 0 auto; padding: 20px 32px 64px; background: #fff; }
h1 { font-size: 1.6em; margin: 0.3em 0 0.1em; } h2 { border-bottom: 2px solid #dfe3ea; padding-bottom: 4px;
     margin-top: 2.2em; } h3 { margin-top: 1.5em; font-size: 1.08em; }
p, li { max-width: 80ch; } a { color: #0b5cad; }
code { font-size: 0.9em; background: #f1f3f7; padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }
nav { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 0.9em; margin: 0.8em 0; }
.lede { font-size: 1.05em; } .note { color: #5a6372; font-size: 0.9em; }
.files { color: #5a6372; font-size: 0.85em; overflow-wrap: anywhere; }
.skip { background: #fff7e0; border-left: 4px solid #e0a800; padding: 8px 12px; border-radius: 3px; }
.caveats { background: #fff7e0; border-left: 4px solid #e0a800; padding: 6px 14px; border-radius: 3px; }
.caveats h3, .caveats h4 { margin: 0.4em 0; } .caveats li { margin: 0.2em 0; }
.summary { background: #f3f7fc; border-left: 4px solid #0072B2; padding: 4px 16px; border-radius: 3px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 1em 0; }
.stat { background: #f1f3f7; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.stat b { display: block; font-size: 1.4em; }
.taxon { border: 1px solid #dfe3ea; border-left: 6px solid #A0A0A0; border-radius: 6px; padding: 4px 16px 10px;
         margin: 14px 0; }
.taxon.high-risk { border-left-color: #D55E00; } .taxon.protective { border-left-color: #0072B2; }
.taxon h3 { margin: 0.5em 0 0.2em; overflow-wrap: anywhere; }
.badge { display: inline-block; font-size: 0.78em; font-weight: 600; padding: 1px 8px; border-radius: 10px;
         color: #fff; background: #A0A0A0; vertical-align: middle; margin-right: 4px; }
.badge.high-risk { background: #D55E00; } .badge.protective { background: #0072B2; }
.badge.flag { background: #e0a800; color: #1d2330; }
dl.facts { display: grid; grid-template-columns: minmax(8em, max-content) 1fr; gap: 2px 12px; margin: 0.5em 0;
           font-size: 0.92em; }
dl.facts dt { color: #5a6372; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
figure { margin: 0.6em 0; } figcaption { color: #5a6372; font-size: 0.85em; max-width: 90ch; }
img { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; font-size: 0.84em; margin: 0.4em 0 1em; width: 100%; }
th, td { border-bottom: 1px solid #e4e7ed; padding: 3px 6px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f1f3f7; cursor: pointer; user-select: none; position: relative; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.high-risk td:first-child, tr.up td:first-child { box-shadow: inset 4px 0 #D55E00; }
tr.protective td:first-child, tr.down td:first-child { box-shadow: inset 4px 0 #0072B2; }
tr.flagged td { background: #fff3cd; }
input.filter { font: inherit; font-size: 0.85em; padding: 3px 8px; width: min(320px, 100%);
               border: 1px solid #c8ced8; border-radius: 4px; }
details { margin: 0.6em 0; } summary { cursor: pointer; color: #0b5cad; }
pre { background: #f6f8fa; padding: 10px; font-size: 0.8em; white-space: pre-wrap; overflow-wrap: anywhere; }
ol.refs li { font-size: 0.9em; margin: 0.2em 0; }
@media (max-width: 720px) {
  main { padding: 12px 12px 40px; }
  dl.facts { grid-template-columns: 1fr; } dl.facts dd { margin-bottom: 4px; }
  table, thead, tbody, tr, th, td { display: block; width: 100%; }
  thead tr { display: none; }
  tr { border-bottom: 2px solid #dfe3ea; padding: 4px 0; }
  td { border: 0; padding: 1px 4px; white-space: normal; text-align: left; }
  td.num { text-align: left; white-space: normal; }
  td::before { content: attr(data-label) ": "; color: #5a6372; font-weight: 600; }
}
"""

SCRIPT = """
(function () {
  function key(cell) {
    var v = cell.getAttribute('data-v');
    if (v !== null && v !== '') return [0, parseFloat(v)];
    return [1, cell.textContent.trim().toLowerCase()];
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener('click', function () {
        var ascending = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[i]), y = key(b.cells[i]);
          if (x[0] !== y[0]) return x[0] - y[0];
          var d = x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0;
          return ascending ? d : -d;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.querySelectorAll('input.filter').forEach(function (input) {
    var table = input.parentNode.querySelector('table');
    input.addEventListener('input', function () {
      var q = input.value.toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
      });
    });
  });
})();
"""


def esc(text) -> str:
    return html.escape(str(text))


def fmt(value) -> str:
    """A number as people read it: 3 significant digits, scientific notation only when tiny or huge."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if value.is_integer() and abs(value) < 1e9:  # a count read as float beside missing values
            return fmt(int(value))
        if abs(value) < 1e-3 or abs(value) >= 1e6:
            return f"{value:.2e}"
        return f"{value:.3g}"
    return str(value)


def pct(value) -> str:
    """A rate as a percentage: one decimal below 10% (2.3%), none above (45%)."""
    if value is None or pd.isna(value):
        return ""
    value = float(value)
    return f"{value:.1%}" if 0 < abs(value) < 0.1 else f"{value:.0%}"


def breakable(text: str) -> str:
    """Escaped ``text`` that may wrap after an underscore (taxon names, column names) before anywhere else."""
    return esc(text).replace("_", "_<wbr>")


def _cell(value, label: str) -> str:
    if hasattr(value, "item"):
        value = value.item()
    lab = f' data-label="{esc(label)}"'
    if isinstance(value, bool) or value is None or (isinstance(value, float) and math.isnan(value)):
        return f"<td{lab}>{esc(fmt(value))}</td>"
    if isinstance(value, (int, float)):
        return f'<td class="num"{lab} data-v="{value!r}">{esc(fmt(value))}</td>'
    text = str(value)
    if text.startswith("<a href="):  # a link made by Results.link
        return f"<td{lab}>{text}</td>"
    return f"<td{lab}>{breakable(text)}</td>"


def table(frame: pd.DataFrame, max_rows: int = 500, index: bool = False, filter_box: bool | None = None,
          row_class: str | None = None) -> str:
    """A sortable table of at most ``max_rows`` rows (the rest counted in a note).

    ``filter_box``: a filter above the table (default: when it has more than 12 rows).
    ``row_class``: a column whose value becomes the row's CSS class (e.g. ``class``).
    """
    shown = frame.reset_index() if index else frame
    columns = [str(c) for c in shown.columns]
    head = "<thead><tr>" + "".join(f"<th>{breakable(c)}</th>" for c in columns) + "</tr></thead>"
    rows = []
    classes = shown[row_class].astype(str).tolist() if row_class and row_class in shown.columns else None
    for i, values in enumerate(shown.head(max_rows).itertuples(index=False)):
        cls = f' class="{esc(classes[i])}"' if classes else ""
        rows.append(f"<tr{cls}>" + "".join(_cell(v, c) for v, c in zip(values, columns)) + "</tr>")
    more = (f'<p class="note">{len(shown) - max_rows} more rows in the file.</p>'
            if len(shown) > max_rows else "")
    box = filter_box if filter_box is not None else len(shown) > 12
    search = '<input class="filter" type="search" placeholder="Filter rows" aria-label="Filter rows">' if box else ""
    return (f'<div class="table">{search}<table class="sortable">{head}<tbody>{"".join(rows)}</tbody></table>'
            f"{more}</div>")


def figure(source, alt: str, caption: str = "") -> str:
    """An image embedded as a data URI (PNG or SVG, from a path or bytes), so the page opens offline."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        data, kind = path.read_bytes(), "svg+xml" if path.suffix.lower() == ".svg" else "png"
    else:
        data, kind = source, "svg+xml" if source.lstrip()[:5] in (b"<?xml", b"<svg ") else "png"
    encoded = base64.b64encode(data).decode("ascii")
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img alt="{esc(alt)}" src="data:image/{kind};base64,{encoded}">{cap}</figure>'


def skipped(text: str) -> str:
    return f'<p class="skip">{text}</p>'


def caveats(items: list[str], title: str = "Caveats") -> str:
    if not items:
        return ""
    return f'<div class="caveats"><h4>{esc(title)}</h4><ul>' + "".join(f"<li>{c}</li>" for c in items) + "</ul></div>"


def facts(pairs: list[tuple[str, str]]) -> str:
    """A definition list of (label, HTML value) pairs, without the empty ones."""
    items = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs if v not in (None, ""))
    return f'<dl class="facts">{items}</dl>'


def details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>{body}</details>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body><main><h1>{esc(title)}</h1>"
            f"<p class=\"note\">{subtitle}</p><nav>{nav}</nav>{body}</main><script>{SCRIPT}</script>"
            "</body></html>\n")
