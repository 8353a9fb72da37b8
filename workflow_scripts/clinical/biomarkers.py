"""Blood markers of damage (sNfL, GFAP) as Z-scores against the cohort's own controls.

Serum neurofilament light (sNfL, neuro-axonal damage) and glial fibrillary
acidic protein (GFAP, astrocytic activation) rise with age and fall with body
mass index (a larger blood volume dilutes them), so a raw value says little
until it is compared with healthy people of the same age and BMI. Reference
databases do this with thousands of controls (Benkert et al. 2022; Meier et
al. 2023); a cohort study has its own household controls, measured in the same
laboratory run, and uses them.

Model
    In the controls with a value, age and BMI, ordinary least squares on the
    natural log:

    .. math::  \\log y_i = \\beta_0 + \\beta_1\\,\\mathrm{age}_i + \\beta_2\\,\\mathrm{BMI}_i + \\varepsilon_i,

    then for every participant (patients and controls alike)

    .. math::  Z_i = (\\log y_i - \\hat\\beta_0 - \\hat\\beta_1\\,\\mathrm{age}_i
               - \\hat\\beta_2\\,\\mathrm{BMI}_i) / \\hat\\sigma,
               \\quad \\hat\\sigma^2 = \\mathrm{RSS} / (n - 3).

    Z = 1 is one residual SD above a control of the same age and BMI.

Few controls, missing BMI
    A model with ``p`` slopes is fitted only with at least
    ``min_per_term * (p + 1)`` controls (``clinical.min_controls_per_term``, default 10 per coefficient:
    30 for age + BMI, 20 for age, 10 for the mean). Each participant gets the
    richest model that was fitted and whose covariates they have: age + BMI,
    else age only (e.g. no BMI, or fewer than 30 controls with BMI), else the
    controls' mean and SD of the log (fewer than 20 controls). With fewer than
    10 controls there is no Z-score. The model used is returned per
    participant, so nothing falls back silently.

References
----------
.. [1] Benkert P et al. (2022). Serum neurofilament light chain for individual
   prognostication of disease activity in people with multiple sclerosis: a
   retrospective modelling and validation study. Lancet Neurol 21:246-257.
.. [2] Meier S et al. (2023). Serum glial fibrillary acidic protein compared
   with neurofilament light chain as a biomarker for disease progression in
   multiple sclerosis. JAMA Neurol 80:287-297.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Markers the workflow reads from the participants (per-participant means of the blood samples).
MARKERS = ("snfl", "gfap")
#: Reference models, richest first: name -> covariates.
MODELS = (("age+bmi", ("age", "bmi")), ("age", ("age",)), ("mean", ()))


def _fit(log_values: np.ndarray, covariates: np.ndarray) -> tuple[np.ndarray, float]:
    """OLS coefficients (intercept first) and residual SD, RSS / (n - k)."""
    X = np.column_stack([np.ones(len(log_values)), covariates])
    beta, *_ = np.linalg.lstsq(X, log_values, rcond=None)
    resid = log_values - X @ beta
    return beta, float(np.sqrt(resid @ resid / (len(log_values) - X.shape[1])))


def reference_zscores(values: pd.Series, covariates: pd.DataFrame, reference: pd.Series,
                      min_per_term: int) -> pd.DataFrame:
    """Z-score of every participant's marker against the reference participants' log-linear model.

    Parameters
    ----------
    values : Series
        Marker per participant (pg/mL, > 0; NaN = not measured).
    covariates : DataFrame
        ``age`` and optional ``bmi`` per participant (same index).
    reference : Series of bool
        True for the reference participants (the controls).
    min_per_term : int
        Reference participants needed per coefficient (see the module docstring).

    Returns
    -------
    DataFrame
        Index as ``values``: ``value`` (raw), ``log_value``, ``z``, ``model``
        (``age+bmi``, ``age``, ``mean`` or empty), ``n_reference`` (controls in
        the model used), and per model the coefficients in ``attrs["models"]``.
    """
    values = values.astype(float)
    logs = np.log(values.where(values > 0))
    out = pd.DataFrame({"value": values, "log_value": logs, "z": np.nan, "model": "", "n_reference": 0},
                       index=values.index)
    available = [c for c in ("age", "bmi") if c in covariates.columns]
    fitted = {}
    for name, terms in MODELS:
        if not set(terms) <= set(available):
            continue
        cov = covariates[list(terms)].astype(float)
        usable = reference.astype(bool) & logs.notna() & cov.notna().all(axis=1)
        n = int(usable.sum())
        if n < min_per_term * (len(terms) + 1):
            continue
        beta, sd = _fit(logs[usable].to_numpy(), cov[usable].to_numpy())
        fitted[name] = {"terms": list(terms), "coef": beta.tolist(), "sd": sd, "n": n}
        todo = (out["model"] == "") & logs.notna() & cov.notna().all(axis=1)
        prediction = beta[0] + cov[todo].to_numpy() @ beta[1:]
        out.loc[todo, "z"] = (logs[todo] - prediction) / sd
        out.loc[todo, "model"] = name
        out.loc[todo, "n_reference"] = n
    out.attrs["models"] = fitted
    return out


def marker_zscores(participants: pd.DataFrame, control_label: str,
                   min_per_term: int) -> dict[str, pd.DataFrame]:
    """:func:`reference_zscores` of every marker the participants table carries.

    Parameters
    ----------
    participants : DataFrame
        Index participant_id; ``status``, ``age``, optional ``bmi``, ``snfl``, ``gfap``.
    control_label : str
        The ``status`` of the reference participants.

    Returns
    -------
    dict
        Marker name -> its :func:`reference_zscores` frame (markers absent
        from the table, or never measured, are left out).
    """
    reference = participants["status"] == control_label
    covariates = participants[[c for c in ("age", "bmi") if c in participants.columns]] \
        .apply(pd.to_numeric, errors="coerce")
    out = {}
    for marker in MARKERS:
        if marker in participants.columns:
            values = pd.to_numeric(participants[marker], errors="coerce")
            if values.notna().any():
                out[marker] = reference_zscores(values, covariates, reference, min_per_term)
    return out
