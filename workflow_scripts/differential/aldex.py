"""ALDEx2-style Monte Carlo: Dirichlet posterior draws, CLR, the household model per draw.

ALDEx2 treats the observed counts of a participant as one draw from a
multinomial whose proportions are uncertain: it samples proportions from
their Dirichlet posterior (counts + 0.5), takes the CLR of every sample,
tests every feature on every draw and averages (expected p-value). This is
the scheme of scikit-bio's :func:`skbio.stats.composition.dirmult_ttest`,
down to the random numbers: each draw is ``rng.standard_gamma(counts + 0.5)``
(a Dirichlet draw up to the scale, which the CLR removes) from
``numpy.random.default_rng(seed)``, so with an unpaired two-group design the
effects here equal ``dirmult_ttest``'s ``Log2(FC)`` (tested). Instead of a
Welch t-test, each draw is fitted with the stage's household model
(:func:`workflow_scripts.differential.prepare.fit_status_model`), so the
pairing, covariates, site and DMT terms enter as in the other models; all
features are fitted at once per draw.

Summaries over ``aldex.draws`` draws (default 128, ALDEx2's ``mc.samples``):
``effect`` the mean status coefficient (log2 CLR units, no bias
correction), ``se`` the total standard error by Rubin's rules
(:math:`\\sqrt{\\bar U + (1 + 1/D) B}`, mean within-draw variance plus the
between-draw variance), ``pvalue`` the mean p-value (ALDEx2's expected
p-value; conservative), ``stat`` the mean z, all over the draws whose fit
gave finite estimates (their number in ``draws``, as dirmult_lme's ``Reps``). Relative abundances cannot be
resampled this way: the method then reports no result (NaN) and the
consensus counts it as not run.

References
----------
.. [1] Fernandes, A. D., Reid, J. N., Macklaim, J. M., McMurrough, T. A.,
   Edgell, D. R. & Gloor, G. B. (2014). Unifying the analysis of
   high-throughput sequencing datasets: characterizing RNA-seq, 16S rRNA gene
   sequencing and selective growth experiments by compositional data
   analysis. *Microbiome* 2, 15. https://doi.org/10.1186/2049-2618-2-15
.. [2] Rubin, D. B. (1987). *Multiple Imputation for Nonresponse in Surveys*. Wiley.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .methods import MethodOutput
from .prepare import StageData, fit_status_model, status_design

SCALE = "log2 fold change (CLR, Monte Carlo mean, no bias correction)"
USES_PSEUDO_COUNT = True
#: Numbers (participants x features x draws) fitted in one block.
BLOCK = 8_000_000


def dirichlet_clr_draws(counts, draws: int, pseudo_count: float, seed: int):
    """Yield ``draws`` CLR (log2) matrices of Dirichlet posterior draws of ``counts``.

    Notes
    -----
    Draw ``d`` is :math:`\\operatorname{clr}(\\Gamma_d)` with
    :math:`\\Gamma_{d,ij} \\sim \\mathrm{Gamma}(y_{ij} + c, 1)`, all from one
    ``numpy.random.default_rng(seed)`` in order, as scikit-bio's
    ``_dirmult_draw``; normalising the gammas to a Dirichlet draw would not
    change the CLR.
    """
    alpha = np.asarray(counts, dtype=float) + pseudo_count
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        logs = np.log2(rng.standard_gamma(alpha))
        yield logs - logs.mean(axis=1, keepdims=True)


def monte_carlo(data: StageData, draws: int, pseudo_count: float, seed: int) -> pd.DataFrame:
    """Fit the household model to every draw; per-feature summaries (see the module docstring).

    Draws are fitted in blocks: the columns of several draws side by side are
    one multi-feature fit (every column is its own model), so the design is
    factorised once per block rather than once per draw.
    """
    columns = list(data.profiles.columns)
    tested = [columns.index(f) for f in data.features]
    X = status_design(data.design, data.settings.site_effect)
    n, p = len(data.profiles), len(tested)
    per_block = max(1, min(draws, BLOCK // max(n * p, 1)))
    results = {"effect": [], "se": [], "pvalue": [], "stat": []}
    block = []

    def fit(block):
        Y = np.hstack(block)
        result, _, _ = fit_status_model(Y, data.design, data.settings.site_effect, X)
        j = list(result.columns).index("status")
        for key, values in (("effect", result.beta[j]), ("se", result.se[j]), ("pvalue", result.pvalue[j]),
                            ("stat", result.stat[j])):
            results[key].extend(values.reshape(len(block), p))

    for W in dirichlet_clr_draws(data.profiles.to_numpy(dtype=float), draws, pseudo_count, seed):
        block.append(W[:, tested])
        if len(block) == per_block:
            fit(block)
            block = []
    if block:
        fit(block)
    betas, pvalues, stats_ = results["effect"], results["pvalue"], results["stat"]
    variances = [se**2 for se in results["se"]]
    B, U, P, Z = (np.array(v) for v in (betas, variances, pvalues, stats_))
    ok = np.isfinite(B) & np.isfinite(U) & np.isfinite(P)
    reps = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        B, U, P, Z = (np.where(ok, v, np.nan) for v in (B, U, P, Z))
        mean_b = np.nansum(B, axis=0) / reps
        between = np.nansum((B - mean_b) ** 2, axis=0) / np.maximum(reps - 1, 1)
        total = np.nansum(U, axis=0) / reps + (1.0 + 1.0 / np.maximum(reps, 1)) * between
        summary = {
            "effect": mean_b,
            "se": np.sqrt(total),
            "stat": np.nansum(Z, axis=0) / reps,
            "pvalue": np.nansum(P, axis=0) / reps,
        }
    none = reps == 0
    for value in summary.values():
        value[none] = np.nan
    return pd.DataFrame({
        **summary,
        "draws": reps,
    }, index=pd.Index(data.features, name="feature"))


def run(data: StageData, pseudo_count: float | None = None) -> MethodOutput:
    """ALDEx2-style effects for the tested features (see the module docstring)."""
    options = data.settings.aldex
    pc = options["pseudo_count"] if pseudo_count is None else pseudo_count
    if data.kind != "counts":
        nan = np.full(len(data.features), np.nan)
        table = pd.DataFrame({"effect": nan, "se": nan, "stat": nan, "pvalue": nan, "draws": 0},
                             index=pd.Index(data.features, name="feature"))
        return MethodOutput(table, data.design.frame.index, SCALE + "; not run: needs counts")
    table = monte_carlo(data, int(options["draws"]), pc, int(data.settings.seed))
    return MethodOutput(table, data.design.frame.index, SCALE)
