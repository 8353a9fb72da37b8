"""Self-calibration on the user's own cohort: does the call rule hold its false discovery rate here?

Part of every run (``differential/calibration.tsv``), seeded from the run's
``seed``; ``differential.calibration`` sets the replicates.

Null swaps
    The first ``null_replicates`` label swaps of
    :func:`workflow_scripts.differential.primary.swap_labels` (within every
    household the labels exchanged with probability 1/2; unpaired
    participants permuted within site; the therapy travels with the label).
    These are the swaps whose bias estimates give the primary test its bias
    variance, so they cost no extra fits: under a swap only the tested
    column of the regressions changes. For A, B, C and their combination:
    the type-I error at 0.05 (pooled over swaps and taxa; the spread of the
    per-swap rate), and the number of calls per swap.
Implants
    ``implant_replicates`` fresh swaps, each followed by implanted changes in
    the labelled cases (:func:`implant`, after Wirbel et al. 2024): 12 taxa
    (4 per prevalence band <30%, 30-60%, >=60%) multiplied or divided by 2
    or 3, and 4 taxa whose prevalence among the cases moves by 0.25 (up or
    down), the three most abundant taxa and any above 5% mean relative
    abundance left alone; every labelled case's profile is brought back to
    its own depth (counts stochastically rounded, zeros stay zeros). The
    whole rule runs on each (test, bias, minimum effect, direction checks,
    therapy check) at the candidate BH levels: half, a fifth and a tenth of
    ``fdr_level``.
The level in force
    ``q_threshold_used`` is the largest candidate level whose pooled
    calibration FDR (false calls / calls over the implant replicates) is at
    most ``fdr_level``; the consensus (and so the classification) calls at
    that level.
Reporting methods
    Each method of ``calibration.methods`` that the run computes is rerun on
    the first ``method_null_replicates`` swaps (:func:`method_null_pvalues`,
    one job per method). Its type-I error at 0.05 outside [0.02, 0.08] marks
    it ``flagged``. The methods do not vote; this says how far their q-values
    can be trusted on this cohort.

Flags (``status``): a component's type-I error outside [0.02, 0.08], more
than one call on any null swap, or an FDR whose 95% Wilson interval lies
above ``fdr_level``; the classification states a flagged primary test in the
reason of every call.

``calibration.tsv`` is long: ``scope`` (``A``, ``B``, ``C``, ``primary``,
``classification`` or a method), ``metric`` (``type1_error_0.05``,
``calls_per_null_swap``, ``fdr``, ``fdr_at_q``, ``q_threshold_used``,
``power``), ``prevalence_band``, ``effect`` (``null``, ``implants``,
``2x``, ``3x``, ``prevalence``, ``q<x``), ``value``, ``lower``/``upper``
(Wilson 95% for rates; min/max for calls per swap), ``n_replicates``,
``n_tests`` (taxon x replicate tests; calls for FDR; implanted taxa for
power), ``min_replicate``/``max_replicate``, ``status`` and ``note``.

References
----------
.. [1] Wirbel, J., Essex, M., Forslund, S. K. & Zeller, G. (2024). A realistic
   benchmark for differential abundance testing and confounder adjustment
   in human microbiome studies. *Genome Biology* 25, 247.
.. [2] Wilson, E. B. (1927). Probable inference, the law of succession, and
   statistical inference. *JASA* 22, 209-212.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from ..models.multiple_testing import bh
from .calls import decide
from .prepare import StageData, make_pairs
from .primary import IMPLANT_STREAM, Prepared, combine, prepare_primary, swap_labels, test_taxa, therapy_check

log = logging.getLogger("differential")

TYPE1_RANGE = (0.02, 0.08)
BANDS = ((0.0, 0.3, "<30%"), (0.3, 0.6, "30-60%"), (0.6, 1.01, ">=60%"))
#: Candidate BH levels as fractions of fdr_level (the first is the default level).
LEVEL_FRACTIONS = (0.5, 0.2, 0.1)
TABLE = ["scope", "metric", "prevalence_band", "effect", "value", "lower", "upper", "n_replicates", "n_tests",
         "min_replicate", "max_replicate", "status", "note"]
N_ABUNDANCE, N_PREVALENCE, FOLDS, PREVALENCE_SHIFT = 12, 4, (2.0, 3.0), 0.25


def band_of(prevalence) -> np.ndarray:
    """Prevalence band names (<30%, 30-60%, >=60%)."""
    prevalence = np.asarray(prevalence, dtype=float)
    out = np.full(prevalence.shape, "", dtype=object)
    for lo, hi, name in BANDS:
        out[(prevalence >= lo) & (prevalence < hi)] = name
    return out


def wilson(k: float, n: float, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (NaN for n = 0)."""
    if n <= 0:
        return np.nan, np.nan
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def candidate_levels(fdr_level: float) -> list[float]:
    return [round(fdr_level * f, 12) for f in LEVEL_FRACTIONS]


def row(**values) -> dict:
    return {**{c: np.nan for c in TABLE}, "status": "", "note": "", **values}


def rate_row(scope, metric, band, effect, hits, tests, n_replicates, per_replicate=None, status="",
             note="") -> dict:
    lower, upper = wilson(hits, tests)
    spread = np.asarray(per_replicate if per_replicate is not None else [], dtype=float)
    spread = spread[np.isfinite(spread)]
    return row(scope=scope, metric=metric, prevalence_band=band, effect=effect,
               value=hits / tests if tests else np.nan, lower=lower, upper=upper, n_replicates=n_replicates,
               n_tests=tests, min_replicate=spread.min() if len(spread) else np.nan,
               max_replicate=spread.max() if len(spread) else np.nan, status=status, note=note)


def replicate_frame(result: dict, carried: np.ndarray) -> pd.DataFrame:
    """The columns :func:`~workflow_scripts.differential.calls.decide` needs, from one replicate."""
    frame = pd.DataFrame({c: result[c] for c in ("qvalue", "direction", "ambiguous", "below_min_effect",
                                                  "driver", "effect_A", "effect_B", "effect_C")})
    frame["carried_by"] = carried
    return frame


def calls_by_level(prep: Prepared, units, resp, result: dict, levels) -> dict[float, np.ndarray]:
    """The rule's calls at every candidate level (therapy check on the taxa below the largest)."""
    candidates = np.nan_to_num(result["qvalue"], nan=1.0) < max(levels)
    carried = therapy_check(units, resp, result, candidates, prep.options)
    frame = replicate_frame(result, carried)
    return {level: decide(frame, level)["call"].to_numpy() for level in levels}


# ---------------------------------------------------------------------------
# Implants


def choose_taxa(values: np.ndarray, feature_columns: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Implanted taxa (positions among the tested ones) and their kind (``abundance``/``prevalence``)."""
    tested = values[:, feature_columns]
    relative = tested / values.sum(axis=1, keepdims=True)
    prevalence = (tested > 0).mean(axis=0)
    mean = relative.mean(axis=0)
    eligible = mean <= 0.05
    eligible[np.argsort(-mean, kind="stable")[:3]] = False
    bands = band_of(prevalence)
    taken = np.zeros(len(prevalence), bool)
    chosen, kinds = [], []
    for i, (_, _, name) in enumerate(BANDS):
        k = N_ABUNDANCE // 3 + (1 if i < N_ABUNDANCE % 3 else 0)
        pool = np.flatnonzero(eligible & (bands == name) & ~taken)
        pick = rng.choice(pool, size=min(k, len(pool)), replace=False)
        taken[pick] = True
        chosen += list(pick)
        kinds += ["abundance"] * len(pick)
    pool = np.flatnonzero(eligible & (prevalence >= 0.15) & (prevalence <= 0.8) & ~taken)
    pick = rng.choice(pool, size=min(N_PREVALENCE, len(pool)), replace=False)
    chosen += list(pick)
    kinds += ["prevalence"] * len(pick)
    return np.array(chosen, dtype=int), np.array(kinds, dtype=object)


def implant(values: np.ndarray, status: np.ndarray, kind: str, feature_columns: np.ndarray,
            rng) -> tuple[np.ndarray, pd.DataFrame]:
    """Implant known changes into the labelled cases (``status`` 1) of participants x all taxa values.

    Returns
    -------
    values : ndarray
        The new abundances (controls untouched; every case row keeps its
        total; counts stochastically rounded).
    truth : DataFrame
        ``position`` (among the tested taxa), ``kind``, ``direction``
        (+1 higher in cases), ``fold`` (NaN for prevalence shifts), ``band``.
    """
    positions, kinds = choose_taxa(values, feature_columns, rng)
    direction = np.where(np.arange(len(positions)) % 2 == 0, 1, -1)
    rng.shuffle(direction)
    fold = np.array([FOLDS[i % len(FOLDS)] for i in range(len(positions))], dtype=float)
    fold[kinds == "prevalence"] = np.nan
    case = np.asarray(status) == 1
    depth = values.sum(axis=1)
    new = values.copy()
    for position, what, d, f in zip(positions, kinds, direction, fold):
        col = feature_columns[position]
        x = values[:, col]
        present = x > 0
        if what == "abundance":
            new[case, col] = x[case] * (f if d > 0 else 1.0 / f)
        elif d > 0:
            zeros = np.flatnonzero(case & ~present)
            share = min(0.9, PREVALENCE_SHIFT / max(1e-9, 1 - present[case].mean()))
            turn = zeros[rng.random(len(zeros)) < share]
            pool = x[present] / depth[present]
            drawn = rng.choice(pool, size=len(turn)) * depth[turn]
            new[turn, col] = np.maximum(1.0, drawn) if kind == "counts" else drawn
        else:
            cases_with = np.flatnonzero(case & present)
            share = min(0.9, PREVALENCE_SHIFT / max(1e-9, present[case].mean()))
            new[cases_with[rng.random(len(cases_with)) < share], col] = 0.0
    rows = np.flatnonzero(case)
    totals = new[rows].sum(axis=1)
    scaled = new[rows] * (depth[rows] / np.where(totals > 0, totals, 1.0))[:, None]
    if kind == "counts":
        floor = np.floor(scaled)
        scaled = floor + (rng.random(scaled.shape) < scaled - floor)
    new[rows] = scaled
    prevalence = (values[:, feature_columns] > 0).mean(axis=0)
    truth = pd.DataFrame({"position": positions, "kind": kinds, "direction": direction, "fold": fold,
                          "band": band_of(prevalence[positions])})
    return new, truth


def score(calls: np.ndarray, truth: pd.DataFrame) -> tuple[int, int, np.ndarray]:
    """Calls, false calls, and per implanted taxon whether it was called in its direction."""
    expected = np.zeros(len(calls), int)
    expected[truth["position"].to_numpy()] = truth["direction"].to_numpy()
    called = calls != 0
    right = called & (calls == expected)
    return int(called.sum()), int((called & ~right).sum()), right[truth["position"].to_numpy()]


# ---------------------------------------------------------------------------
# Reporting methods under the null swaps


def with_labels(data: StageData, status: np.ndarray, therapy: np.ndarray) -> StageData:
    """The stage data with swapped labels (the therapy indicators follow the therapy names)."""
    design = data.design
    frame = design.frame.copy()
    frame["status"] = np.asarray(status).astype(int)
    names = [c.removeprefix("dmt_") for c in design.dmt.columns]
    dmt = pd.DataFrame({c: (np.asarray(therapy) == n).astype(float) for c, n in zip(design.dmt.columns, names)},
                       index=design.dmt.index)
    new = replace(design, frame=frame, dmt=dmt)
    return replace(data, design=new, pairs=make_pairs(new))


def method_null_pvalues(name: str, data: StageData) -> pd.DataFrame:
    """A reporting method's p-values on the first ``method_null_replicates`` null swaps.

    Returns
    -------
    DataFrame
        ``method``, ``replicate``, ``feature``, ``pvalue`` (long).
    """
    from .methods import run_method

    n = int(data.settings.calibration["method_null_replicates"])
    swaps = swap_labels(data.design, n, data.settings.seed)
    parts = []
    for r in range(n):
        table = run_method(name, with_labels(data, swaps.status[r], swaps.therapy[r]))
        parts.append(pd.DataFrame({"method": name, "replicate": r, "feature": table["feature"],
                                   "pvalue": table["pvalue"]}))
    columns = ["method", "replicate", "feature", "pvalue"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def method_rows(nulls: dict[str, pd.DataFrame], methods_run, calibrated) -> list[dict]:
    """Type-I error rows of the reporting methods (and a row for each method run but not calibrated)."""
    rows = []
    for name in methods_run:
        table = nulls.get(name)
        if name not in calibrated or table is None:
            rows.append(row(scope=name, metric="type1_error_0.05", prevalence_band="all", effect="null",
                            status="not calibrated",
                            note="not in differential.calibration.methods (aldex: by default, for its cost)"))
            continue
        p = pd.to_numeric(table["pvalue"], errors="coerce")
        ok = p.notna()
        if not ok.any():
            rows.append(row(scope=name, metric="type1_error_0.05", prevalence_band="all", effect="null",
                            n_replicates=int(table["replicate"].nunique()), n_tests=0, status="not calibrated",
                            note="no p-values on the swaps (the method did not run on this design)"))
            continue
        hits = int((p[ok] < 0.05).sum())
        per = (p < 0.05).where(ok).groupby(table["replicate"]).mean()
        value = hits / int(ok.sum())
        flag = "ok" if TYPE1_RANGE[0] <= value <= TYPE1_RANGE[1] else "flagged"
        rows.append(rate_row(name, "type1_error_0.05", "all", "null", hits, int(ok.sum()),
                             int(table["replicate"].nunique()), per, flag,
                             "reporting method (does not vote); flagged outside [0.02, 0.08]"))
    return rows


# ---------------------------------------------------------------------------
# The calibration


def choose_level(per_level: dict[float, list[tuple[int, int]]], fdr_level: float) -> float:
    """The largest candidate level whose pooled FDR (false calls / calls) is at most ``fdr_level``.

    ``per_level`` maps each level to (calls, false calls) per replicate; with
    none that qualifies, the smallest level.
    """
    for level in sorted(per_level, reverse=True):
        calls = sum(c for c, _ in per_level[level])
        false = sum(f for _, f in per_level[level])
        if (false / calls if calls else 0.0) <= fdr_level:
            return level
    return min(per_level)


def calibrate(data: StageData, method_nulls: dict[str, pd.DataFrame] | None = None,
              prep: Prepared | None = None) -> pd.DataFrame:
    """The calibration table of a cohort (see the module docstring).

    Parameters
    ----------
    data : StageData
    method_nulls : dict of str to DataFrame, optional
        :func:`method_null_pvalues` of the reporting methods.
    prep : Prepared, optional
        :func:`~workflow_scripts.differential.primary.prepare_primary` of
        ``data`` if already computed.

    Returns
    -------
    DataFrame
        The ``calibration.tsv`` rows (:data:`TABLE` columns), sorted.
    """
    prep = prepare_primary(data) if prep is None else prep
    settings = data.settings
    fdr_level = float(settings.fdr_level)
    levels = candidate_levels(fdr_level)
    rows = null_rows(prep, levels)
    implant_rows, used = implant_rows_and_level(prep, levels, fdr_level)
    calls_row = next(r for r in rows if r["metric"] == "calls_per_null_swap")
    per_level = calls_row.pop("_per_level")
    at_used = np.asarray(per_level[used])
    calls_row.update(value=float(at_used.mean()) if len(at_used) else np.nan,
                     lower=float(at_used.min()) if len(at_used) else np.nan,
                     upper=float(at_used.max()) if len(at_used) else np.nan,
                     min_replicate=float(at_used.min()) if len(at_used) else np.nan,
                     max_replicate=float(at_used.max()) if len(at_used) else np.nan,
                     status="flagged" if len(at_used) and at_used.max() > 1 else "ok",
                     note=f"non-neutral calls on a label-swapped cohort, at q < {used:g} (flagged above 1; "
                     "a strong real effect carried by few households can survive a swap)")
    rows += implant_rows
    rows += method_rows(method_nulls or {}, settings.methods, settings.calibration["methods"])
    table = pd.DataFrame(rows, columns=TABLE)
    order = {"A": 0, "B": 1, "C": 2, "primary": 3, "classification": 4}
    table["_o"] = table["scope"].map(lambda s: order.get(s, 5))
    return table.sort_values(["_o", "scope"], kind="stable").drop(columns="_o").reset_index(drop=True)


def null_rows(prep: Prepared, levels) -> list[dict]:
    """Type-I error of the components and the combination, and calls per null swap (per level)."""
    n_swaps = prep.swaps.status.shape[0]
    pvalues = {c: [] for c in ("p_A", "p_B", "p_C", "pvalue")}
    per_level = {level: [] for level in levels}
    for r in range(n_swaps):
        raw = {k: v[r] for k, v in prep.raw_null.items()}
        result = combine(raw, (prep.bias_null[0][r], prep.bias_null[1][r]), prep.bias_var, prep.options)
        result["qvalue"] = bh(result["pvalue"])
        for c in pvalues:
            pvalues[c].append(result[c])
        if (np.nan_to_num(result["qvalue"], nan=1.0) < max(levels)).any():
            units = prep.units_for(prep.swaps.status[r], prep.swaps.therapy[r])
            resp = prep.responses(units)
            swapped = test_taxa(units, resp, prep.options, prep.bias_var)
            calls = calls_by_level(prep, units, resp, swapped, levels)
        else:
            calls = {level: np.zeros(len(result["pvalue"]), int) for level in levels}
        for level in levels:
            per_level[level].append(int((calls[level] != 0).sum()))
    rows = []
    names = {"p_A": ("A", "component A: all-pairs CLR difference"),
             "p_B": ("B", "component B: abundance where present"),
             "p_C": ("C", "component C: presence (discordant pairs)"),
             "pvalue": ("primary", "primary test: Cauchy combination of A, B and C")}
    for column, (scope, note) in names.items():
        P = np.array(pvalues[column], dtype=float).reshape(n_swaps, -1)
        ok = np.isfinite(P)
        hits, tests = int((P[ok] < 0.05).sum()), int(ok.sum())
        with np.errstate(invalid="ignore"):
            per = np.where(ok.any(axis=1), (np.where(ok, P < 0.05, False)).sum(axis=1) / np.maximum(ok.sum(axis=1), 1),
                           np.nan)
        value = hits / tests if tests else np.nan
        flag = "ok" if tests and TYPE1_RANGE[0] <= value <= TYPE1_RANGE[1] else ("flagged" if tests else "")
        rows.append(rate_row(scope, "type1_error_0.05", "all", "null", hits, tests, n_swaps, per, flag,
                             note + "; null label swaps"))
    rows.append(row(scope="classification", metric="calls_per_null_swap", prevalence_band="all", effect="null",
                    n_replicates=n_swaps, n_tests=len(prep.data.features), _per_level=per_level))
    return rows


def implant_rows_and_level(prep: Prepared, levels, fdr_level: float) -> tuple[list[dict], float]:
    """FDR per candidate level, the level in force, FDR and power there (implant replicates)."""
    data = prep.data
    n = int(data.settings.calibration["implant_replicates"])
    if n == 0 or len(data.features) == 0:
        note = "no implant replicates (differential.calibration.implant_replicates = 0)" if n == 0 else \
            "no tested taxa"
        return [row(scope="classification", metric="q_threshold_used", prevalence_band="all", effect="",
                    value=levels[0], n_replicates=0, status="not calibrated", note=note)], levels[0]
    swaps = swap_labels(data.design, n, data.settings.seed, stream=IMPLANT_STREAM)
    rng = np.random.default_rng(np.random.SeedSequence([int(data.settings.seed), IMPLANT_STREAM + 1]))
    per_level = {level: [] for level in levels}  # (calls, false calls) per replicate
    hits = []  # (band, effect, level, hit)
    component_calls = {c: [] for c in ("p_A", "p_B", "p_C", "pvalue")}
    for r in range(n):
        units = prep.units_for(swaps.status[r], swaps.therapy[r])
        # with repeated samples every sample of a labelled case gets the implant
        values, truth = implant(prep.values, prep.sample_status(swaps.status[r]), data.kind, prep.feature_columns,
                                rng)
        resp = prep.responses(units, values)
        result = test_taxa(units, resp, prep.options, prep.bias_var)
        calls = calls_by_level(prep, units, resp, result, levels)
        effect = np.where(truth["kind"] == "prevalence", "prevalence",
                          [f"{f:g}x" for f in truth["fold"].fillna(0)])
        for level in levels:
            n_calls, n_false, right = score(calls[level], truth)
            per_level[level].append((n_calls, n_false))
            hits += [(b, e, level, bool(h)) for b, e, h in zip(truth["band"], effect, right)]
        for c in component_calls:
            q = bh(result[c])
            sign = result["direction"] if c == "pvalue" else (
                np.sign(result["effect_A"]) if c == "p_A" else np.sign(result["effect_B"]) if c == "p_B"
                else result["sign_C"])
            component_calls[c].append((np.where(np.nan_to_num(q, nan=1.0) < levels[0], sign, 0).astype(int),
                                       truth))
    rows = []
    for level in levels:
        n_calls = sum(c for c, _ in per_level[level])
        n_false = sum(f for _, f in per_level[level])
        lower, upper = wilson(n_false, n_calls)
        per = [f / c if c else 0.0 for c, f in per_level[level]]
        rows.append(row(scope="classification", metric="fdr_at_q", prevalence_band="all", effect=f"q<{level:g}",
                        value=n_false / n_calls if n_calls else 0.0, lower=lower, upper=upper, n_replicates=n,
                        n_tests=n_calls, min_replicate=min(per), max_replicate=max(per), note="candidate BH level"))
    used = choose_level(per_level, fdr_level)
    rows.append(row(scope="classification", metric="q_threshold_used", prevalence_band="all", effect="",
                    value=used, n_replicates=n, status="tightened" if used < levels[0] else "ok",
                    note=f"largest candidate BH level whose calibration FDR is at most {fdr_level:g}"))
    n_calls = sum(c for c, _ in per_level[used])
    n_false = sum(f for _, f in per_level[used])
    lower, _ = wilson(n_false, n_calls)
    per = [f / c if c else 0.0 for c, f in per_level[used]]
    rows.append(rate_row("classification", "fdr", "all", "implants", n_false, n_calls, n, per,
                         "flagged" if n_calls and lower > fdr_level else "ok",
                         f"false calls / calls, pooled over the implant replicates, at q < {used:g}"))
    H = pd.DataFrame(hits, columns=["band", "effect", "level", "hit"])
    H = H[H["level"] == used]
    for (band, effect), group in H.groupby(["band", "effect"], sort=True):
        rows.append(rate_row("classification", "power", band, effect, int(group["hit"].sum()), len(group), n,
                             note=f"implanted taxa called in their direction, at q < {used:g}"))
    rows.append(rate_row("classification", "power", "all", "implants", int(H["hit"].sum()), len(H), n,
                         note=f"implanted taxa called in their direction, at q < {used:g}"))
    names = {"p_A": "A", "p_B": "B", "p_C": "C", "pvalue": "primary"}
    for c, scope in names.items():
        n_calls = n_false = n_hit = n_truth = 0
        for calls, truth in component_calls[c]:
            k, f, right = score(calls, truth)
            n_calls, n_false, n_hit, n_truth = n_calls + k, n_false + f, n_hit + int(right.sum()), n_truth + len(truth)
        note = f"{scope} alone: BH q < {levels[0]:g}, no other condition (for comparison)"
        rows.append(rate_row(scope, "fdr", "all", "implants", n_false, n_calls, n, note=note))
        rows.append(rate_row(scope, "power", "all", "implants", n_hit, n_truth, n, note=note))
    return rows, used


def level_in_force(table: pd.DataFrame, fdr_level: float) -> float:
    """The BH level the calls use: ``q_threshold_used`` of a calibration table (half ``fdr_level`` without one)."""
    chosen = table[(table["scope"] == "classification") & (table["metric"] == "q_threshold_used")]
    value = pd.to_numeric(chosen["value"], errors="coerce").dropna()
    return float(value.iloc[0]) if len(value) else fdr_level * LEVEL_FRACTIONS[0]
