"""Figures of every stage: one backend, one style, one palette, one way to save.

Import ``plt`` from here, never ``matplotlib.pyplot`` directly: the
non-interactive Agg backend is set before pyplot loads (rules run without a
display) and the house style (:data:`STYLE`: font, sizes, no top/right
spines) is applied once for every figure.

The small API a stage needs::

    from ..plotting import plt, save, status_colours, site_colours, DIRECTION, label_points

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    colours = status_colours(case, control)       # {case: MS colour, control: HHC colour}
    ax.scatter(x, y, color=[colours[s] for s in status])
    label_points(ax, x, y, names)                  # labels that never overlap or leave the axes
    save(fig, "figure.png")                        # 200 dpi PNG (or .svg), byte-identical per input

One colour meaning per variable across the report:

- status: :data:`CASE` (MS) and :data:`CONTROL` (household control), always;
  a direction of effect uses the same two (higher in MS = :data:`CASE`,
  lower = :data:`CONTROL`; :data:`DIRECTION`, :data:`CLASS_COLOURS`) and
  :data:`NEUTRAL` grey for "not significant";
- site: :func:`site_colours`, a qualitative palette with neither of the
  status colours in it;
- signed values (heatmaps): :data:`DIVERGING`, from :data:`CONTROL` through
  white to :data:`CASE`; unsigned ones: :data:`SEQUENTIAL`.

Tests check a figure with :func:`layout_problems` (overlapping labels, text
outside the figure) after it is drawn.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

__all__ = ["CASE", "CLASS_COLOURS", "CONTROL", "DIRECTION", "DIVERGING", "NEUTRAL", "PNG_METADATA",
           "SEQUENTIAL", "SITE_PALETTE", "label_points", "layout_problems", "plt", "save", "site_colours",
           "status_colours", "svg_text"]

#: Okabe-Ito vermillion and blue: distinguishable with every common colour-vision deficiency.
CASE = "#D55E00"
CONTROL = "#0072B2"
NEUTRAL = "#A0A0A0"
#: Sign of an effect (MS vs control): same colours as the status it points to.
DIRECTION = {"up": CASE, "down": CONTROL, "none": NEUTRAL}
CLASS_COLOURS = {"high-risk": CASE, "protective": CONTROL, "neutral": NEUTRAL}
#: Sites (recruitment centres): no vermillion or blue, so a site never reads as a status.
SITE_PALETTE = ("#009E73", "#7A4FA3", "#E69F00", "#CC79A7", "#4D4D4D", "#8C6D31", "#56B4E9", "#B8B800",
                "#1B7A7A", "#E7298A")
DIVERGING = LinearSegmentedColormap.from_list("control_white_case", [CONTROL, "#FFFFFF", CASE])
SEQUENTIAL = "viridis"

STYLE = {
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlelocation": "left",
    "svg.fonttype": "none",  # text stays text in the report's SVG (searchable, crisp)
    "svg.hashsalt": "imsms",  # stable element ids: the same figure gives the same bytes
}
plt.rcParams.update(STYLE)

#: No "Software" entry: the bytes do not depend on the matplotlib version.
PNG_METADATA = {"Software": None}
SVG_METADATA = {"Date": None, "Creator": None}
#: PNG resolution: sharp on high-density screens and in print.
DPI = 200


def status_colours(case: str, control: str) -> dict[str, str]:
    """``{case: CASE, control: CONTROL}`` for the cohort's own status labels."""
    return {case: CASE, control: CONTROL}


def site_colours(sites) -> dict[str, str]:
    """One colour per site, in sorted order (the same site gets the same colour in every figure)."""
    names = sorted({str(s) for s in sites})
    return {name: SITE_PALETTE[i % len(SITE_PALETTE)] for i, name in enumerate(names)}


def save(fig, path, tight: bool = True) -> None:
    """Write ``fig`` (PNG at :data:`DPI`, or SVG by the suffix), trimmed to its content when ``tight``; close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    svg = path.suffix.lower() == ".svg"
    fig.savefig(path, dpi=DPI, bbox_inches="tight" if tight else None,
                metadata=SVG_METADATA if svg else PNG_METADATA)
    plt.close(fig)


def svg_text(fig) -> str:
    """``fig`` as SVG markup to inline in an HTML page (no XML header, scales to its container); closes it."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata=SVG_METADATA)
    plt.close(fig)
    text = buffer.getvalue()
    start = text.index("<svg")
    return text[start:]


# --- Layout: labels that never overlap or leave the figure -------------------------------------------------

def _undrawn_tick_labels(fig) -> set[int]:
    """Ids of tick labels matplotlib keeps but does not draw (their tick lies outside the view)."""
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = (high - low) * 1e-9
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                loc = tick.get_loc()
                if loc is None or not low - slack <= loc <= high + slack:
                    hidden |= {id(tick.label1), id(tick.label2)}
    return hidden


def _text_boxes(fig) -> list[tuple[Text, Bbox]]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = _undrawn_tick_labels(fig)
    boxes = []
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and id(text) not in hidden:
            # Text's own extent: an annotation's includes its leader line, which may cross other texts.
            boxes.append((text, Text.get_window_extent(text, renderer)))
    return boxes


def layout_problems(fig, tolerance: float = 0.5) -> list[str]:
    """Texts that overlap each other or reach outside the figure, after drawing ``fig``.

    Returns one line per problem (empty when the layout is clean). Bounding
    boxes are compared in display units; ``tolerance`` (pixels) forgives
    touching edges.
    """
    problems = []
    boxes = _text_boxes(fig)
    frame = fig.bbox
    for text, box in boxes:
        if (box.x0 < frame.x0 - tolerance or box.y0 < frame.y0 - tolerance
                or box.x1 > frame.x1 + tolerance or box.y1 > frame.y1 + tolerance):
            problems.append(f"text {text.get_text()!r} reaches outside the figure")
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        width = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        height = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if width > tolerance and height > tolerance:
            problems.append(f"texts {a.get_text()!r} and {b.get_text()!r} overlap")
    return problems


def label_points(ax, x, y, labels, fontsize: float = 7, max_labels: int | None = None) -> int:
    """Name points without overlap: each label takes the first free place around its point.

    Labels are placed in the order given (most important first) at growing
    distances around their point, with a thin leader line when moved away; a
    place is free when the label stays inside the axes and overlaps no other
    text of the figure (labels, titles, tick labels). A label with no free
    place is left out. Call it after the figure's layout is final (it freezes
    the layout engine so that nothing moves afterwards).

    Returns the number of labels placed.
    """
    fig = ax.figure
    fig.canvas.draw()
    fig.set_layout_engine("none")  # positions measured now must stay true when saved
    renderer = fig.canvas.get_renderer()
    area = ax.get_window_extent(renderer)
    taken = [box for _, box in _text_boxes(fig)]
    px = fig.dpi / 72.0
    points = ax.transData.transform(np.column_stack([np.asarray(x, float), np.asarray(y, float)]))
    offsets = [(dx * r, dy * r) for r in (4, 10, 18, 28)
               for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1.4), (0, -1.4))]
    placed = 0
    for (xd, yd), (xv, yv), label in zip(points, zip(x, y), labels):
        if max_labels is not None and placed >= max_labels:
            break
        if not np.all(np.isfinite([xd, yd])):
            continue
        for dx, dy in offsets:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
            text = ax.annotate(str(label), (xv, yv), xytext=(dx, dy), textcoords="offset points",
                               fontsize=fontsize, ha=ha, va=va, annotation_clip=False)
            text.update_positions(renderer)
            box = Text.get_window_extent(text, renderer).padded(1.5 * px)
            inside = (box.x0 >= area.x0 and box.x1 <= area.x1 and box.y0 >= area.y0 and box.y1 <= area.y1)
            if inside and not any(box.overlaps(other) for other in taken):
                if abs(dx) + abs(dy) > 8:
                    text.remove()
                    text = ax.annotate(str(label), (xv, yv), xytext=(dx, dy), textcoords="offset points",
                                       fontsize=fontsize, ha=ha, va=va, annotation_clip=False,
                                       arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.4",
                                                   "shrinkA": 0, "shrinkB": 2})
                taken.append(box)
                placed += 1
                break
            text.remove()
    return placed
