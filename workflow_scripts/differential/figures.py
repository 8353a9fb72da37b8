"""Figures of the differential-abundance stage (matplotlib, Agg backend).

- :func:`volcano`: one method's effects against -log10 p, significant features
  coloured by direction, the strongest named.
- :func:`agreement`: how the methods agree: a heatmap of signed -log10 q of
  the features any method finds (consensus calls first) and the rank
  correlation of the methods' test statistics over all features.

Both take the tables the stage writes and return nothing; PNGs are written
with fixed size, resolution and metadata so the same tables give the same bytes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..plotting import plt, save

UP, DOWN, GREY = "#b2182b", "#2166ac", "#9e9e9e"
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
        Features with q below it are coloured.
    """
    t = table[np.isfinite(table["pvalue"]) & np.isfinite(table["effect"])].copy()
    t = t.sort_values("feature", kind="stable")
    t["y"] = -np.log10(np.clip(t["pvalue"].to_numpy(dtype=float), 1e-300, 1.0))
    sig = t["qvalue"].to_numpy(dtype=float) < q_threshold
    colour = np.where(sig & (t["effect"] > 0), UP, np.where(sig & (t["effect"] < 0), DOWN, GREY))
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.scatter(t["effect"], t["y"], c=colour, s=14, linewidths=0)
    if sig.any():
        cut = t.loc[sig, "y"].min()
        ax.axhline(cut, color="black", lw=0.6, ls="--")
        ax.text(ax.get_xlim()[0], cut, f" q < {q_threshold:g}", va="bottom", ha="left", fontsize=7)
    ax.axvline(0.0, color="black", lw=0.5)
    named = t[sig].sort_values(["pvalue", "feature"], kind="stable").head(N_LABELS)
    for _, row in named.iterrows():
        ax.annotate(str(row["feature"]), (row["effect"], row["y"]), fontsize=6, xytext=(3, 2),
                    textcoords="offset points")
    method = str(table["method"].iloc[0]) if len(table) else ""
    scale = str(table["scale"].iloc[0]) if len(table) else ""
    ax.set_xlabel(f"effect: {scale} (MS vs household control)", fontsize=8)
    ax.set_ylabel("-log10 p", fontsize=8)
    n_up = int((sig & (t["effect"] > 0)).sum())
    n_down = int((sig & (t["effect"] < 0)).sum())
    ax.set_title(f"{method}: {n_up} higher, {n_down} lower in MS (q < {q_threshold:g}) of {len(t)}", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    save(fig, path, tight=False)


def agreement(consensus_table: pd.DataFrame, tables: dict[str, pd.DataFrame], path,
              q_threshold: float = 0.05) -> None:
    """Cross-method agreement figure.

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
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 7), gridspec_kw={"width_ratios": [1.5, 1]})
    con = consensus_table.set_index("feature")
    any_sig = con["n_significant"] > 0
    order = con[any_sig | (con["call"] != "none")].copy()
    order["_called"] = (order["call"] == "none").astype(int)
    order = order.sort_values(["_called", "min_qvalue", "feature"], kind="stable").head(N_ROWS)
    if len(order) and methods:
        values = np.column_stack([
            np.sign(order[f"effect_{m}"].to_numpy(dtype=float))
            * np.minimum(-np.log10(np.clip(order[f"q_{m}"].to_numpy(dtype=float), 1e-300, 1.0)), 6.0)
            for m in methods])
        image = ax.imshow(np.nan_to_num(values), cmap="RdBu_r", vmin=-6, vmax=6, aspect="auto")
        for i in range(values.shape[0]):
            for j, m in enumerate(methods):
                q = order[f"q_{m}"].iloc[i]
                if np.isfinite(q) and q < q_threshold:
                    ax.text(j, i, "*", ha="center", va="center", fontsize=7)
        marks = {"up": " [up]", "down": " [down]", "none": ""}
        ax.set_yticks(range(len(order)), [f"{f}{marks[c]}" for f, c in zip(order.index, order["call"])],
                      fontsize=6)
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=7)
        bar = fig.colorbar(image, ax=ax, shrink=0.6)
        bar.set_label("sign(effect) x -log10 q (capped at 6)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    else:
        ax.text(0.5, 0.5, "no feature is significant in any method", ha="center", va="center", fontsize=9)
        ax.set_axis_off()
    n_up = int((con["call"] == "up").sum())
    n_down = int((con["call"] == "down").sum())
    ax.set_title(f"Significant features (* q < {q_threshold:g}); consensus: {n_up} up, {n_down} down",
                 fontsize=9)

    stats = pd.DataFrame({m: tables[m].set_index("feature")["stat"] for m in methods}, dtype=float)
    corr = stats.rank().corr(method="pearson", min_periods=3).reindex(index=methods, columns=methods)
    image2 = ax2.imshow(corr.to_numpy(), cmap="viridis", vmin=-1, vmax=1)
    for i in range(len(methods)):
        for j in range(len(methods)):
            value = corr.iloc[i, j]
            ax2.text(j, i, "" if not np.isfinite(value) else f"{value:.2f}", ha="center", va="center",
                     fontsize=7, color="white" if np.isfinite(value) and value < 0.5 else "black")
    ax2.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=7)
    ax2.set_yticks(range(len(methods)), methods, fontsize=7)
    ax2.set_title("Spearman correlation of test statistics", fontsize=9)
    fig.colorbar(image2, ax=ax2, shrink=0.6).ax.tick_params(labelsize=6)
    fig.tight_layout()
    save(fig, path, tight=False)
