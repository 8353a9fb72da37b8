"""The report's own figures: one per called taxon (methods, sites, abundance within households).

Drawn with the house style of :mod:`workflow_scripts.plotting` and returned as
PNG bytes, checked for overlapping or clipped labels by the tests.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from PIL import Image
from scipy.stats import norm

from ..plotting import CASE, CONTROL, NEUTRAL, PNG_METADATA, plt, site_colours

#: Card figures: sharp at the page's width, small enough for dozens of cards in one file.
CARD_DPI = 130


def signed_z(effect, pvalue) -> np.ndarray:
    """The normal deviate of a two-sided p-value with the effect's sign: one scale for every method."""
    p = np.clip(np.asarray(pvalue, dtype=float), 1e-300, 1.0)
    return np.sign(np.asarray(effect, dtype=float)) * norm.isf(p / 2)


def _methods_panel(ax, methods: pd.DataFrame, q_threshold: float) -> None:
    """``methods``: method, effect, pvalue, qvalue (one row per method)."""
    z = signed_z(methods["effect"], methods["pvalue"])
    y = np.arange(len(methods))[::-1]
    significant = methods["qvalue"].to_numpy(dtype=float) < q_threshold
    colours = [CASE if s and v > 0 else CONTROL if s and v < 0 else NEUTRAL for s, v in zip(significant, z)]
    ax.axvline(0, color="0.3", lw=0.6)
    for edge in (-1.96, 1.96):
        ax.axvline(edge, color="0.75", lw=0.6, ls="--")
    ax.scatter(z, y, color=colours, s=28, zorder=3)
    ax.set_yticks(y, methods["method"])
    lim = max(3.0, float(np.nanmax(np.abs(z))) * 1.15) if np.isfinite(z).any() else 3.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-0.7, len(methods) - 0.3)
    ax.set_xlabel("signed z of each method's p")
    ax.set_title("Methods")


def _sites_panel(ax, sites: pd.DataFrame, overall: dict | None, meta: dict | None) -> None:
    """``sites``: site, effect, se; ``overall``/``meta``: effect and se of the pooled fits."""
    rows = []
    colours = site_colours(sites["site"]) if len(sites) else {}
    for site, effect, se in zip(sites["site"], sites["effect"], sites["se"]):
        rows.append((str(site), effect, se, colours[str(site)], "o"))
    if meta and np.isfinite(meta.get("effect", np.nan)):
        rows.append(("sites pooled", meta["effect"], meta.get("se", np.nan), "black", "D"))
    if overall and np.isfinite(overall.get("effect", np.nan)):
        rows.append(("whole cohort", overall["effect"], overall.get("se", np.nan), "black", "s"))
    if not rows:
        ax.text(0.5, 0.5, "no per-site fit", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    y = np.arange(len(rows))[::-1]
    ax.axvline(0, color="0.3", lw=0.6)
    for yi, (label, effect, se, colour, marker) in zip(y, rows):
        if np.isfinite(se):
            ax.plot([effect - 1.96 * se, effect + 1.96 * se], [yi, yi], color=colour, lw=1.4)
        ax.scatter([effect], [yi], color=colour, marker=marker, s=30, zorder=3)
    ax.set_yticks(y, [r[0] for r in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("log2 fold change, 95% CI")
    ax.set_title("Sites\n(primary method)")


def _abundance_panel(ax, values: pd.Series, info: pd.DataFrame, case: str, control: str) -> None:
    """Relative abundance (%) of each participant; a line joins each household's patient and control."""
    data = info.assign(value=values.reindex(info.index) * 100)
    positive = data["value"][data["value"] > 0]
    floor = float(positive.min()) / 3 if len(positive) else 1e-3
    data["shown"] = data["value"].where(data["value"] > 0, floor)
    rng = np.random.default_rng(0)  # jitter only: fixed seed, the same figure every run
    data["x"] = np.where(data["status"] == case, 2.0, 1.0) + rng.uniform(-0.08, 0.08, len(data))
    wide = data.pivot_table(index="household_id", columns="status", values=["x", "shown"], aggfunc="first")
    segments, seg_colours = [], []
    if ("x", case) in wide.columns and ("x", control) in wide.columns:
        pairs = wide.dropna()
        for _, row in pairs.iterrows():
            a, b = row[("shown", control)], row[("shown", case)]
            segments.append([(row[("x", control)], a), (row[("x", case)], b)])
            seg_colours.append(CASE if b > a else CONTROL if b < a else NEUTRAL)
    ax.add_collection(LineCollection(segments, colors=seg_colours, linewidths=0.6, alpha=0.45, zorder=1))
    for label, colour in ((control, CONTROL), (case, CASE)):
        group = data[data["status"] == label]
        ax.scatter(group["x"], group["shown"], s=9, color=colour, alpha=0.8, linewidths=0, zorder=2)
        median = group["value"].median()
        centre = 2.0 if label == case else 1.0
        if np.isfinite(median) and median > 0:
            ax.plot([centre - 0.25, centre + 0.25], [median, median], color="black", lw=1.5, zorder=3)
    ax.set_yscale("log")
    ax.axhline(floor * 1.7, color="0.8", lw=0.5, ls=":")
    ax.set_xticks([1, 2], [control, case])
    ax.set_xlim(0.5, 2.5)
    ax.set_ylabel("relative abundance (%)")
    up = sum(c == CASE for c in seg_colours)
    ax.set_title(f"Within households\n{up} of {len(seg_colours)} higher in {case}")


def taxon_figure(methods: pd.DataFrame | None, sites: pd.DataFrame | None, overall: dict | None,
                 meta: dict | None, abundance: pd.Series | None, info: pd.DataFrame | None, case: str,
                 control: str, q_threshold: float = 0.05):
    """A taxon's card figure (open: pass it to :func:`png_bytes`).

    Panels (those with data): each method's signed z; the per-site effects with
    the pooled and whole-cohort effects; the relative abundance of every
    participant with household pairs joined (zeros drawn at the dotted floor).
    """
    panels = [p for p, ok in (("methods", methods is not None and len(methods)),
                              ("sites", sites is not None or meta or overall),
                              ("abundance", abundance is not None and info is not None)) if ok]
    widths = {"methods": 1.0, "sites": 1.0, "abundance": 0.9}
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(3.3 * max(len(panels), 1), 2.9), squeeze=False,
                             layout="constrained", gridspec_kw={"width_ratios": [widths[p] for p in panels] or [1]})
    for ax, panel in zip(axes[0], panels):
        if panel == "methods":
            _methods_panel(ax, methods, q_threshold)
        elif panel == "sites":
            _sites_panel(ax, sites if sites is not None else pd.DataFrame(columns=["site", "effect", "se"]),
                         overall, meta)
        else:
            _abundance_panel(ax, abundance, info, case, control)
    return fig


def png_bytes(fig, dpi: int = CARD_DPI, colours: int = 128) -> bytes:
    """``fig`` as PNG bytes with a palette of ``colours`` (a fifth of the size, same look); closes it.

    Median-cut quantisation without dithering is deterministic: the same
    figure gives the same bytes.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata=PNG_METADATA)
    plt.close(fig)
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    small = image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()
