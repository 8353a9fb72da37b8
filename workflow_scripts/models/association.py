"""Genotype x microbiome association for every variant x feature: the one entry point.

:func:`associate` fits, for every variant and every feature, the main-effect
model ``y = g b_g + C c + e`` and the interaction model
``y = g b_g + (g * status) b_int + C c + e`` (``C = [1, status,
covariates]``) by ordinary least squares, all tests of a chunk of variants at
once (:mod:`workflow_scripts.models.association_core`).  Standard errors are
household cluster-robust (CR1, :mod:`workflow_scripts.models.cluster_robust`)
when households are given, as the workflow's association stage fits them;
without households the participants are independent and the errors are the
classical model-based ones.  :func:`genetic_pcs` gives the ancestry
covariates.  No file I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from ..errors import Problems
from .association_core import (
    RESULT_COLUMNS,
    check_dosage_block,
    model_based_errors,
    project_covariates,
    sufficient_statistics,
)
from .cluster_robust import CLUSTERED_COLUMNS, VALUE_COLUMNS, clustered_block, prepare_clustered

_INPUT = "association input"


def iter_chunks(G, variant_ids: Sequence, chunk_size: int = 1000) -> Iterator[tuple]:
    """Split a variants x participants dosage array into ``(ids, block)`` chunks.

    ``G`` may be anything sliceable by rows (NumPy array, ``np.memmap``,
    ``h5py`` dataset); only one block is materialised at a time.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n_variants = G.shape[0]
    if len(variant_ids) != n_variants:
        problems = Problems()
        problems.add(_INPUT, f"{len(variant_ids)} variant ids for {n_variants} rows of G",
                     "pass one variant id per row of G")
        problems.raise_if_any()
    for start in range(0, n_variants, chunk_size):
        stop = min(start + chunk_size, n_variants)
        yield variant_ids[start:stop], G[start:stop]


def _frame(variant_ids, feature_ids: pd.Index, per_variant: dict, per_test: dict, columns) -> pd.DataFrame:
    """One chunk's results, ``m * S`` rows (variant-major)."""
    m, n_features = len(variant_ids), len(feature_ids)
    frame = {
        "variant_id": pd.Categorical.from_codes(
            np.repeat(np.arange(m), n_features), categories=pd.Index(variant_ids)),
        "feature": pd.Categorical.from_codes(
            np.tile(np.arange(n_features), m), categories=feature_ids),
    }
    frame.update({name: np.repeat(values, n_features) for name, values in per_variant.items()})
    frame.update({name: values.ravel() for name, values in per_test.items()})
    return pd.DataFrame(frame, columns=columns, copy=False)


def associate_chunks(Y, chunks: Iterable[tuple], status, covariates, feature_ids,
                     households=None) -> Iterator[pd.DataFrame]:
    """:func:`associate` over an iterator of ``(variant_ids, dosage_block)`` chunks.

    ``dosage_block`` has shape (m, n): ALT allele dosages 0-2, NaN for
    missing, participants in the order of ``Y``.  Lazy: nothing is computed
    before the first chunk is asked for.  Yields one DataFrame per chunk.
    """
    if households is None:
        design = project_covariates(Y, status, covariates, feature_ids)
        for ids, block in chunks:
            dosage = np.asarray(block, dtype=float)
            check_dosage_block(ids, dosage, design.n)
            stats = sufficient_statistics(design, dosage)
            yield _frame(ids, design.feature_ids, {"n": stats.n, "allele_frequency": stats.af},
                         model_based_errors(stats), RESULT_COLUMNS)
        return
    cd = prepare_clustered(Y, status, covariates, households, feature_ids)
    for ids, block in chunks:
        dosage = np.asarray(block, dtype=float)
        check_dosage_block(ids, dosage, cd.n)
        result = clustered_block(cd, dosage)
        per_variant = {name: result[name] for name in ("n", "n_households", "allele_frequency")}
        yield _frame(ids, cd.base.feature_ids, per_variant, {name: result[name] for name in VALUE_COLUMNS},
                     CLUSTERED_COLUMNS)


def associate(Y, G, status, covariates, variant_ids, feature_ids, households=None,
              chunk_size: int = 1000) -> Iterator[pd.DataFrame]:
    """Main-effect and genotype x status interaction tests, every variant x feature.

    Parameters
    ----------
    Y : array_like, shape (n, S)
        Feature abundances (e.g. CLR), participants x features, no NaN.
    G : array_like, shape (V, n)
        ALT allele dosages in [0, 2]; NaN marks a missing dosage. Any object
        sliceable by rows works (memmap, h5py dataset).
    status : array_like, shape (n,)
        1 = MS, 0 = healthy control.
    covariates : array_like, shape (n, k) or None
        Covariates without intercept (age, sex, BMI, genetic PCs, ...).
    variant_ids : sequence, length V
    feature_ids : sequence, length S
    households : array_like, shape (n,), optional
        Household of every participant (unpaired participants: one of their
        own).  Given, the standard errors are household cluster-robust (CR1)
        and the tests use Student's t with ``n_households - 1`` degrees of
        freedom, as the workflow's association stage reports them.  Without
        it the participants are taken as independent: model-based OLS errors
        and ``n - rank(C) - 1`` (main) or ``- 2`` (interaction) degrees of
        freedom.
    chunk_size : int, default 1000
        Variants per chunk; memory is ``O(chunk_size * (n + S))``.

    Yields
    ------
    pandas.DataFrame
        One per chunk with ``m * S`` rows (variant-major) and columns
        (:data:`~workflow_scripts.models.association_core.RESULT_COLUMNS`, plus
        ``n_households`` after ``n`` with households:
        :data:`~workflow_scripts.models.cluster_robust.CLUSTERED_COLUMNS`)

        - ``variant_id``, ``feature`` (categorical)
        - ``n``: participants with an observed dosage for the variant
        - ``n_households``: households with an observed member (with households)
        - ``allele_frequency``: mean observed dosage / 2 (ALT allele)
        - ``beta_genotype``, ``se_genotype``, ``t_genotype``, ``p_genotype``:
          model (a), ``y = g b_g + C c + e``
        - ``beta_interaction``, ``se_interaction``, ``t_interaction``,
          ``p_interaction``: the ``g * status`` term of model (b),
          ``y = g b_g + (g * status) b_int + C c + e``
        - ``beta_genotype_interaction_model``: ``b_g`` of model (b), the
          genotype effect in controls

        Estimates that are not identified (monomorphic variant, interaction
        collinear with genotype, too few participants) are NaN.

    Notes
    -----
    ``C = [1, status, covariates]``, ``Q`` an orthonormal basis of its column
    space, ``P = I - QQ'``.  By Frisch-Waugh-Lovell, with ``g~ = Pg``,
    ``y~ = Py``, ``h~ = P(g * status)``:

    model (a): ``b_g = g~'y~ / g~'g~``, ``se^2 = (y~'y~ - b_g g~'y~) / (df g~'g~)``,
    ``df = n - rank(C) - 1``;

    model (b): ``[b_g, b_int]' = M^-1 [g~'y~, h~'y~]'`` with
    ``M = [[g~'g~, g~'h~], [g~'h~, h~'h~]]``, ``se(b_int)^2 = s^2 [M^-1]_22``,
    ``df = n - rank(C) - 2``.

    ``[G~; H~] Y~`` for a chunk is one matrix product; ``M`` is per variant
    and shared by all features.  p-values are two-sided from Student's t.
    The formulas are those of
    :func:`~workflow_scripts.models.association_core.model_based_errors`; the
    household-robust errors are derived in
    :mod:`workflow_scripts.models.cluster_robust` and equal
    ``statsmodels.api.OLS(y, X).fit(cov_type="cluster",
    cov_kwds={"groups": household}, use_t=True)`` on the complete cases.

    Missing dosages are not imputed: for a variant observed on participants
    ``O``, every quantity above is the one of the regression on ``O`` alone,
    projecting ``C_O`` out of ``y_O`` and ``g_O``, and ``n`` and ``df`` count
    ``O`` only, with ``rank(C_O)`` re-evaluated (dropping, say, every case
    leaves status collinear with the intercept).  Results equal a
    complete-case ``statsmodels.api.OLS`` fit per variant x feature.

    Benjamini-Hochberg q-values need all p-values of the study: concatenate
    the chunks and apply :func:`workflow_scripts.models.multiple_testing.bh`.

    References
    ----------
    .. [1] Shabalin AA (2012). Matrix eQTL: ultra fast eQTL analysis via large
       matrix operations. Bioinformatics 28(10):1353-1358.
    .. [2] Taylor-Weiner A et al. (2019). Scaling computational genomics to
       millions of individuals with GPUs. Genome Biology 20:228 (tensorQTL).
    .. [3] Frisch R, Waugh FV (1933). Partial time regressions as compared with
       individual trends. Econometrica 1(4):387-401; Lovell MC (1963).
       Seasonal adjustment of economic time series and multiple regression
       analysis. JASA 58(304):993-1010.
    .. [4] Liang KY, Zeger SL (1986). Longitudinal data analysis using
       generalized linear models. Biometrika 73(1):13-22.
    .. [5] iMSMS Consortium (2022). Gut microbiome of multiple sclerosis
       patients and paired household healthy controls reveal associations
       with disease risk and course. Cell 185(19):3467-3486.

    Examples
    --------
    >>> import pandas as pd
    >>> results = pd.concat(associate(Y, G, status, cov, vids, fids, households=hh))  # doctest: +SKIP
    >>> results["q_interaction"] = bh(results["p_interaction"])                        # doctest: +SKIP
    """
    yield from associate_chunks(Y, iter_chunks(G, variant_ids, chunk_size), status, covariates,
                                feature_ids, households)


def genetic_pcs(G, k: int = 10, chunk_size: int = 5000) -> np.ndarray:
    """Top genetic principal components of the participants (EIGENSTRAT).

    Parameters
    ----------
    G : array_like, shape (V, n)
        Dosages 0-2, NaN for missing; sliceable by rows.  Use LD-pruned,
        QC-passed variants.
    k : int
        Number of components.
    chunk_size : int
        Variants per block while accumulating the n x n relationship matrix.

    Returns
    -------
    numpy.ndarray, shape (n, k)
        Unit-norm eigenvectors of ``XX'``, largest eigenvalue first, each
        signed so that its largest-magnitude entry is positive.

    Notes
    -----
    ``x_vi = (g_vi - 2 p_v) / sqrt(2 p_v (1 - p_v))`` with ``p_v`` the
    observed allele frequency; missing entries and monomorphic variants
    contribute 0.  ``XX' = sum over chunks`` so memory is ``O(n^2)``.

    References
    ----------
    .. [1] Price AL et al. (2006). Principal components analysis corrects for
       stratification in genome-wide association studies. Nature Genetics
       38:904-909.
    """
    n = G.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and {n}, got {k}")
    grm = np.zeros((n, n))
    for start in range(0, G.shape[0], chunk_size):
        block = np.asarray(G[start:start + chunk_size], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.nansum(block, axis=1) / (2.0 * (~np.isnan(block)).sum(axis=1))
            sd = np.sqrt(2.0 * p * (1.0 - p))
            x = (block - 2.0 * p[:, None]) / sd[:, None]
        x = np.where(np.isfinite(x), x, 0.0)
        grm += x.T @ x
    eigval, eigvec = np.linalg.eigh(grm)
    top = eigvec[:, ::-1][:, :k]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(k)])
    return top * signs
