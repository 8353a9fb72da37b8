"""Diversity figures for the report: alpha boxplots with household pairs, PCoA by status and site."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection

from ..plotting import plt, save, site_colours, status_colours


def _pair_segments(info: pd.DataFrame, data: pd.Series, case: str, control: str) -> np.ndarray:
    """One segment (control at x=1, case at x=2) per household of exactly one case and one control."""
    frame = info.assign(value=data)
    size = frame.groupby("household")["status"].transform("size")
    frame = frame[size == 2]
    wide = frame.pivot_table(index="household", columns="status", values="value", aggfunc="first",
                             dropna=False)
    if case not in wide or control not in wide:
        return np.empty((0, 2, 2))
    wide = wide[[control, case]].dropna()
    return np.stack([np.column_stack([np.ones(len(wide)), wide[control]]),
                     np.column_stack([np.full(len(wide), 2.0), wide[case]])], axis=1)


def alpha_boxplots(values: pd.DataFrame, labels: pd.DataFrame, case: str, control: str, path) -> None:
    """One panel per metric: boxes by status (the status colours), a grey line joining each household pair.

    ``values`` is participants x metrics; ``labels`` has participant_id, status, household.
    """
    info = labels.set_index("participant_id")
    metrics = list(values.columns)
    colours = status_colours(case, control)
    columns = min(len(metrics), 4)
    rows = -(-len(metrics) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.3 * columns + 0.4, 2.7 * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(metrics):]:
        ax.set_axis_off()
    for ax, metric in zip(axes.flat, metrics):
        data = values[metric].reindex(info.index)
        groups = [data[info["status"] == lab].dropna() for lab in (control, case)]
        ax.add_collection(LineCollection(_pair_segments(info, data, case, control), colors="0.8",
                                         linewidths=0.6, zorder=1))
        boxes = ax.boxplot(groups, widths=0.5, showfliers=False, zorder=2, patch_artist=True,
                           medianprops={"color": "black"})
        for box, label in zip(boxes["boxes"], (control, case)):
            box.set(facecolor=colours[label], alpha=0.35, edgecolor=colours[label])
        ax.set_xticks([1, 2], [control, case])
        ax.set_title(metric.replace("_", " "))
    save(fig, path)


def pcoa_plot(ordination, labels: pd.DataFrame, metric: str, case: str, path) -> None:
    """PC1 vs PC2 coloured by status (left, the status colours) and by site (right, the site palette)."""
    coords = ordination.samples.reindex(labels.index)
    explained = ordination.proportion_explained
    x, y = coords.iloc[:, 0], coords.iloc[:, 1] if coords.shape[1] > 1 else np.zeros(len(coords))
    statuses = sorted(labels["status"].unique(), key=lambda s: s != case)
    control = next((s for s in statuses if s != case), case)
    palettes = {"status": status_colours(case, control), "site": site_colours(labels["site"])}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, column in zip(axes, ("status", "site")):
        colours = palettes[column]
        for level in sorted(labels[column].unique()):
            mask = (labels[column] == level).to_numpy()
            ax.scatter(x[mask], y[mask], s=12, alpha=0.8, color=colours.get(level, "0.5"), label=level,
                       linewidths=0)
        ax.set_xlabel(f"PC1 ({explained.iloc[0]:.1%})")
        ax.set_ylabel(f"PC2 ({explained.iloc[1]:.1%})" if len(explained) > 1 else "PC2")
        ax.set_title(f"{metric.replace('_', ' ')}, by {column}")
        # Beside the axes, never over the points.
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), markerscale=1.5, borderaxespad=0.2)
    save(fig, path)


def stability_plot(table: pd.DataFrame, summary: dict, path) -> None:
    """Within-participant stability: the ICC of every taxon (left), and ICC against presence agreement (right).

    ``table`` is the stability table (:mod:`.stability`); when it is empty the
    figure shows the summary's note instead.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    if table.empty:
        for ax in axes:
            ax.axis("off")
        axes[0].text(0, 0.5, summary.get("note", "no stability estimates"), fontsize=9, wrap=True,
                     transform=axes[0].transAxes)
        fig.tight_layout()
        save(fig, path)
        return
    icc = table["icc"].dropna()
    axes[0].hist(icc, bins=np.linspace(0, 1, 21), color="0.45")
    axes[0].axvline(icc.median(), color="tab:red", linewidth=1)
    axes[0].set_xlabel("ICC (two samples of one participant)")
    axes[0].set_ylabel("taxa")
    axes[0].set_title(f"median ICC {icc.median():.2f} over {len(icc)} taxa", fontsize=10)
    points = axes[1].scatter(table["presence_agreement"], table["icc"], c=table["prevalence"], s=14,
                             cmap="viridis", vmin=0, vmax=1)
    axes[1].set_xlabel("participants whose samples agree in presence")
    axes[1].set_ylabel("ICC")
    axes[1].set_xlim(-0.02, 1.02)
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_title(f"{summary['n_participants_repeated']} participants with 2+ samples", fontsize=10)
    fig.colorbar(points, ax=axes[1], label="prevalence (samples)")
    fig.tight_layout()
    save(fig, path)
