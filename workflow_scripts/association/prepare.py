"""From the harmonised cohort to the association inputs: Y, genotypes, covariates, QC.

No file I/O: :func:`prepare` takes a :class:`~workflow_scripts.cohort.Cohort`
and returns a :class:`Prepared`; :mod:`workflow_scripts.association.cli`
writes it for the chunk jobs.

Participants
    Those with a genotype (``has_genotype``), a stool profile and every
    configured covariate.  The others are ledger rows (``no_genotype``,
    ``missing_covariate``).  Households come from the design (unpaired
    participants are households of one).

Abundance
    The differential-abundance transform (:mod:`workflow_scripts.transforms`,
    and the same ``repeated_samples`` policy as the differential stage): one
    profile per participant at the configured rank (``first``: their first
    stool sample; ``sum``: the counts of all their samples pooled, or the mean
    profile of relative abundances), the centred log2-ratio over the whole
    composition after the shared zero replacement (``pseudo_count`` added to
    counts; zeros of relative profiles become ``pseudo_count`` times the
    smallest non-zero value), then the species passing the prevalence filter
    (among the participants analysed here).  Unused repeat samples and filtered species
    are ledger rows.

Covariates
    The configured covariates, site and disease-modifying-therapy
    indicators as the shared design codes them (status is in the engine's
    model already), plus genetic principal components when there are enough
    QC-passing variants (``pcs_min_variants``).

Variants
    :func:`~workflow_scripts.association.qc.variant_qc` on the participants
    analysed (minor allele frequency, call rate, Hardy-Weinberg in controls),
    evaluated in blocks so memory does not grow with the number of variants,
    and at least ``min_carriers`` participants carrying the minor allele
    (``few_carriers``).  Failing variants are ledger rows with every failed
    filter.  The genotype x status interaction is tested only when at least
    ``min_carriers`` cases and ``min_carriers`` controls carry the minor
    allele: a coefficient resting on one or two carriers has a residual of
    about zero at them, so its cluster-robust standard error collapses and
    its p-value is far too small (such variants are ``kept`` ledger rows with
    reason ``interaction_not_tested``; their interaction columns are NA).  The variants
    tested are sorted by id and cut into chunks of ``chunk_size`` (the
    scatter units of the workflow), so the gathered table is sorted by
    variant, then feature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from ..cohort import Cohort
from ..design import build_design, first_samples
from ..errors import InputError, Problem
from ..ledger import Ledger
from ..models.association import genetic_pcs
from ..settings import StageSettings
from ..transforms import clr_abundance, repeated_sample_profiles, select_features
from .qc import variant_qc

STAGE = "association"
#: Variants per block while running QC and genetic PCs over the memory-mapped dosages.
SCAN_BLOCK = 20_000
#: Fewest participants for which the stage runs (both models need residual df).
MIN_PARTICIPANTS = 10


@dataclass
class AssociationSettings(StageSettings):
    """The ``association`` config section plus the top-level ``covariates``.

    Keys and defaults: ``config/schema/association.schema.yaml``; build with :meth:`from_config`.
    """

    SECTION: ClassVar[str] = "association"
    TOP_LEVEL: ClassVar[tuple[str, ...]] = ("covariates",)

    maf_min: float
    call_rate_min: float
    hwe_p_min: float
    min_carriers: int
    chunk_size: int
    min_prevalence: float
    repeated_samples: str
    pseudo_count: float
    genetic_pcs: int
    pcs_min_variants: int
    fdr: float
    heatmap_pairs: int
    report_top: int
    covariates: list[str]


class GenotypeView:
    """Rows of a variants x participants dosage array, restricted to some columns.

    Sliceable by row ranges like the arrays the engine takes (``G[a:b]``);
    only the requested block is read from a memory map.
    """

    def __init__(self, genotypes, rows: np.ndarray, columns: np.ndarray):
        self.genotypes = genotypes
        self.rows = np.asarray(rows, dtype=np.intp)
        self.columns = np.asarray(columns, dtype=np.intp)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows.size, self.columns.size)

    def __len__(self) -> int:
        return self.rows.size

    def __getitem__(self, key) -> np.ndarray:
        rows = np.atleast_1d(self.rows[key])
        if rows.size == 0:
            return np.zeros((0, self.columns.size))
        if rows[-1] - rows[0] == rows.size - 1 and (np.diff(rows) == 1).all():
            block = self.genotypes[rows[0]:rows[-1] + 1]       # a contiguous range: one slice
        else:
            block = self.genotypes[rows]                        # reads only these rows
        return np.asarray(block, dtype=float)[:, self.columns]


@dataclass
class Prepared:
    """Everything the chunk jobs share, and what the stage reports about it.

    Attributes
    ----------
    participants : DataFrame
        index participant_id: ``genotype_column`` (column of the cohort's
        dosage matrix), ``household``, ``status`` (1 = case), then the
        covariate columns (numeric) in ``covariate_columns``.
    abundance : DataFrame
        participants x tested features, CLR (log2).
    variant_qc : DataFrame
        One row per cohort variant (cohort order): annotation, ``row``
        (cohort dosage row), QC statistics, ``keep``, ``reason``, ``chunk``
        (-1 when not tested).
    ledger : DataFrame
        Ledger rows (:mod:`workflow_scripts.ledger`).
    summary : dict
        Counts, settings, PCs and the reason when nothing can be tested.
    """

    participants: pd.DataFrame
    abundance: pd.DataFrame
    variant_qc: pd.DataFrame
    ledger: pd.DataFrame
    summary: dict
    covariate_columns: list[str] = field(default_factory=list)

    @property
    def n_chunks(self) -> int:
        return int(self.summary["n_chunks"])


def _participant_rows(cohort: Cohort, design_excluded: pd.DataFrame, genotyped: pd.Series, ledger: Ledger) -> None:
    missing_cov = dict(zip(design_excluded["id"], design_excluded["detail"]))
    for pid in cohort.participants.index:
        reasons, details = [], []
        if not genotyped.get(pid, False):
            reasons.append("no_genotype")
            details.append(f"{STAGE}: no genotyped blood sample")
        if pid in missing_cov:
            reasons.append("missing_covariate")
            details.append(missing_cov[pid])
        if reasons:
            ledger.dropped("participant", [pid], reason=";".join(reasons), detail="; ".join(details))


def _variant_rows(qc: pd.DataFrame, s: AssociationSettings, ledger: Ledger) -> None:
    failed = qc[~qc["keep"]]
    for vid, row in failed.iterrows():
        parts = []
        for reason in row["reason"].split(";"):
            if reason == "low_maf":
                maf = "not observed" if np.isnan(row["maf"]) else f"{row['maf']:.4g}"
                parts.append(f"minor allele frequency {maf} < {s.maf_min:g}")
            elif reason == "low_call_rate":
                parts.append(f"call rate {row['call_rate']:.4g} < {s.call_rate_min:g}")
            elif reason == "hwe":
                parts.append(f"Hardy-Weinberg p in controls {row['hwe_p']:.3g} < {s.hwe_p_min:g}")
            elif reason == "few_carriers":
                parts.append(f"{row['carriers_cases'] + row['carriers_controls']} minor-allele carriers "
                             f"< {s.min_carriers}")
        ledger.dropped("variant", [vid], reason=row["reason"], detail=f"{STAGE}: " + "; ".join(parts))
    main_only = qc[qc["keep"] & ~qc["test_interaction"]]
    for vid, row in main_only.iterrows():
        ledger.kept("variant", [vid], reason="interaction_not_tested",
                    detail=f"{STAGE}: minor-allele carriers {row['carriers_cases']} among cases and "
                    f"{row['carriers_controls']} among controls; the genotype x status interaction needs "
                    f"{s.min_carriers} in each (only the main effect is tested)")


def carriers(G, status) -> tuple[np.ndarray, np.ndarray]:
    """Participants carrying the minor allele, among cases and among controls.

    The minor allele is the rarer one over all participants; dosages are
    hard-called (rounded) and missing calls are not counted.
    """
    G = np.asarray(G, dtype=float)
    with np.errstate(invalid="ignore"):
        af = np.nanmean(G, axis=1) / 2 if G.shape[1] else np.full(G.shape[0], np.nan)
        calls = np.floor(G + 0.5)
        carrier = np.where((af <= 0.5)[:, None], calls >= 1, calls <= 1) & ~np.isnan(G)
    cases = status == 1
    return carrier[:, cases].sum(axis=1), carrier[:, ~cases].sum(axis=1)


def _scan_qc(view: GenotypeView, status: np.ndarray, s: AssociationSettings, variant_ids) -> pd.DataFrame:
    parts = []
    for start in range(0, len(view), SCAN_BLOCK):
        block = view[start:start + SCAN_BLOCK]
        qc = variant_qc(block, status, s.maf_min, s.call_rate_min, s.hwe_p_min,
                        variant_ids[start:start + SCAN_BLOCK])
        qc["carriers_cases"], qc["carriers_controls"] = carriers(block, status)
        parts.append(qc)
    if parts:
        qc = pd.concat(parts)
    else:
        qc = variant_qc(np.zeros((0, status.size)), status, s.maf_min, s.call_rate_min, s.hwe_p_min, [])
        qc["carriers_cases"] = qc["carriers_controls"] = np.zeros(0, int)
    few = (qc["carriers_cases"] + qc["carriers_controls"]) < s.min_carriers
    qc["reason"] = np.where(few, np.where(qc["reason"] == "", "few_carriers", qc["reason"] + ";few_carriers"),
                            qc["reason"])
    qc["keep"] = qc["reason"] == ""
    qc["test_interaction"] = qc["keep"] & (qc["carriers_cases"] >= s.min_carriers) & \
        (qc["carriers_controls"] >= s.min_carriers)
    return qc


def _skip(summary: dict, reason: str) -> dict:
    summary.update(status="nothing_tested", reason=reason, n_chunks=0, n_variants_tested=0)
    return summary


def prepare(cohort: Cohort, s: AssociationSettings) -> Prepared:
    """Participants, abundance, covariates, variant QC and chunks for the association stage.

    Parameters
    ----------
    cohort : Cohort
        The harmonised cohort, with genotypes (``cohort.info['has_genotypes']``).
    s : AssociationSettings

    Returns
    -------
    Prepared
        ``summary['status']`` is ``"ok"``, or ``"nothing_tested"`` with a
        ``reason`` when no variant x species test is possible (then
        ``n_chunks`` is 0).
    """
    if not cohort.info.get("has_genotypes") or cohort.genotypes is None:
        raise InputError([Problem("genotypes (harmonised cohort)", "the cohort has no genotypes",
                                  "give inputs.genotypes and inputs.blood_manifest, or do not run the "
                                  "association stage")])
    part = cohort.participants
    summary: dict = {"status": "ok", "reason": "", "settings": asdict(s),
                     "case_label": cohort.case_label, "control_label": cohort.control_label,
                     "rank": cohort.info.get("rank"), "household_errors": "CR1 cluster-robust by household"}

    design = build_design(part, list(s.covariates), cohort.case_label, stage=STAGE, samples=cohort.samples)
    genotyped = part["has_genotype"].astype(bool)
    ledger = Ledger()
    _participant_rows(cohort, design.excluded, genotyped, ledger)
    keep = [pid for pid in design.frame.index if genotyped[pid]]
    frame = design.frame.loc[keep]
    status = frame["status"].to_numpy(dtype=float)

    # Covariates: the design's columns (covariates, site, DMT) without intercept and status.
    fixed = design.matrix(site=True, dmt=True, intercept=True)
    covariates = fixed.drop(columns=[c for c in ("intercept", "status") if c in fixed.columns]).loc[keep]

    # One abundance profile per participant, CLR over the composition, prevalent species.
    samples = cohort.samples[cohort.samples["participant_id"].isin(keep)]
    table = cohort.table("taxa").loc[samples.index]
    kind = cohort.info["abundance_kind"]
    if s.repeated_samples == "first":
        first = first_samples(samples)
        unused = samples.index[~samples.index.isin(first.to_numpy())]
        ledger.dropped("stool_sample", unused, reason="repeat_sample_not_used",
                       detail=f"{STAGE}: one profile per participant, their first stool sample")
    profiles = repeated_sample_profiles(table, samples, s.repeated_samples, kind).reindex(keep)
    clr = clr_abundance(profiles, kind, pseudo_count=s.pseudo_count)
    features, feature_rows = select_features(profiles, s.min_prevalence, STAGE)
    features = pd.Index(sorted(features), name="feature")
    abundance = clr[features]

    # Variants: QC on the analysed participants, in blocks of the memory-mapped dosages.
    variants = cohort.variants.reset_index(drop=True)
    vids = variants["variant_id"].astype(str).to_numpy()
    columns = part.index.get_indexer(keep)
    view = GenotypeView(cohort.genotypes, np.arange(len(variants)), columns)
    qc = _scan_qc(view, status, s, vids) if keep else pd.DataFrame(
        {"maf": np.nan, "call_rate": 0.0, "hwe_p": 1.0, "keep": False, "reason": "no_participants",
         "n_hom_ref": 0, "n_het": 0, "n_hom_alt": 0, "carriers_cases": 0, "carriers_controls": 0,
         "test_interaction": False}, index=pd.Index(vids, name="variant_id"))
    qc.index.name = "variant_id"
    _variant_rows(qc, s, ledger)

    annotation = variants.set_index("variant_id")
    table_qc = pd.concat([annotation[[c for c in ("chrom", "pos", "gene_or_locus", "label")
                                      if c in annotation.columns]],
                          pd.Series(np.arange(len(variants)), index=annotation.index, name="row"),
                          qc], axis=1)
    tested = np.sort(table_qc.index[table_qc["keep"].to_numpy()].to_numpy().astype(str))
    chunk = pd.Series(-1, index=table_qc.index, dtype=int)
    chunk[tested] = np.arange(tested.size) // s.chunk_size
    table_qc["chunk"] = chunk

    # Genetic principal components from the QC-passing variants, when there are enough.
    pcs = {"requested": int(s.genetic_pcs), "used": 0, "reason": ""}
    k = int(s.genetic_pcs)
    if k > 0:
        if tested.size < max(s.pcs_min_variants, 1):
            pcs["reason"] = (f"{tested.size} QC-passing variants < pcs_min_variants "
                             f"({s.pcs_min_variants}); no genetic PCs")
        elif k >= len(keep) - 3:
            pcs["reason"] = f"{len(keep)} participants are too few for {k} genetic PCs"
        else:
            pass_rows = table_qc.loc[tested, "row"].to_numpy()
            vectors = genetic_pcs(GenotypeView(cohort.genotypes, np.sort(pass_rows), columns), k=k,
                                  chunk_size=SCAN_BLOCK)
            for j in range(k):
                covariates[f"PC{j + 1}"] = vectors[:, j]
            pcs["used"] = k
            pcs["reason"] = f"from {tested.size} QC-passing variants"

    participants = pd.DataFrame({"genotype_column": columns, "household": frame["household"].astype(str),
                                 "status": frame["status"].astype(int)}, index=pd.Index(keep, name="participant_id"))
    participants = pd.concat([participants, covariates.astype(float)], axis=1)

    n_cases = int(status.sum())
    households = frame["household"]
    summary.update({
        "n_participants": len(keep),
        "n_cases": n_cases,
        "n_controls": len(keep) - n_cases,
        "n_households": int(households.nunique()),
        "n_paired_households": int(frame.groupby("household")["status"].nunique().eq(2).sum()),
        "n_participants_excluded": int(sum(r[0] == "participant" for r in ledger.rows)),
        "n_features": len(features),
        "n_features_filtered": len(feature_rows),
        "n_variants": len(variants),
        "n_variants_failed_qc": int((~table_qc["keep"]).sum()),
        "n_variants_tested": int(tested.size),
        "n_variants_main_effect_only": int((table_qc["keep"] & ~table_qc["test_interaction"]).sum()),
        "n_chunks": int(-(-tested.size // s.chunk_size)),
        "chunk_size": int(s.chunk_size),
        "covariate_columns": list(covariates.columns),
        "genetic_pcs": pcs,
        "abundance": {"transform": "CLR (log2) over the composition", "kind": kind,
                      "repeated_samples": s.repeated_samples, "pseudo_count": s.pseudo_count},
    })
    if len(keep) < MIN_PARTICIPANTS or n_cases == 0 or n_cases == len(keep):
        summary = _skip(summary, f"{len(keep)} participants with genotype and covariates "
                                 f"({n_cases} {cohort.case_label}); need at least {MIN_PARTICIPANTS} "
                                 "with both statuses")
        table_qc["chunk"] = -1
    elif not len(features):
        summary = _skip(summary, f"no species passes the prevalence filter ({s.min_prevalence:g})")
        table_qc["chunk"] = -1
    elif not tested.size:
        summary = _skip(summary, "no variant passes QC")
    ledger.extend(feature_rows)
    return Prepared(participants=participants, abundance=abundance, variant_qc=table_qc,
                    ledger=ledger.frame(), summary=summary, covariate_columns=list(covariates.columns))
