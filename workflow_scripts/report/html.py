"""Small HTML building blocks for a self-contained report (no external files or scripts)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0; color: #1d2330;
       background: #fafbfc; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #dfe3ea; padding-bottom: 4px;
     margin-top: 2em; } h3 { margin-top: 1.4em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0 1em; }
th, td { border: 1px solid #dfe3ea; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f1f3f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eef0f4; margin: 0.4em 0; }
.note { color: #5a6372; font-size: 0.9em; } .skip { background: #fff7e0; padding: 8px 12px; border-radius: 4px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 1em 0; }
.card { background: #f1f3f7; border-radius: 6px; padding: 10px 16px; min-width: 120px; }
.card b { display: block; font-size: 1.5em; }
nav a { margin-right: 14px; font-size: 0.9em; }
.high-risk { color: #b3261e; font-weight: 600; } .protective { color: #1e6b3a; font-weight: 600; }
pre { background: #f6f8fa; padding: 10px; overflow-x: auto; font-size: 0.8em; }
.scroll { overflow-x: auto; max-width: 100%; }
"""


def esc(text) -> str:
    return html.escape(str(text))


def image(path: str | Path, alt: str) -> str:
    """A PNG embedded as a data URI, so the page opens offline."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _cell(value) -> str:
    if isinstance(value, float):
        if pd.isna(value):
            return '<td class="num"></td>'
        text = f"{value:.3g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4g}"
        return f'<td class="num">{esc(text)}</td>'
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    text = "" if value is None else str(value)
    cls = f' class="{esc(text)}"' if text in ("high-risk", "protective") else ""
    return f"<td{cls}>{esc(text)}</td>"


def table(frame: pd.DataFrame, max_rows: int = 60, index: bool = False) -> str:
    """An HTML table of at most ``max_rows`` rows (the rest counted in a note)."""
    shown = frame.reset_index() if index else frame
    rows = ["<tr>" + "".join(f"<th>{esc(c)}</th>" for c in shown.columns) + "</tr>"]
    for values in shown.head(max_rows).itertuples(index=False):
        rows.append("<tr>" + "".join(_cell(v.item() if hasattr(v, "item") else v) for v in values) + "</tr>")
    more = f'<p class="note">{len(shown) - max_rows} more rows in the TSV file.</p>' if len(shown) > max_rows else ""
    # Wide tables (the classification evidence) scroll inside the page instead of widening it.
    return '<div class="scroll"><table>' + "".join(rows) + "</table></div>" + more


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, sections: list[tuple[str, str, str]], subtitle: str = "") -> str:
    nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t, _ in sections)
    body = "".join(section(a, t, b) for a, t, b in sections)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><main><h1>{esc(title)}</h1>"
            f"<p class=\"note\">{esc(subtitle)}</p><nav>{nav}</nav>{body}</main></body></html>\n")
