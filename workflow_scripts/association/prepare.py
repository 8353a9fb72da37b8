"""From the harmonised cohort to what every chunk job shares: rows, abundance, covariates, chunks.

:func:`prepare` takes a :class:`~workflow_scripts.cohort.Cohort` (with its
genotype source, never a dosage matrix) and returns a :class:`Prepared`;
:mod:`workflow_scripts.association.cli` writes it for the chunk jobs.  The
only genotypes it reads are the thinned variants of the genetic principal
components.

Participants
    Those with a genotype (``has_genotype``), a stool profile and every
    configured covariate.  The others are ledger rows (``no_genotype``,
    ``missing_covariate``).

Rows of the models (``repeated_samples``)
    ``all`` (default): every kept stool sample of those participants is a
    row, carrying its participant's genotype, status and covariates; ``first``
    / ``sum`` / ``mean``: one row per participant (their first sample; their
    pooled counts, or mean relative profile; the mean of their relative
    profiles), the shared transforms of :mod:`workflow_scripts.transforms`.

Clusters
    Every test's errors are cluster-robust (CR1).  The cluster is the
    household; a participant without one is a cluster of their own (the
    shared design's convention), so a cohort with no households at all is
    clustered by participant.  With ``all``, a participant's samples always
    share a cluster, so the within-participant correlation of repeated
    samples is covered as the within-household one is.

Abundance
    The centred log2-ratio over the whole composition of each row after the
    shared zero replacement (:func:`~workflow_scripts.transforms.clr_abundance`,
    the differential stage's transform), restricted to the species present in
    at least ``min_prevalence`` of the participants (a participant has a
    species when any of their rows has it).  For the hurdle model, the
    relative abundance of each row.

Covariates
    The configured covariates, site and disease-modifying-therapy
    indicators as the shared design codes them (status is in the engine's
    model already), plus genetic principal components.

Genetic principal components
    From at most ``pcs_max_variants`` variants taken evenly spaced along the
    file (every k-th biallelic variant), read with one seek each, filtered
    by the stage's variant QC; the relationship matrix is accumulated block
    by block (memory ``participants^2``, never variants x participants).

Chunks
    :func:`plan_chunks`: each chromosome cut into near-equal chunks of at
    most ``chunk_size`` variants, consecutive whole chromosomes with fewer
    variants merged; each chunk is one region list (VCF/BCF, read through the
    index) and one record range (the other formats).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from ..cohort import Cohort, participant_dosages
from ..design import build_design, first_samples
from ..errors import InputError, Problem
from ..ledger import Ledger
from ..settings import StageSettings
from ..transforms import clr_abundance, participant_profiles, repeated_sample_profiles, select_features
from .qc import block_qc

STAGE = "association"
#: Fewest participants for which the stage runs (both models need residual df).
MIN_PARTICIPANTS = 10
#: Variants read at once while reading the thinned variants of the genetic PCs.
PC_BLOCK = 2000


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
    imputation_quality_min: float
    min_carriers: int
    chunk_size: int
    min_prevalence: float
    repeated_samples: str
    pseudo_count: float
    genetic_pcs: int
    pcs_min_variants: int
    pcs_max_variants: int
    hurdle: bool
    presence_range: list[float]
    hurdle_min_carriers: int
    fdr: float
    max_table_tests: int
    table_p_max: float
    genome_wide_p: float
    clump_window: int
    heatmap_pairs: int
    report_top: int
    covariates: list[str]

    def qc(self) -> dict:
        """The keyword arguments of :func:`~workflow_scripts.association.qc.block_qc`."""
        return {"maf_min": self.maf_min, "call_rate_min": self.call_rate_min, "hwe_p_min": self.hwe_p_min,
                "min_carriers": self.min_carriers, "quality_min": self.imputation_quality_min}


@dataclass
class Prepared:
    """Everything the chunk jobs share, and what the stage reports about it.

    Attributes
    ----------
    participants : DataFrame
        index participant_id: ``status`` (1 = case), ``cluster``,
        ``genotype_columns`` (their columns of the genotype file, ``;``-joined).
    rows : DataFrame
        index row_id (stool sample id with ``repeated_samples: all``, else
        participant id): ``participant_id``, ``status``, ``cluster``, then
        the covariate columns (numeric, genetic PCs included) in
        ``covariate_columns``.
    abundance : DataFrame
        rows x tested species, CLR (log2).
    relative : DataFrame
        rows x tested species, relative abundance (the hurdle model's).
    chunks : DataFrame
        :func:`plan_chunks`.
    labelled : DataFrame
        The annotated variants with a label (``variant_id``, ``label``,
        ``gene_or_locus``, ``chunk``).
    ledger : DataFrame
        Ledger rows (:mod:`workflow_scripts.ledger`) of participants, samples
        and species; the variants' come from the chunk jobs.
    summary : dict
        Counts, settings, clusters, PCs and the reason when nothing can be tested.
    """

    participants: pd.DataFrame
    rows: pd.DataFrame
    abundance: pd.DataFrame
    relative: pd.DataFrame
    chunks: pd.DataFrame
    labelled: pd.DataFrame
    ledger: pd.DataFrame
    summary: dict
    covariate_columns: list[str] = field(default_factory=list)

    @property
    def n_chunks(self) -> int:
        return int(self.summary["n_chunks"])


#: Columns of the chunk plan.
CHUNK_COLUMNS = ["chunk", "chrom", "regions", "first_index", "stop_index", "n_variants"]


def plan_chunks(variants: pd.DataFrame, chunk_size: int, region_reads: bool = True) -> pd.DataFrame:
    """The scatter units: chunks of at most ``chunk_size`` consecutive variants.

    Parameters
    ----------
    variants : DataFrame
        The cohort's biallelic variants in file order: ``index`` (record
        number), ``chrom``, ``pos``.
    chunk_size : int
    region_reads : bool
        True (VCF/BCF) when jobs read regions: then variants at one position
        never fall in two chunks (a region read returns every record at its
        positions), so a chunk may exceed ``chunk_size`` by the records
        sharing its last position.

    Returns
    -------
    DataFrame
        :data:`CHUNK_COLUMNS`: ``chrom`` (the first chromosome),
        ``regions`` (``;``-joined htslib regions, 1-based inclusive: ``6:1-
        32413051`` for part of a chromosome, ``7`` for a whole one),
        ``first_index``/``stop_index`` (the record range, multi-allelic
        records inside it included: readers skip them), ``n_variants``.

    Notes
    -----
    Each chromosome with ``n`` variants is cut into ``ceil(n / chunk_size)``
    near-equal parts; then consecutive parts that are whole chromosomes are
    merged while their total stays within ``chunk_size`` (a candidate panel
    over 20 chromosomes is one or two jobs, not twenty).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chrom = variants["chrom"].astype(str).to_numpy()
    pos = variants["pos"].to_numpy(np.int64)
    index = variants["index"].to_numpy(np.int64)
    n = chrom.size
    bounds = np.r_[0, np.flatnonzero(chrom[1:] != chrom[:-1]) + 1, n]
    parts = []                       # (first row, stop row, whole chromosome?)
    for a, b in zip(bounds[:-1], bounds[1:]):
        k = -(-(b - a) // chunk_size)
        cuts = [a + (i * (b - a)) // k for i in range(k)] + [b]
        if region_reads:             # never split a position between two regions
            for i in range(1, len(cuts) - 1):
                while cuts[i] < b and cuts[i] > cuts[i - 1] and pos[cuts[i]] == pos[cuts[i] - 1]:
                    cuts[i] += 1
            cuts = sorted(set(cuts))
        parts += [(c0, c1, k == 1) for c0, c1 in zip(cuts[:-1], cuts[1:]) if c1 > c0]
    merged: list[list] = []
    for a, b, whole in parts:
        last = merged[-1] if merged else None
        if last is not None and whole and last[2] and last[1] == a and b - last[0] <= chunk_size:
            last[1] = b
        else:
            merged.append([a, b, whole])
    rows = []
    for i, (a, b, _) in enumerate(merged):
        regions = []
        for c0, c1 in _chromosome_runs(chrom, a, b):
            k = np.searchsorted(bounds, c0, side="right")
            first, last = c0 == bounds[k - 1], c1 == bounds[k]    # the run starts / ends its chromosome
            if first and last:
                regions.append(chrom[c0])
            else:
                start = 1 if first else int(pos[c0 - 1]) + 1
                regions.append(f"{chrom[c0]}:{start}-" + ("" if last else str(int(pos[c1 - 1]))))
        stop = int(index[b]) if b < n else int(index[-1]) + 1
        rows.append([i, chrom[a], ";".join(regions), int(index[a]), stop, b - a])
    return pd.DataFrame(rows, columns=CHUNK_COLUMNS)


def _chromosome_runs(chrom: np.ndarray, a: int, b: int) -> list[tuple[int, int]]:
    """(start, stop) of the runs of one chromosome within rows ``a:b``."""
    change = list(np.flatnonzero(chrom[a + 1:b] != chrom[a:b - 1]) + a + 1)
    return list(zip([a, *change], [*change, b]))


def parse_region(text: str) -> tuple[str, int | None, int | None]:
    """``chrom``, ``chrom:start-`` or ``chrom:start-end`` (as :func:`plan_chunks` writes them)."""
    if ":" not in text:
        return text, None, None
    name, span = text.rsplit(":", 1)
    start, _, end = span.partition("-")
    return name, int(start), int(end) if end else None


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


def model_rows(cohort: Cohort, keep: list[str], policy: str, ledger: Ledger):
    """The rows of the models and their abundance profiles under ``repeated_samples`` = ``policy``.

    Returns
    -------
    rows : Series
        row_id -> participant_id, in row order.
    profiles : DataFrame
        rows x taxa, counts or relative abundances.
    kind : str
        ``counts`` or ``relative`` (of ``profiles``).
    by_participant : DataFrame
        participants x taxa with the participant's samples pooled: what the
        prevalence filter counts.
    """
    samples = cohort.samples[cohort.samples["participant_id"].isin(keep)]
    table = cohort.table("taxa").loc[samples.index]
    kind = cohort.info["abundance_kind"]
    pooled = participant_profiles(table, samples, "sum").reindex(keep)
    if policy == "all":
        order = pd.Series(np.arange(len(keep)), index=keep)
        ranked = samples.assign(_p=samples["participant_id"].map(order).to_numpy(), _s=samples.index)
        ranked = ranked.sort_values(["_p", "_s"], kind="stable")
        rows = ranked["participant_id"].rename_axis("row_id")
        return rows, table.loc[rows.index], kind, pooled
    if policy == "first":
        first = first_samples(samples)
        unused = samples.index[~samples.index.isin(first.to_numpy())]
        ledger.dropped("stool_sample", unused, reason="repeat_sample_not_used",
                       detail=f"{STAGE}: one profile per participant, their first stool sample")
    if policy == "mean":
        profiles, kind = participant_profiles(table, samples, "mean").reindex(keep), "relative"
    else:
        profiles = repeated_sample_profiles(table, samples, policy, kind).reindex(keep)
    rows = pd.Series(keep, index=pd.Index(keep, name="row_id"), name="participant_id")
    return rows, profiles, kind, pooled


def pc_sites(variants: pd.DataFrame, max_variants: int) -> pd.DataFrame:
    """Every k-th biallelic variant, k = ceil(variants / max_variants): the thinned set for genetic PCs."""
    step = max(1, math.ceil(len(variants) / max(max_variants, 1)))
    return variants.iloc[::step]


def genetic_pcs_from_source(genotypes, sites: pd.DataFrame, participants: pd.DataFrame, s: AssociationSettings,
                            k: int) -> tuple[np.ndarray | None, int]:
    """Top ``k`` genetic PCs of the participants from the QC-passing ``sites`` (EIGENSTRAT), streamed.

    Returns the (participants x k) eigenvectors (None when fewer than
    ``pcs_min_variants`` sites pass QC) and the number of sites used.

    Notes
    -----
    ``x_vi = (g_vi - 2 p_v) / sqrt(2 p_v (1 - p_v))`` over the passing
    variants, missing entries 0, ``XX'`` summed block by block; the
    eigenvectors of ``XX'`` with the largest eigenvalues, each signed so
    its largest-magnitude entry is positive, as
    :func:`workflow_scripts.models.association.genetic_pcs`.

    References
    ----------
    .. [1] Price AL et al. (2006). Principal components analysis corrects for
       stratification in genome-wide association studies. Nature Genetics
       38:904-909.
    """
    columns = genotypes.columns_of(participants.index)
    status = participants["status"].to_numpy()
    n = len(participants)
    grm = np.zeros((n, n))
    used = 0
    with genotypes.open() as source:
        for start in range(0, len(sites), PC_BLOCK):
            variants, dosages = source.read_sites(sites.iloc[start:start + PC_BLOCK])
            if not len(variants):
                continue
            G = participant_dosages(dosages, columns)
            passing = block_qc(G, variants, status, **s.qc())["keep"].to_numpy()
            block = G[passing]
            used += int(passing.sum())
            with np.errstate(invalid="ignore", divide="ignore"):
                p = np.nansum(block, axis=1) / (2.0 * (~np.isnan(block)).sum(axis=1))
                x = (block - 2.0 * p[:, None]) / np.sqrt(2.0 * p * (1.0 - p))[:, None]
            x = np.where(np.isfinite(x), x, 0.0)
            grm += x.T @ x
    if used < max(s.pcs_min_variants, 1):
        return None, used
    _, eigvec = np.linalg.eigh(grm)
    top = eigvec[:, ::-1][:, :k]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(k)])
    return top * signs, used


def _skip(summary: dict, reason: str) -> dict:
    summary.update(status="nothing_tested", reason=reason, n_chunks=0)
    return summary


def prepare(cohort: Cohort, s: AssociationSettings) -> Prepared:
    """Rows, abundance, covariates, genetic PCs and chunks for the association stage.

    Parameters
    ----------
    cohort : Cohort
        The harmonised cohort, with its genotype source and variant table.
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
                     "rank": cohort.info.get("rank"), "genotype_format": cohort.genotypes.format,
                     "dosage_field": cohort.genotypes.source.get("dosage_field")}

    design = build_design(part, list(s.covariates), cohort.case_label, stage=STAGE, samples=cohort.samples)
    genotyped = part["has_genotype"].astype(bool)
    ledger = Ledger()
    _participant_rows(cohort, design.excluded, genotyped, ledger)
    keep = [pid for pid in design.frame.index if genotyped[pid]]
    frame = design.frame.loc[keep]
    fixed = design.matrix(site=True, dmt=True, intercept=True)
    covariates = fixed.drop(columns=[c for c in ("intercept", "status") if c in fixed.columns]).loc[keep]
    has_household = part.loc[keep, "household_id"].notna() if keep else pd.Series(dtype=bool)
    clusters = frame["household"].astype(str)
    if keep and not has_household.any():
        errors = ("CR1 cluster-robust by participant (the cohort has no households); with repeated samples "
                  "a participant's samples share their cluster")
    else:
        errors = ("CR1 cluster-robust by household (participants without a household are their own "
                  "cluster; a participant's repeated samples share their household's cluster)")
    summary["errors"] = errors

    # The model rows and their abundance.
    rows, profiles, kind, pooled = model_rows(cohort, keep, s.repeated_samples, ledger)
    clr = clr_abundance(profiles, kind, pseudo_count=s.pseudo_count)
    features, feature_rows = select_features(pooled, s.min_prevalence, STAGE)
    features = pd.Index(sorted(features), name="feature")
    abundance = clr[features]
    totals = profiles.sum(axis=1).replace(0, np.nan)
    relative = profiles[features].div(totals, axis=0).fillna(0.0)

    participants = pd.DataFrame({"status": frame["status"].astype(int), "cluster": clusters},
                                index=pd.Index(keep, name="participant_id"))
    columns = cohort.genotypes.columns_of(keep)
    participants["genotype_columns"] = [";".join(str(int(c)) for c in cols) for cols in columns]

    # Variants: the chunk plan and the labelled ones.
    variants = cohort.variants
    chunks = plan_chunks(variants, s.chunk_size, cohort.genotypes.region_reads)
    chunk_of = np.repeat(chunks["chunk"].to_numpy(), chunks["n_variants"].to_numpy())
    labels = variants["label"].fillna("").astype(str) if "label" in variants else pd.Series("", index=variants.index)
    labelled = variants.loc[labels.ne("").to_numpy(), ["variant_id", "label", "gene_or_locus"]].assign(
        chunk=chunk_of[labels.ne("").to_numpy()])

    # Genetic principal components from a thinned subset, when enough of it passes QC.
    pcs = {"requested": int(s.genetic_pcs), "used": 0, "reason": "", "n_variants": 0}
    k = int(s.genetic_pcs)
    if k > 0 and len(keep) >= MIN_PARTICIPANTS:
        sites = pc_sites(variants, s.pcs_max_variants)
        if k >= len(keep) - 3:
            pcs["reason"] = f"{len(keep)} participants are too few for {k} genetic PCs"
        elif len(sites) < max(s.pcs_min_variants, 1):
            pcs["reason"] = (f"{len(variants)} variants in the file < pcs_min_variants ({s.pcs_min_variants}); "
                             "no genetic PCs")
        else:
            vectors, used = genetic_pcs_from_source(cohort.genotypes, sites, participants, s, k)
            pcs["n_variants"] = used
            if vectors is None:
                pcs["reason"] = (f"{used} of the {len(sites)} thinned variants pass QC < pcs_min_variants "
                                 f"({s.pcs_min_variants}); no genetic PCs")
            else:
                for j in range(k):
                    covariates[f"PC{j + 1}"] = vectors[:, j]
                pcs["used"] = k
                pcs["reason"] = (f"from {used} QC-passing variants of {len(sites)} taken evenly spaced "
                                 f"(every {max(1, math.ceil(len(variants) / s.pcs_max_variants))}th) along "
                                 f"the {len(variants)}")

    row_participant = rows.to_numpy()
    table_rows = pd.DataFrame({"participant_id": row_participant,
                               "status": participants["status"].reindex(row_participant).to_numpy(),
                               "cluster": participants["cluster"].reindex(row_participant).to_numpy()},
                              index=rows.index)
    table_rows = pd.concat([table_rows, covariates.astype(float).reindex(row_participant).set_axis(rows.index)],
                           axis=1)

    n_cases = int(frame["status"].sum())
    summary.update({
        "n_participants": len(keep),
        "n_cases": n_cases,
        "n_controls": len(keep) - n_cases,
        "n_rows": int(len(rows)),
        "n_households": int(part.loc[keep, "household_id"].dropna().nunique()),
        "n_clusters": int(clusters.nunique()),
        "n_paired_households": int(frame.groupby("household")["status"].nunique().eq(2).sum()),
        "n_participants_excluded": int(sum(r[0] == "participant" for r in ledger.rows)),
        "n_features": len(features),
        "n_features_filtered": len(feature_rows),
        "n_variants": int(len(variants)),
        "n_chunks": int(len(chunks)),
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
    elif not len(features):
        summary = _skip(summary, f"no species passes the prevalence filter ({s.min_prevalence:g})")
    elif not len(variants):
        summary = _skip(summary, "the genotype file has no biallelic variant")
    if summary["status"] != "ok":
        chunks = chunks.iloc[:0]
    ledger.extend(feature_rows)
    return Prepared(participants=participants, rows=table_rows, abundance=abundance.set_axis(rows.index),
                    relative=relative.set_axis(rows.index), chunks=chunks, labelled=labelled.reset_index(drop=True),
                    ledger=ledger.frame(), summary=summary, covariate_columns=list(covariates.columns))
