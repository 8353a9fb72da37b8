"""ANCOM-BC on within-household log-ratios (scikit-bio's ``ancombc``).

ANCOM-BC models the log observed abundance of feature :math:`j` in sample
:math:`i` as :math:`\\theta_i + x_i^\\top\\beta_j + \\varepsilon_{ij}`, where
:math:`\\theta_i` is the sample's unknown sampling fraction, and removes the
bias the unknown :math:`\\theta` leaves in :math:`\\hat\\beta` with an EM
estimate per term. Neither scikit-bio's ``ancombc`` nor ``ancombc2`` takes a
random effect, so the household pairing enters through the data: for each
household with a case and a control, the difference of log abundances
(case minus control; means over members when a household has several),

.. math::

    \\log\\frac{O_{case,j} + c}{O_{control,j} + c}
    = (\\theta_{case} - \\theta_{control}) + \\beta_{status,j}
    + (x_{case} - x_{control})^\\top \\beta_j + \\dots,

is again an ANCOM-BC model, one "sample" per household: its sampling
fraction is the difference of the two members', its intercept is the status
effect, and household and site effects cancel. The terms are the covariate
differences and the DMT indicators (zero for untreated patients), so the
intercept is untreated MS vs household control. ``ancombc`` is run on the
ratio table with this design; ``effect`` is its bias-corrected natural-log
fold change of the intercept, ``se``/``stat``/``pvalue`` its SE, W and
p-value (normal), q-values BH here. ``ancombc2`` centres each feature's logs
(it estimates per-sample fractions), which would remove the intercept, so it
cannot take this paired form.

Zero handling (ANCOM-BC's own): a pseudo-count (``ancombc.pseudo_count``,
default 1, as scikit-bio's documentation adds before ``ancombc``; relative
abundances: that multiple of the participant's smallest non-zero value), and
the structural-zero test (:func:`skbio.stats.composition.struc_zero`) on the
paired participants by status, reported in ``structural_zero`` (the group in
which the feature is structurally absent, if any). Unpaired participants are
not used (ledger ``unpaired``). Without enough household pairs for the terms
(e.g. an unpaired cohort) every p-value is empty and ``note`` says why.

References
----------
.. [1] Lin, H. & Peddada, S. D. (2020). Analysis of compositions of
   microbiomes with bias correction. *Nature Communications* 11, 3514.
   https://doi.org/10.1038/s41467-020-17041-7
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from skbio.stats.composition import ancombc, struc_zero

from ..design import drop_aliased
from ..transforms import replace_zeros
from .methods import MethodOutput
from .prepare import StageData, status_design

SCALE = "natural-log fold change (ANCOM-BC, bias-corrected)"
USES_PSEUDO_COUNT = True


def paired_log_ratios(data: StageData, pseudo_count: float) -> pd.DataFrame:
    """Households x tested features: case minus control natural-log abundance."""
    logs = np.log(replace_zeros(data.profiles.to_numpy(dtype=float), data.kind, pseudo_count))
    D = data.pairs.contrast(logs)
    frame = pd.DataFrame(D, index=data.pairs.households, columns=data.profiles.columns)
    return frame[data.features]


def paired_terms(data: StageData) -> pd.DataFrame:
    """Households x terms: covariate differences and DMT indicators (no status, no site).

    Terms constant across households (e.g. a covariate that never differs
    within a household) or aliased with earlier ones are dropped.
    """
    X = status_design(data.design, "fixed")
    terms = X.drop(columns=[c for c in X.columns if c in ("intercept", "status") or c.startswith("site[")])
    D = data.pairs.contrast(terms.to_numpy(dtype=float))
    frame = pd.DataFrame(D, index=data.pairs.households, columns=terms.columns)
    with_constant = pd.concat([pd.DataFrame({"_status": 1.0}, index=frame.index), frame], axis=1)
    return frame[[c for c in drop_aliased(with_constant)[0].columns if c != "_status"]]


def structural_zeros(data: StageData) -> pd.Series:
    """``case``/``control``/``""``: the group in which a tested feature is structurally absent."""
    members = data.pairs.members(data.design.frame.index)
    table = data.profiles.loc[members, data.features]
    labels = np.where(data.design.frame.loc[members, "status"] == 1, "case", "control")
    meta = pd.DataFrame({"group": labels}, index=members)
    zero = struc_zero(table, meta, "group")
    out = pd.Series("", index=pd.Index(data.features, name="feature"), dtype=object)
    for group in ("case", "control"):
        if group in zero.columns:
            flagged = zero[group].reindex(out.index).fillna(False).astype(bool)
            out[flagged & (out == "")] = group
            out[flagged & (out != group) & (out != "")] = "both"
    return out


def run(data: StageData, pseudo_count: float | None = None) -> MethodOutput:
    """ANCOM-BC status effects for the tested features (see the module docstring)."""
    pc = data.settings.ancombc["pseudo_count"] if pseudo_count is None else pseudo_count
    pairs = data.pairs
    participants = pairs.members(data.design.frame.index)
    index = pd.Index(data.features, name="feature")
    nan = np.full(len(index), np.nan)
    terms = paired_terms(data) if len(pairs.households) else pd.DataFrame()
    if len(pairs.households) <= terms.shape[1] + 1 or len(index) < 2:
        note = ("not run: no household pairs" if not len(pairs.households) else
                f"not run: {len(pairs.households)} household pairs for {terms.shape[1] + 1} terms")
        table = pd.DataFrame({"effect": nan, "se": nan, "stat": nan, "pvalue": nan,
                              "structural_zero": "", "n_pairs": len(pairs.households), "note": note},
                             index=index)
        return MethodOutput(table, participants, SCALE)
    D = paired_log_ratios(data, pc)
    names = {c: f"t{i}" for i, c in enumerate(terms.columns)}
    meta = terms.rename(columns=names)
    formula = " + ".join(names.values()) or "1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = ancombc(np.exp(D), meta, formula, p_adjust=None).result
    main = result.xs("Intercept", level="Covariate").reindex(index)
    table = pd.DataFrame({
        "effect": main["Log(FC)"].to_numpy(dtype=float),
        "se": main["SE"].to_numpy(dtype=float),
        "stat": main["W"].to_numpy(dtype=float),
        "pvalue": main["pvalue"].to_numpy(dtype=float),
    }, index=index)
    table["structural_zero"] = structural_zeros(data)
    table["n_pairs"] = len(pairs.households)
    table["note"] = ""
    return MethodOutput(table, participants, SCALE)
