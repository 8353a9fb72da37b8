"""Association figures: Manhattan plots (interaction, main effect), QQ plots, heatmap of the top pairs."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..plotting import plt, save


def _empty(path, message: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10)
    ax.set_axis_off()
    save(fig, path)


def _chrom_key(chrom) -> tuple:
    text = re.sub(r"^chr", "", str(chrom), flags=re.IGNORECASE)
    if text.isdigit():
        return (0, int(text), "")
    return (1, {"X": 0, "Y": 1, "XY": 2, "M": 3, "MT": 3}.get(text.upper(), 9), text)


def genome_positions(summary: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """x positions (chromosomes side by side, in natural order) and chromosome tick centres.

    Variants without a chromosome or position are placed after the last one, in
    table order.
    """
    pos = pd.to_numeric(summary.get("pos"), errors="coerce") if "pos" in summary else \
        pd.Series(np.nan, index=summary.index)
    chrom = summary["chrom"].astype(str) if "chrom" in summary else pd.Series("", index=summary.index)
    known = pos.notna() & chrom.ne("") & chrom.ne("nan")
    x = np.full(len(summary), np.nan)
    ticks = []
    offset = 0.0
    for name in sorted(chrom[known].unique(), key=_chrom_key):
        rows = known & chrom.eq(name)
        span = float(pos[rows].max())
        x[rows.to_numpy()] = offset + pos[rows].to_numpy(dtype=float)
        ticks.append((name, offset + span / 2))
        offset += span * 1.02 + 1
    unknown = np.flatnonzero(~known.to_numpy())
    step = max(offset, 1.0) / max(len(summary), 1)
    x[unknown] = offset + step * (np.arange(unknown.size) + 1)
    return x, ticks


def manhattan(summary: pd.DataFrame, kind: str, thresholds: dict, case: str, path) -> None:
    """-log10 of each variant's smallest p-value over species (``p_<kind>``) along the genome.

    ``thresholds``: label -> p drawn as dashed lines (the FDR threshold,
    genome-wide, study-wide).  Labelled variants (annotation ``label``)
    are named.  Points are rasterised, so a million variants stay a small file.
    """
    column = f"p_{kind}"
    what = {"interaction": f"genotype x {case} interaction", "genotype": "genotype main effect"}.get(kind, kind)
    data = summary[np.isfinite(summary[column].to_numpy(dtype=float))]
    if data.empty:
        _empty(path, f"No {what} was tested")
        return
    x, ticks = genome_positions(data)
    y = -np.log10(np.maximum(data[column].to_numpy(dtype=float), 1e-300))
    order = {name: i for i, (name, _) in enumerate(ticks)}
    shade = np.array([order.get(str(c), 0) % 2 for c in data["chrom"].astype(str)])
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.scatter(x, y, c=np.where(shade == 0, "#1f4e79", "#7fa7d1"), s=10 if len(data) < 10_000 else 3,
               linewidths=0, rasterized=True)
    styles = ["--", ":", "-."]
    for (label, p), style in zip(thresholds.items(), styles):
        if p is not None and p > 0:
            ax.axhline(-np.log10(p), color="#c0392b", ls=style, lw=0.9, label=label)
    if any(p for p in thresholds.values()):
        ax.legend(loc="upper right", fontsize=7, frameon=False)
    labels = data["label"].fillna("").astype(str).to_numpy() if "label" in data else np.full(len(data), "")
    for xi, yi, vid, label in zip(x, y, data["variant_id"], labels):
        if label:
            ax.scatter([xi], [yi], s=30, facecolors="none", edgecolors="#c0392b", linewidths=1)
            ax.annotate(f"{vid}\n{label}", (xi, yi), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.set_xticks([t for _, t in ticks], [name for name, _ in ticks], fontsize=7)
    ax.set_xlabel("chromosome")
    ax.set_ylabel(f"-log10 p ({kind})")
    ax.set_title(f"{what[0].upper() + what[1:]}: smallest p over species per variant", fontsize=10)
    ax.set_ylim(bottom=0, top=max(y.max() * 1.15, 2, *[-np.log10(p) * 1.05 for p in thresholds.values() if p]))
    ax.spines[["top", "right"]].set_visible(False)
    save(fig, path)


def qq(points: pd.DataFrame, lambdas: dict, path) -> None:
    """QQ plots of every kind of test (thinned points from :func:`workflow_scripts.gwas.inflation.qq_points`).

    ``lambdas``: kind -> median lambda GC over species, shown in the legend.
    """
    if points.empty:
        _empty(path, "No test was run")
        return
    names = {"genotype": "main effect", "interaction": "interaction", "presence": "presence (hurdle)",
             "carriers": "abundance in carriers (hurdle)"}
    colours = {"genotype": "#1f4e79", "interaction": "#c0392b", "presence": "#27ae60", "carriers": "#8e44ad"}
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    top = 0.0
    for kind, rows in points.groupby("kind", sort=False):
        lam = lambdas.get(kind)
        label = names.get(kind, kind) + (f" (median lambda {lam:.3g})" if lam is not None else "")
        ax.scatter(rows["expected"], rows["observed"], s=6, color=colours.get(kind, "grey"), label=label,
                   linewidths=0, rasterized=True)
        top = max(top, float(rows["expected"].max()), float(rows["observed"].max()))
    ax.plot([0, top], [0, top], color="black", lw=0.8)
    ax.set_xlabel("expected -log10 p")
    ax.set_ylabel("observed -log10 p")
    ax.set_title("QQ plot of every variant x species test", fontsize=10)
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    save(fig, path)


def heatmap(cells: pd.DataFrame, variants: pd.DataFrame, fdr: float, case: str, path) -> None:
    """Signed -log10 p of the interaction for the variants x species of the strongest pairs.

    Colour is ``sign(beta) * -log10 p``; an asterisk marks q below ``fdr``.
    ``variants`` (index variant_id) supplies labels for the rows.
    """
    if cells.empty:
        _empty(path, "No genotype x status interaction was tested")
        return
    cells = cells.assign(score=np.sign(cells["beta_interaction"]) *
                         -np.log10(np.maximum(cells["p_interaction"].astype(float), 1e-300)))
    matrix = cells.pivot(index="variant_id", columns="feature", values="score")
    qvals = cells.pivot(index="variant_id", columns="feature", values="q_interaction").reindex_like(matrix)
    limit = max(float(np.nanmax(np.abs(matrix.to_numpy()))), 1.0)
    height = 1.2 + 0.28 * matrix.shape[0]
    width = 2.5 + 0.3 * matrix.shape[1]
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    rows = []
    for vid in matrix.index:
        label = str(variants["label"].get(vid, "") or "") if "label" in variants else ""
        rows.append(f"{vid} ({label})" if label and label != "nan" else vid)
    ax.set_yticks(range(matrix.shape[0]), rows, fontsize=7)
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=90, fontsize=7)
    marks = np.argwhere(qvals.to_numpy(dtype=float) < fdr)
    for i, j in marks:
        ax.text(j, i, "*", ha="center", va="center", fontsize=9, color="black")
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("sign(beta) x -log10 p", fontsize=8)
    ax.set_title(f"Genotype x {case} interaction, strongest pairs (* q < {fdr:g})", fontsize=9)
    save(fig, path)
