"""Figures of the differential-abundance stage (matplotlib, Agg backend).

- :func:`volcano`: one method's effects against -log10 p, significant features
  coloured by direction, the strongest named.
- :func:`agreement`: how the methods agree: a heatmap of signed -log10 q of
  the features any method finds (consensus calls first) and the rank
  correlation of the methods' test statistics over all features.

Both take the tables the stage writes and return nothing; the house style,
colours and :func:`~workflow_scripts.plotting.save` come from
:mod:`workflow_scripts.plotting` (the same tables give the same bytes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..plotting import CASE, CONTROL, DIRECTION, DIVERGING, SEQUENTIAL, label_points, plt, save

#: Features named in a volcano plot, and rows of the agreement heatmap at most.
N_LABELS = 10
N_ROWS = 40


def volcano(table: pd.DataFrame, path, q_threshold: float = 0.05) -> None:
    """Volcano plot of one ``differential/<method>.tsv`` table.

    Parameters
    ----------
    table : DataFrame
        With ``feature``, ``effect``, ``pvalue``, ``qvalue``, ``method``, ``scale``.
    path : path-like
        PNG to write.
    q_threshold : float
        Features with q below it are coloured (higher in MS: the MS colour; lower: the control colour).
    """
    t = table[np.isfinite(table["pvalue"]) & np.isfinite(table["effect"])].copy()
    t = t.sort_values("feature", kind="stable")
    t["y"] = -np.log10(np.clip(t["pvalue"].to_numpy(dtype=float), 1e-300, 1.0))
    sig = t["qvalue"].to_numpy(dtype=float) < q_threshold
    up, down = sig & (t["effect"] > 0).to_numpy(), sig & (t["effect"] < 0).to_numpy()
    method = str(table["method"].iloc[0]) if len(table) else ""
    scale = str(table["scale"].iloc[0]) if len(table) else ""
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    ax.scatter(t["effect"][~sig], t["y"][~sig], color=DIRECTION["none"], s=12, linewidths=0,
               label=f"q \u2265 {q_threshold:g}")
    ax.scatter(t["effect"][up], t["y"][up], color=CASE, s=16, linewidths=0, label=f"higher in MS ({int(up.sum())})")
    ax.scatter(t["effect"][down], t["y"][down], color=CONTROL, s=16, linewidths=0,
               label=f"lower in MS ({int(down.sum())})")
    if sig.any():
        ax.axhline(t.loc[sig, "y"].min(), color="0.3", lw=0.6, ls="--")
    ax.axvline(0.0, color="0.3", lw=0.5)
    # Room above the highest point for its label.
    top = float(t["y"].max()) if len(t) else 1.0
    ax.set_ylim(0, top * 1.15 + 0.2)
    ax.set_xlabel(f"effect: {scale}")
    ax.set_ylabel("\u2212log10 p")
    ax.set_title(f"{method}: MS vs household control, {len(t)} taxa")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    named = t[sig].sort_values(["pvalue", "feature"], kind="stable").head(N_LABELS)
    label_points(ax, named["effect"], named["y"], named["feature"])
    save(fig, path, tight=False)


def agreement(consensus_table: pd.DataFrame, tables: dict[str, pd.DataFrame], path,
              q_threshold: float = 0.05) -> None:
    """Cross-method agreement figure.

    Left: signed -log10 q of the taxa any method finds (consensus calls first);
    right: rank correlation of the methods' test statistics over all taxa.

    Parameters
    ----------
    consensus_table : DataFrame
        ``differential/consensus.tsv``.
    tables : dict of str to DataFrame
        Method -> ``differential/<method>.tsv``.
    path : path-like
    q_threshold : float
    """
    methods = list(tables)
    con = consensus_table.set_index("feature")
    any_sig = con["n_significant"] > 0
    order = con[any_sig | (con["call"] != "none")].copy()
    order["_called"] = (order["call"] == "none").astype(int)
    order = order.sort_values(["_called", "min_qvalue", "feature"], kind="stable").head(N_ROWS)
    # Row height fixed in inches, so taxon names never overlap however many rows there are.
    height = max(4.2, 0.17 * len(order) + 2.0)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10.5, height), layout="constrained",
                                  gridspec_kw={"width_ratios": [1.4, 1]})
    if len(order) and methods:
        values = np.column_stack([
            np.sign(order[f"effect_{m}"].to_numpy(dtype=float))
            * np.minimum(-np.log10(np.clip(order[f"q_{m}"].to_numpy(dtype=float), 1e-300, 1.0)), 6.0)
            for m in methods])
        image = ax.imshow(np.nan_to_num(values), cmap=DIVERGING, vmin=-6, vmax=6, aspect="auto")
        for i in range(values.shape[0]):
            for j, m in enumerate(methods):
                q = order[f"q_{m}"].iloc[i]
                if np.isfinite(q) and q < q_threshold:
                    ax.text(j, i, "*", ha="center", va="center", fontsize=8)
        marks = {"up": " \u25b2", "down": " \u25bc", "none": ""}
        ax.set_yticks(range(len(order)), [f"{f}{marks[c]}" for f, c in zip(order.index, order["call"])],
                      fontsize=7)
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
        bar = fig.colorbar(image, ax=ax, shrink=0.5, aspect=15)
        bar.set_label("sign \u00d7 \u2212log10 q (cap 6)")
        ax.spines[:].set_visible(False)
    else:
        ax.text(0.5, 0.5, "no taxon is significant\nin any method", ha="center", va="center")
        ax.set_axis_off()
    n_up = int((con["call"] == "up").sum())
    n_down = int((con["call"] == "down").sum())
    ax.set_title(f"Significant taxa (* q < {q_threshold:g})\nconsensus: {n_up} \u25b2 up, {n_down} \u25bc down")

    stats = pd.DataFrame({m: tables[m].set_index("feature")["stat"] for m in methods}, dtype=float)
    corr = stats.rank().corr(method="pearson", min_periods=3).reindex(index=methods, columns=methods)
    image2 = ax2.imshow(corr.to_numpy(), cmap=SEQUENTIAL, vmin=-1, vmax=1)
    for i in range(len(methods)):
        for j in range(len(methods)):
            value = corr.iloc[i, j]
            ax2.text(j, i, "" if not np.isfinite(value) else f"{value:.2f}", ha="center", va="center",
                     fontsize=7, color="white" if np.isfinite(value) and value < 0.5 else "black")
    ax2.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
    ax2.set_yticks(range(len(methods)), methods)
    ax2.spines[:].set_visible(False)
    ax2.set_title("Spearman correlation\nof test statistics")
    fig.colorbar(image2, ax=ax2, shrink=0.5, aspect=15)
    save(fig, path)
