"""The house figure style: labels never overlap or leave the figure, one colour meaning per variable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from workflow_scripts import plotting
from workflow_scripts.differential import figures as dfig
from workflow_scripts.diversity import figures as vfig
from workflow_scripts.plotting import CASE, CONTROL, layout_problems, plt


@pytest.fixture
def captured(monkeypatch):
    """The figures the stage functions would save, kept open for inspection."""
    figs = []
    for module in (dfig, vfig):
        monkeypatch.setattr(module, "save", lambda fig, path, tight=True: figs.append(fig))
    yield figs
    plt.close("all")


def test_layout_check_finds_overlap_and_clipping():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.text(0.5, 0.5, "first label")
    ax.text(0.52, 0.5, "second label")
    fig.text(0.95, 0.5, "runs off the right edge")
    problems = layout_problems(fig)
    assert any("overlap" in p and "first label" in p for p in problems)
    assert any("outside" in p and "runs off" in p for p in problems)
    fig2, ax2 = plt.subplots(figsize=(3, 2), layout="constrained")
    ax2.set_title("clean")
    ax2.set_xlabel("x")
    assert layout_problems(fig2) == []
    plt.close("all")


def test_label_points_never_overlaps_even_for_crowded_points():
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 0.05, 30), rng.normal(5, 0.05, 30)  # thirty points on top of each other
    ax.scatter(x, y)
    placed = plotting.label_points(ax, x, y, [f"s__Taxon_number_{i}" for i in range(30)])
    assert 3 <= placed < 30  # some fit, the rest are left out rather than overlapping
    assert layout_problems(fig) == []
    plt.close(fig)


def _method_table(n=60, n_sig=14, seed=0):
    rng = np.random.default_rng(seed)
    effect = rng.normal(0, 0.3, n)
    effect[:n_sig] = np.where(np.arange(n_sig) % 2, 2.0, -2.0) + rng.normal(0, 0.05, n_sig)
    p = np.where(np.arange(n) < n_sig, 10 ** -rng.uniform(4, 4.3, n), rng.uniform(0.05, 1, n))
    return pd.DataFrame({"feature": [f"s__Bacteroides_long_species_name_{i}" for i in range(n)],
                         "effect": effect, "pvalue": p, "qvalue": np.minimum(p * 20, 1), "method": "linda",
                         "scale": "log2 fold change (CLR, bias-corrected)", "stat": effect * 3})


def test_volcano_clustered_hits_are_named_without_overlap_in_the_status_colours(captured):
    dfig.volcano(_method_table(), "unused.png", 0.05)
    fig = captured[0]
    assert layout_problems(fig) == []
    ax = fig.axes[0]
    named = [t.get_text() for t in ax.texts]
    assert len(named) >= 4
    colours = {to_hex(c) for col in ax.collections for c in col.get_facecolors()}
    assert {CASE.lower(), CONTROL.lower()} <= colours


def test_agreement_with_many_long_names_is_clean(captured):
    methods = {m: _method_table(seed=i).assign(method=m) for i, m in enumerate(["linda", "ancombc", "maaslin"])}
    base = methods["linda"]
    consensus = pd.DataFrame({"feature": base["feature"], "n_significant": (base["qvalue"] < 0.05).astype(int) + 1,
                              "call": np.where(base.index < 10, np.where(base["effect"] > 0, "up", "down"), "none"),
                              "min_qvalue": base["qvalue"]})
    for m, t in methods.items():
        consensus[f"effect_{m}"] = t["effect"].to_numpy()
        consensus[f"q_{m}"] = t["qvalue"].to_numpy()
    consensus["feature"] = consensus["feature"] + " (f__Some_very_long_family_name)"
    for t in methods.values():
        t["feature"] = consensus["feature"]
    dfig.agreement(consensus, methods, "unused.png")
    assert layout_problems(captured[0]) == []


def test_diversity_figures_use_status_and_site_colours_apart(captured):
    rng = np.random.default_rng(1)
    n = 40
    labels = pd.DataFrame({"participant_id": [f"P{i}" for i in range(n)], "household": np.repeat(np.arange(20), 2),
                           "status": np.tile(["HHC", "MS"], 20), "site": np.repeat(["A", "B", "C", "D"], 10)})
    values = pd.DataFrame(rng.normal(size=(n, 6)), index=labels["participant_id"],
                          columns=["observed_features", "shannon", "simpson", "pielou_evenness", "chao1", "faith_pd"])
    vfig.alpha_boxplots(values, labels, "MS", "HHC", "unused.png")

    class Ordination:
        samples = pd.DataFrame(rng.normal(size=(n, 3)), index=labels.index)
        proportion_explained = pd.Series([0.3, 0.2, 0.1])

    vfig.pcoa_plot(Ordination(), labels, "braycurtis", "MS", "unused.png")
    alpha, pcoa = captured
    assert layout_problems(alpha) == [] and layout_problems(pcoa) == []
    status_ax, site_ax = pcoa.axes[:2]
    status_colours = {to_hex(c.get_facecolors()[0]) for c in status_ax.collections}
    site_colours = {to_hex(c.get_facecolors()[0]) for c in site_ax.collections}
    assert status_colours == {CASE.lower(), CONTROL.lower()}
    assert len(site_colours) == 4 and not site_colours & status_colours


def test_save_is_byte_identical_for_png_and_svg(tmp_path):
    for suffix in ("png", "svg"):
        data = []
        for i in range(2):
            fig, ax = plt.subplots(figsize=(3, 2))
            ax.plot([0, 1], [0, 1], label="a")
            ax.legend()
            plotting.save(fig, tmp_path / f"{i}.{suffix}")
            data.append((tmp_path / f"{i}.{suffix}").read_bytes())
        assert data[0] == data[1]
    assert plotting.svg_text(plt.subplots()[0]).startswith("<svg")
