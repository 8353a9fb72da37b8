"""Figures of the clinical stage (matplotlib, Agg backend), drawn from the tables it writes.

- :func:`axis_effects`: for one axis, the taxa with the smallest p-values: the
  CLR effect with its 95 % interval (and the untreated-only effect), and the
  combined -log10 p coloured by the component that drives it; the taxa with a
  progression call are marked.
- :func:`markers_by_course`: sNfL and GFAP by group (household controls,
  RRMS, SPMS, PPMS): raw values on a log scale and the Z-scores against the
  controls.

An axis or marker the cohort could not test gets a panel that says why, so
every run writes the same files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from ..plotting import plt, save

UP, DOWN, GREY = "#b2182b", "#2166ac", "#9e9e9e"
DRIVERS = {"clr": "#4d4d4d", "abundance": "#1b7837", "presence": "#762a83", "ambiguous": "#e08214"}
AXIS_LABELS = {"edss": "EDSS (per point)", "armss": "ARMSS (per point)", "msss": "MSSS (per point)",
               "snfl_z": "sNfL Z-score (per SD)", "gfap_z": "GFAP Z-score (per SD)",
               "progressive": "progressive vs relapsing course"}
COURSES = ("RRMS", "SPMS", "PPMS")


def _message(path, title: str, text: str) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 2.0))
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, wrap=True, transform=ax.transAxes)
    save(fig, path, tight=False)


def axis_effects(table: pd.DataFrame, calls: pd.DataFrame, axis: str, path, n_taxa: int,
                 skipped_reason: str = "", q_threshold: float = 0.05) -> None:
    """Effect plot of one axis from ``clinical/associations.tsv``.

    Parameters
    ----------
    table : DataFrame
        The associations (all axes).
    calls : DataFrame
        ``clinical/progression.tsv`` (``feature``, ``progression_class``).
    axis : str
    path : path-like
        PNG to write.
    n_taxa : int
        Taxa shown (smallest combined p first).
    skipped_reason : str
        Why the axis was not tested (written instead of a plot when it has no rows).
    q_threshold : float
        Per-axis q below which a taxon is coloured.
    """
    title = AXIS_LABELS.get(axis, axis)
    t = table[table["axis"] == axis]
    if t.empty:
        _message(path, title, f"not tested: {skipped_reason or 'no association rows'}")
        return
    t = t.sort_values(["pvalue", "feature"], kind="stable", na_position="last").head(n_taxa).iloc[::-1]
    called = calls.set_index("feature")["progression_class"].reindex(t["feature"]).fillna("neutral").to_numpy()
    y = np.arange(len(t))
    sig = t["qvalue"].to_numpy(dtype=float) < q_threshold
    direction = t["direction"].to_numpy(dtype=float)
    colour = np.where(sig & (direction > 0), UP, np.where(sig & (direction < 0), DOWN, GREY))
    effect, se = t["effect"].to_numpy(dtype=float), t["se"].to_numpy(dtype=float)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.5, 1.2 + 0.28 * len(t)), sharey=True,
                                  gridspec_kw={"width_ratios": [1.6, 1]})
    ax.errorbar(effect, y, xerr=1.96 * se, fmt="none", ecolor=colour, elinewidth=1.0)
    ax.scatter(effect, y, c=colour, s=22, zorder=3, label="all patients")
    untreated = t["effect_untreated"].to_numpy(dtype=float)
    if np.isfinite(untreated).any():
        ax.scatter(untreated, y, facecolors="none", edgecolors="black", s=22, zorder=4, linewidths=0.7,
                   label="untreated only")
    ax.axvline(0.0, color="black", lw=0.5)
    labels = [f"{f}{'  [' + c + ']' if c != 'neutral' else ''}" for f, c in zip(t["feature"], called)]
    ax.set_yticks(y, labels, fontsize=6.5)
    ax.set_xlabel(f"CLR effect, log2 per unit of {title} (95% interval)", fontsize=7.5)
    ax.legend(fontsize=6.5, loc="lower right", frameon=False)
    logp = -np.log10(np.clip(t["pvalue"].to_numpy(dtype=float), 1e-300, 1.0))
    drivers = t["driver"].fillna("").astype(str).to_numpy()
    ax2.barh(y, logp, color=[DRIVERS.get(d, GREY) for d in drivers], height=0.7)
    for name, c in DRIVERS.items():
        if (drivers == name).any():
            ax2.barh([np.nan], [np.nan], color=c, label=name)
    ax2.legend(fontsize=6.5, loc="lower right", frameon=False, title="strongest test", title_fontsize=6.5)
    ax2.set_xlabel("-log10 p (combined)", fontsize=7.5)
    for a in (ax, ax2):
        a.tick_params(labelsize=7)
    n_sig = int((table.loc[table["axis"] == axis, "qvalue"] < q_threshold).sum())
    n = int(t["n_participants"].iloc[0])
    fig.suptitle(f"{title}: {n_sig} of {int((table['axis'] == axis).sum())} taxa at q < {q_threshold:g} "
                 f"({n} patients); [class] = progression call", fontsize=8.5)
    fig.tight_layout()
    save(fig, path, tight=False)


def _groups(scores: pd.DataFrame, control_label: str) -> pd.Series:
    course = scores["disease_course"] if "disease_course" in scores.columns \
        else pd.Series(np.nan, index=scores.index)
    group = np.where(scores["status"] == control_label, control_label,
                     np.where(course.isin(COURSES), course, "MS, course unknown"))
    return pd.Series(group, index=scores.index)


def markers_by_course(scores: pd.DataFrame, control_label: str, path) -> None:
    """sNfL and GFAP by group from ``clinical/scores.tsv``: raw (log scale) above, Z-scores below.

    Parameters
    ----------
    scores : DataFrame
        With ``status``, optional ``disease_course``, ``snfl``, ``snfl_z``,
        ``gfap``, ``gfap_z`` (markers absent from the cohort are absent).
    control_label : str
    path : path-like
    """
    group = _groups(scores, control_label)
    order = [g for g in (control_label, *COURSES, "MS, course unknown") if (group == g).any()]
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.4))
    rng = np.random.default_rng(0)  # jitter only; fixed so the figure is the same every run
    for col, (marker, label) in enumerate((("snfl", "sNfL (pg/mL)"), ("gfap", "GFAP (pg/mL)"))):
        for row, (column, what) in enumerate(((marker, label), (f"{marker}_z", f"{label.split()[0]} Z-score"))):
            ax = axes[row, col]
            values = scores[column] if column in scores.columns else pd.Series(dtype=float)
            data = [values[group == g].dropna().to_numpy(dtype=float) for g in order]
            if not sum(len(d) for d in data):
                ax.axis("off")
                ax.text(0.5, 0.5, f"{what}: not measured in this cohort" if column == marker
                        else f"{what}: no Z-scores (no values, or too few controls)",
                        ha="center", va="center", fontsize=8, transform=ax.transAxes)
                continue
            keep = [i for i, d in enumerate(data) if len(d)]
            ax.boxplot([data[i] for i in keep], positions=keep, widths=0.5, showfliers=False)
            for i in keep:
                ax.scatter(i + rng.uniform(-0.18, 0.18, len(data[i])), data[i], s=6, alpha=0.5,
                           color=GREY if order[i] == control_label else UP, linewidths=0)
            ax.set_xticks(range(len(order)), [f"{g}\n(n={len(d)})" for g, d in zip(order, data)], fontsize=7)
            if row == 0:
                ax.set_yscale("log")
                plain = FuncFormatter(lambda v, _: f"{v:g}")
                ax.yaxis.set_major_formatter(plain)
                ax.yaxis.set_minor_formatter(plain)
            else:
                ax.axhline(0.0, color="black", lw=0.5)
            ax.set_ylabel(what, fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle("Blood markers of damage by disease course; Z-scores against the cohort's controls "
                 "(age and BMI adjusted)", fontsize=9)
    fig.tight_layout()
    save(fig, path, tight=False)
