"""Simulate an iMSMS-style cohort (MS patients paired with household controls) with planted truth.

The simulation works on a latent log-abundance matrix, participants × species,

.. math::

    \\eta_{is} = b_s + \\sigma_{site(i),s} + h_{household(i),s} + e_{is}
                 + \\delta_s [i \\in MS] + \\tau_{drug(i),s} + z_i^\\top \\gamma_s
                 + \\sum_v \\beta_{vs} (g_{iv} - 2 f_v)
                 + [i \\in MS] \\sum_v \\theta_{vs} (g_{iv} - 2 f^{MS}_v)
                 + [i \\in MS] \\kappa_s u_i,

where :math:`u_i` is the latent disease severity of patient :math:`i` (see
:func:`_clinical`: it also drives EDSS, disease course and sNfL/GFAP) and
:math:`\\kappa_s` the planted severity effect of species :math:`s`;
and each stool sample adds its own noise :math:`\\epsilon_{js} \\sim N(0, 0.3^2)`
(``within_sd``; optionally an AR(1) series over a person's visits, ``time_correlation``,
and with presence redrawn per sample, ``presence_turnover``: the within-person part).
Species are present in a participant with probability equal to their prevalence
(structural zeros, partly shared within a household); the composition of a sample
is the softmax of :math:`\\eta + \\epsilon` over the present species, split over the
species' features (ASVs) by fixed weights, and read counts are multinomial.

Every random step draws from its own stream (one child of ``SeedSequence(seed)``
per step), so switching ``null`` or ``edge_cases`` changes only what those switches
are about: the null cohort has the same participants, samples, depths and noise as
the planted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import taxa

#: Names of the independent random streams, in spawn order. Append only: inserting
#: a name would change every cohort generated after it.
STREAMS = (
    "design", "species", "truth", "variants", "genotypes", "latent", "presence",
    "samples", "composition", "counts", "blood", "features", "tree", "edge", "severity", "turnover",
)

#: Classes a species can have in ``truth_species.tsv``.
CLASSES = ("high-risk", "protective", "neutral", "treatment-only")
#: Classes of ``truth_species.progression_class`` (severity within MS).
PROGRESSION_CLASSES = ("high-risk", "protective", "neutral")

#: Reason codes in ``truth_ledger.tsv``, by (entity, reason).
LEDGER_REASONS = (
    ("stool_sample", "below_min_depth"),
    ("stool_sample", "zero_reads"),
    ("stool_sample", "not_in_abundance_table"),
    ("table_column", "not_in_stool_manifest"),
    ("participant", "no_stool_sample"),
    ("blood_sample", "not_in_genotypes"),
    ("genotype_column", "not_in_blood_manifest"),
)

# Noise scales of the latent model (natural-log units), as in the brief.
SITE_SD = 0.5
HOUSEHOLD_SD = 0.5
INDIVIDUAL_SD = 0.7
SAMPLE_SD = 0.3
# Fraction of the presence draw shared by the members of a household.
PRESENCE_SHARED = 0.5
# Sequencing batch size (one 96-well plate), in collection-date order.
BATCH_SIZE = 96
# Depth of the planted below-minimum stool sample (the workflow's default minimum is 1000).
LOW_DEPTH = 500


@dataclass
class Cohort:
    """A synthetic cohort: every input of the workflow plus the planted truth.

    Attributes
    ----------
    participants, stool_manifest, blood_manifest : pandas.DataFrame
        The three sample sheets, with exactly the columns written to disk.
        Missing values are NaN.
    counts : pandas.DataFrame
        Integer read counts, features (index ``feature_id``) × abundance-table
        columns, as written (planted edge cases included).
    taxonomy : pandas.DataFrame
        ``feature_id``, ``taxonomy`` (Greengenes style, some ``s__``/``g__`` blank).
    lineage : pandas.DataFrame
        The true lineage of every species, columns ``kingdom`` ... ``species``
        with rank prefixes, index = species name (``s__Genus_epithet``).
    feature_species : pandas.Series
        True species of every feature (also of those whose taxonomy is blank).
    tree : str
        Newick tree over all feature ids.
    variant_info : pandas.DataFrame
        ``variant_id``, ``chrom``, ``pos``, ``ref``, ``alt``, ``af_hhc``,
        ``af_ms`` (planted alternate-allele frequencies), ``imputed``.
    genotypes : pandas.DataFrame
        Hard-called alternate-allele counts (0, 1, 2), variants × genotype columns.
    dosages : pandas.DataFrame
        ``DS`` values, variants × genotype columns: equal to ``genotypes`` for
        genotyped variants, an imputed expected dosage (3 decimals) otherwise.
    variants : pandas.DataFrame
        ``variant_id``, ``gene_or_locus``, ``label``.
    truth_species, truth_associations : pandas.DataFrame
        The planted effects (see :func:`generate`).
    truth_ledger : pandas.DataFrame or None
        ``entity``, ``id``, ``reason`` of every planted exclusion; None without
        ``edge_cases``.
    params : dict
        The arguments of :func:`generate`.
    notes : dict
        Planted facts that have no table: covariate effects and the valid edge
        cases (no blood sample, duplicate blood samples, ...).
    """

    participants: pd.DataFrame
    stool_manifest: pd.DataFrame
    blood_manifest: pd.DataFrame
    counts: pd.DataFrame
    taxonomy: pd.DataFrame
    lineage: pd.DataFrame
    feature_species: pd.Series
    tree: str
    variant_info: pd.DataFrame
    genotypes: pd.DataFrame
    dosages: pd.DataFrame
    variants: pd.DataFrame
    truth_species: pd.DataFrame
    truth_associations: pd.DataFrame
    truth_ledger: pd.DataFrame | None
    params: dict
    notes: dict = field(default_factory=dict)

    def species_counts(self) -> pd.DataFrame:
        """Read counts summed to true species, species × abundance-table columns."""
        return self.counts.groupby(self.feature_species.to_numpy()).sum()


# --------------------------------------------------------------------------- helpers


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """``prefix`` + zero-padded numbers, e.g. ``P0007``."""
    return np.char.add(prefix, np.char.zfill(np.asarray(numbers).astype(str), width))


def _width(n: int) -> int:
    return max(4, len(str(n)))


def _take(pool: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` random distinct items of ``pool`` (fewer if the pool is smaller)."""
    k = min(k, len(pool))
    return rng.choice(pool, size=k, replace=False) if k else pool[:0]


# --------------------------------------------------------------------------- design


@dataclass(frozen=True)
class _Design:
    """Participants as arrays (for the model) and as the participants table."""

    table: pd.DataFrame
    household: np.ndarray  # int; unpaired participants get their own index >= n_households
    n_households_total: int
    site: np.ndarray
    is_ms: np.ndarray
    male: np.ndarray
    age: np.ndarray
    bmi: np.ndarray
    drug: np.ndarray  # 0 = none/untreated, k = taxa.DRUGS[k - 1]
    edss: np.ndarray  # NaN for HHC
    course: np.ndarray  # 0 RRMS, 1 SPMS, 2 PPMS, -1 for HHC
    edss_noise: np.ndarray  # N(0, 1) per participant (0 for HHC), the EDSS noise of _clinical
    severity: np.ndarray  # latent severity u (0 for HHC), set by _clinical


def _site_names(n_sites: int) -> np.ndarray:
    extra = [f"site{i:02d}" for i in range(len(taxa.SITES) + 1, n_sites + 1)]
    return np.array((list(taxa.SITES) + extra)[:n_sites])


def _design(n_households: int, n_unpaired: int, n_sites: int, rng: np.random.Generator) -> _Design:
    """Draw participants: households of one MS patient and one HHC, then unpaired people.

    Household controls are mostly spouses (80 %): opposite sex, similar age,
    so HHCs are mostly male while MS patients are ~70 % female, as in iMSMS.
    """
    H, U = n_households, n_unpaired
    N = 2 * H + U
    # Which member of a household is listed first is random, so ID order says nothing.
    hhc_first = rng.random(H) < 0.5
    ms_pos = 2 * np.arange(H) + hhc_first
    hhc_pos = 2 * np.arange(H) + ~hhc_first
    unpaired = 2 * H + np.arange(U)
    is_ms = np.zeros(N, bool)
    is_ms[ms_pos] = True
    is_ms[unpaired] = np.arange(U) % 2 == 0
    unpaired_hhc = unpaired[~is_ms[unpaired]]

    household = np.concatenate([np.repeat(np.arange(H), 2), H + np.arange(U)])
    site = np.concatenate([np.repeat(rng.permutation(np.arange(H) % n_sites), 2), rng.integers(n_sites, size=U)])

    n_ms = int(is_ms.sum())
    female = np.zeros(N, bool)
    female[is_ms] = rng.random(n_ms) < 0.7
    spouse = rng.random(H) < 0.8
    female[hhc_pos] = np.where(spouse, ~female[ms_pos], rng.random(H) < 0.5)
    female[unpaired_hhc] = rng.random(len(unpaired_hhc)) < 0.5

    age = np.empty(N)
    age[is_ms] = rng.normal(45, 11, n_ms)
    age[hhc_pos] = np.where(spouse, age[ms_pos] + rng.normal(0, 5, H), rng.normal(42, 14, H))
    age[unpaired_hhc] = rng.normal(42, 14, len(unpaired_hhc))
    age = np.clip(np.round(age), 18, 85)
    bmi = np.round(np.exp(rng.normal(np.log(25.5), 0.17, N)), 1)

    # Disease course and DMT; EDSS comes later from the latent severity (_clinical).
    course = rng.choice(3, size=n_ms, p=[0.76, 0.12, 0.12])
    edss_noise = np.zeros(N)
    edss_noise[is_ms] = rng.normal(size=n_ms)
    drug_ms = np.where(rng.random(n_ms) < 0.35, 0, rng.integers(1, len(taxa.DRUGS) + 1, n_ms))
    edss = np.full(N, np.nan)
    course_all = np.full(N, -1)
    course_all[is_ms] = course
    drug = np.zeros(N, int)
    drug[is_ms] = drug_ms

    w = _width(N)
    course_col = np.full(N, None, object)
    course_col[is_ms] = np.array(["RRMS", "SPMS", "PPMS"])[course]
    dmt_col = np.full(N, None, object)
    dmt_col[is_ms] = np.array(("untreated",) + taxa.DRUGS)[drug_ms]
    hh_col = np.full(N, None, object)
    hh_col[: 2 * H] = _ids("H", household[: 2 * H] + 1, _width(H))
    table = pd.DataFrame({
        "participant_id": _ids("P", np.arange(1, N + 1), w),
        "household_id": hh_col,
        "site": _site_names(n_sites)[site],
        "status": np.where(is_ms, "MS", "HHC"),
        "sex": np.where(female, "F", "M"),
        "age": age.astype(int),
        "bmi": bmi,
        "disease_course": course_col,
        "dmt": dmt_col,
        "edss": edss,
    })
    return _Design(table, household, H + U, site, is_ms, ~female, age, bmi, drug, edss, course_all, edss_noise,
                   np.zeros(N))


# Latent severity and the clinical scores that follow it.
#: Shift of the latent severity in progressive MS (SD units), centred on the expected share 0.24.
PROGRESSIVE_SEVERITY = 0.8
PROGRESSIVE_SHARE = 0.24
#: Mean disease duration in years (gamma, shape 2) by course: RRMS, SPMS, PPMS.
DURATION_MEAN = (9.0, 20.0, 9.0)
#: EDSS = 1 + 0.12 duration + 1.5 progressive + 1.0 u + 0.6 noise, in 0.5 steps within 0-9.5.
EDSS_COEF = dict(intercept=1.0, duration=0.12, progressive=1.5, severity=1.0, noise=0.6)


def _clinical(design: _Design, rng: np.random.Generator) -> _Design:
    """Latent severity, disease duration, age at onset and EDSS of every MS patient.

    The latent severity is :math:`u = z + 0.8 (progressive - 0.24)`, :math:`z
    \\sim N(0, 1)`, so progressive patients are more severe and :math:`u` has
    mean about 0 among patients. Disease duration is gamma (shape 2) with mean
    9 years (RRMS, PPMS) or 20 years (SPMS), kept so that onset falls between
    ages 12 and 60 (one decimal); ``age_at_onset = age - disease_duration``. EDSS grows with
    duration, course and severity (:data:`EDSS_COEF`), rounded to the 0.5 steps
    of the scale (0.5, not a step of the scale, becomes 1.0). HHC have none of
    these (empty). Draws come from the ``severity`` stream only.
    """
    ms = design.is_ms
    n_ms = int(ms.sum())
    course = design.course[ms]
    progressive = (course > 0).astype(float)
    u = rng.normal(size=n_ms) + PROGRESSIVE_SEVERITY * (progressive - PROGRESSIVE_SHARE)
    mean = np.array(DURATION_MEAN)[course]
    age = design.age[ms]
    duration = np.round(np.clip(rng.gamma(2.0, mean / 2.0), np.maximum(age - 60.0, 0.1), age - 12.0), 1)
    c = EDSS_COEF
    edss = (c["intercept"] + c["duration"] * duration + c["progressive"] * progressive + c["severity"] * u
            + c["noise"] * design.edss_noise[ms])
    edss = np.clip(np.round(2 * edss) / 2, 0, 9.5)
    edss[edss == 0.5] = 1.0
    N = len(ms)
    full = {name: np.full(N, np.nan) for name in ("edss", "disease_duration", "age_at_onset")}
    full["edss"][ms] = edss
    full["disease_duration"][ms] = duration
    full["age_at_onset"][ms] = np.round(age - duration, 1)
    severity = np.zeros(N)
    severity[ms] = u
    table = design.table.copy()
    for name, values in full.items():
        table[name] = values
    return replace(design, table=table, edss=full["edss"], severity=severity)


# --------------------------------------------------------------------------- species


def _species_names(n_species: int, rng: np.random.Generator) -> np.ndarray:
    """Anchor species first, then distinct draws from the weighted genus × epithet grid."""
    anchors = np.array(taxa.ANCHORS[:n_species])
    genera = np.array(list(taxa.GENERA))
    weight = np.array([v[-1] for v in taxa.GENERA.values()])
    epithets = np.array(taxa.EPITHETS)
    need = n_species - len(anchors)
    # Enough grid rounds for any n_species; later rounds get a numeric suffix
    # (``hominis2``) and a tiny weight, so they appear only when the names run out.
    rounds = 1 + need // (len(genera) * len(epithets))
    g = np.repeat(np.arange(len(genera)), len(epithets) * rounds)
    r = np.tile(np.repeat(np.arange(rounds), len(epithets)), len(genera))
    e = np.tile(epithets, len(genera) * rounds)
    suffix = np.where(r == 0, "", (r + 1).astype(str))
    grid = np.char.add(np.char.add(np.char.add(genera[g], "_"), e), suffix)
    p = weight[g] * np.where(r == 0, 1.0, 1e-6) * ~np.isin(grid, anchors)
    picked = grid[rng.choice(len(grid), size=need, replace=False, p=p / p.sum())] if need else grid[:0]
    return np.concatenate([anchors, picked])


def _lineage(names: np.ndarray) -> pd.DataFrame:
    """Prefixed lineage (``k__`` ... ``s__``) of every species name ``Genus_epithet``."""
    genus = np.array([n.split("_", 1)[0] for n in names])
    upper = np.array([taxa.GENERA[x][:5] for x in genus])
    cols = np.column_stack([upper, genus, names])
    lineage = pd.DataFrame(
        np.char.add(np.array(taxa.PREFIXES), cols), columns=list(taxa.RANKS)
    )
    return lineage.set_index(lineage["species"].rename(None))


def _species_parameters(names: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Baseline log-abundance and prevalence (0.3-1, higher for abundant species).

    The baseline is Zipf-like (rank r gets -1.2 log r, plus N(0, 0.5) noise): a few
    species dominate (the top one ~20 %, the top five ~50 % of a gut) whatever the
    number of species, and the long tail is rare.
    """
    S = len(names)
    baseline = -1.2 * np.log(rng.permutation(S) + 1.0) + rng.normal(0, 0.5, S)
    ranks = np.argsort(np.argsort(baseline + rng.normal(0, 1.5, S)))
    prevalence = 0.3 + 0.7 * (ranks + 0.5) / S
    # Anchors are common, sizeable species in real guts (prevalence 0.85-0.97);
    # F. prausnitzii is among the dominant ones.
    anchor = np.isin(names, taxa.ANCHORS)
    baseline[anchor] = np.maximum(baseline[anchor], np.quantile(baseline, 0.7))
    prevalence[anchor] = np.maximum(prevalence[anchor], rng.uniform(0.85, 0.97, anchor.sum()))
    fp = names == "Faecalibacterium_prausnitzii"
    baseline[fp] = np.maximum(baseline[fp], np.quantile(baseline, 0.9))
    return baseline, prevalence


# --------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class _Plan:
    """Planted species effects, as arrays over species (before ``null`` is applied)."""

    cls: np.ndarray  # class names
    lfc: np.ndarray
    drug: np.ndarray  # 0 = none, else index into taxa.DRUGS + 1
    dmt_lfc: np.ndarray
    cov_beta: np.ndarray  # (3, S): per decade of age, male vs female, per 5 kg/m2 of BMI
    eligible: np.ndarray


def _pick_with_anchors(names, preferred, pool_mask, k, rng):
    """The first ``k`` preferred names present, topped up at random from ``pool_mask``."""
    chosen = np.flatnonzero(np.isin(names, preferred))
    chosen = chosen[np.argsort([preferred.index(n) for n in names[chosen]])][:k]
    pool = np.flatnonzero(pool_mask & ~np.isin(np.arange(len(names)), chosen))
    return np.concatenate([chosen, _take(pool, k - len(chosen), rng)]).astype(int)


def _plan_species(names, baseline, prevalence, effect_size, disease_fraction, rng) -> _Plan:
    """Choose high-risk, protective, treatment-only and covariate-affected species.

    Disease species are drawn among species with prevalence >= 0.5 in the more
    abundant half (but not the three dominant ones), so that they are detectable;
    anchors come first.
    """
    S = len(names)
    # Not the three most abundant: a dominant species that moves dilutes every other
    # species, which would blur the "neutral" truth for compositional methods.
    dominant = np.argsort(np.argsort(-baseline)) < 3
    eligible = (prevalence >= 0.5) & (baseline >= np.median(baseline)) & ~dominant
    k = max(1, int(round(disease_fraction * S)))
    high = _pick_with_anchors(names, taxa.HIGH_RISK_ANCHORS, eligible, k, rng)
    taken = np.zeros(S, bool)
    taken[high] = True
    protective = _pick_with_anchors(names, taxa.PROTECTIVE_ANCHORS, eligible & ~taken, k, rng)
    taken[protective] = True
    # Named genotype targets stay neutral, so keep them out of the draws below.
    reserved = np.isin(names, taxa.NEUTRAL_ANCHORS)
    n_trt = min(2 * len(taxa.DRUGS), max(2, int(round(0.05 * S))))
    treatment = _take(np.flatnonzero(eligible & ~taken & ~reserved), n_trt, rng)
    taken[treatment] = True

    cls = np.full(S, "neutral", dtype=object)
    cls[high], cls[protective], cls[treatment] = "high-risk", "protective", "treatment-only"
    lfc = np.zeros(S)
    lfc[high], lfc[protective] = effect_size, -effect_size
    drug = np.zeros(S, int)
    drug[treatment] = rng.permutation(len(taxa.DRUGS))[np.arange(len(treatment)) % len(taxa.DRUGS)] + 1
    dmt_lfc = np.zeros(S)
    dmt_lfc[treatment] = 1.5 * effect_size * rng.choice([-1.0, 1.0], len(treatment))

    # Small covariate effects on a few neutral species (kept in the null cohort too).
    per_cov = 1 if S < 40 else 2
    cov_species = _take(np.flatnonzero(~taken & ~reserved & eligible), 3 * per_cov, rng)
    cov_beta = np.zeros((3, S))
    scale = np.array([0.2, 0.4, 0.3])
    for j in range(3):  # three covariates: not worth vectorising
        idx = cov_species[j * per_cov:(j + 1) * per_cov]
        cov_beta[j, idx] = scale[j] * rng.choice([-1.0, 1.0], len(idx))
    return _Plan(cls, lfc, drug, dmt_lfc, cov_beta, eligible)


def _variants(n_variants: int, null: bool, rng: np.random.Generator) -> pd.DataFrame:
    """Variant table: named loci (HLA tag, LCT, FUT2) plus random SNPs, sorted by position."""
    named = taxa.NAMED_VARIANTS[:n_variants]
    n_rand = n_variants - len(named)
    chroms = np.array(list(taxa.CHROM_LENGTHS))
    lengths = np.array(list(taxa.CHROM_LENGTHS.values()))
    chrom = rng.choice(len(chroms), size=n_rand, p=lengths / lengths.sum())
    pos = (1_000_000 + rng.random(n_rand) * (lengths[chrom] - 2_000_000)).astype(int)
    named_numbers = [int(v[0][2:]) for v in named]
    # Distinct rs numbers: draw with replacement, keep first occurrences in draw order.
    draws = rng.integers(10_000, 99_000_000, size=2 * n_rand + 10)
    _, first = np.unique(draws, return_index=True)
    numbers = draws[np.sort(first)]
    numbers = numbers[~np.isin(numbers, named_numbers)][:n_rand]
    bases = np.array(list("ACGT"))
    ref = rng.integers(4, size=n_variants)
    alt = (ref + rng.integers(1, 4, size=n_variants)) % 4
    af = rng.uniform(0.05, 0.5, n_rand)
    imputed = rng.random(n_rand) < 0.25

    ids = np.concatenate([[v[0] for v in named], np.char.add("rs", numbers.astype(str))])
    chrom_col = np.concatenate([[v[1] for v in named], chroms[chrom]])
    pos_col = np.concatenate([[v[2] for v in named], pos]).astype(int)
    named_af = {taxa.HLA_TAG: 0.12, "rs4988235": 0.45, "rs601338": 0.45}
    af_hhc = np.concatenate([[named_af[v[0]] for v in named], af])
    af_ms = af_hhc.copy()
    # The HLA-DRB1*15:01 tag is enriched in MS (about 0.25 vs 0.12), unless null.
    af_ms[ids == taxa.HLA_TAG] = 0.12 if null else 0.25
    position = np.char.add(np.char.add("chr", chroms[chrom]), np.char.add(":", pos.astype(str)))
    locus = np.concatenate([[v[3] for v in named], position])  # unnamed SNPs: chrN:pos
    label = np.concatenate([[v[4] for v in named], np.full(n_rand, None, object)])
    table = pd.DataFrame({
        "variant_id": ids, "chrom": chrom_col, "pos": pos_col, "ref": bases[ref], "alt": bases[alt],
        "af_hhc": af_hhc, "af_ms": af_ms, "imputed": np.concatenate([np.zeros(len(named), bool), imputed]),
        "gene_or_locus": locus, "label": label,
    })
    order = np.lexsort((table["pos"].to_numpy(), table["chrom"].astype(int).to_numpy()))
    return table.iloc[order].reset_index(drop=True)


#: Random genotype effects use variants with at least this allele frequency.
POWERED_AF = 0.25
#: Planted genotype effects (natural log per alt allele); interactions act in MS only.
MAIN_BETA = 0.8
INTERACTION_BETA = 1.0


def _powered(pool: np.ndarray, score: np.ndarray, threshold: float, k: int, rng) -> np.ndarray:
    """``k`` random items of ``pool`` with ``score >= threshold``; the highest-scoring when too few."""
    good = pool[score[pool] >= threshold]
    if len(good) < k:
        good = pool[np.argsort(-score[pool], kind="stable")[:k]]
    return _take(good, k, rng)


def _plan_associations(names, plan, variant_info, n_main, n_interaction, rng) -> pd.DataFrame:
    """Variant × species pairs: main effects (beta ±0.8) and genotype × MS interactions (±1.0).

    Named pairs first: LCT (rs4988235) lowers *Bifidobacterium longum*, FUT2
    (rs601338) raises *Bacteroides vulgatus*, and the HLA-DRB1*15:01 tag raises
    the first high-risk species (*Akkermansia muciniphila*) further in MS carriers.
    The other pairs join a common variant (frequency >= ``POWERED_AF``) to a
    neutral species of the detectable pool (``plan.eligible``). Each variant and
    each species is used at most once. :func:`generate` makes every target
    species present in every gut: structural zeros dominate the variance of a CLR
    with a pseudo-count (a 5 % zero rate about doubles the standard error), so
    genotype effects on zero-heavy species are not what a 300-household cohort
    can find.
    """
    vids = variant_info["variant_id"].to_numpy()
    af = variant_info["af_hhc"].to_numpy()
    free_v = np.ones(len(vids), bool)
    free_s = (plan.cls == "neutral") & (plan.cov_beta == 0).all(0)
    rows = []

    def add(v, s, effect, beta):
        free_v[v] = False
        free_s[s] = False
        rows.append((vids[v], s, effect, beta))

    named = [("rs4988235", "Bifidobacterium_longum", -MAIN_BETA), ("rs601338", "Bacteroides_vulgatus", MAIN_BETA)]
    for rsid, species, beta in named[:n_main]:  # at most two named pairs
        if rsid in vids and species in names:
            add(np.flatnonzero(vids == rsid)[0], np.flatnonzero(names == species)[0], "main", beta)
    high = np.flatnonzero(plan.cls == "high-risk")
    if n_interaction and taxa.HLA_TAG in vids and len(high):
        add(np.flatnonzero(vids == taxa.HLA_TAG)[0], high[0], "interaction", INTERACTION_BETA)
    free_v[vids == taxa.HLA_TAG] = False  # its frequency differs by status: no main effect
    n_left = {"main": n_main - sum(r[2] == "main" for r in rows),
              "interaction": n_interaction - sum(r[2] == "interaction" for r in rows)}
    for effect, size in (("main", MAIN_BETA), ("interaction", INTERACTION_BETA)):
        k = min(n_left[effect], free_v.sum(), free_s.sum())
        v = _powered(np.flatnonzero(free_v), af, POWERED_AF, k, rng)
        pool = free_s & plan.eligible if (free_s & plan.eligible).sum() >= k else free_s
        s = _take(np.flatnonzero(pool), k, rng)
        for vi, si, sign in zip(v, s, rng.choice([-1.0, 1.0], k)):
            add(vi, si, effect, sign * size)
    return pd.DataFrame(rows, columns=["variant_id", "species_index", "effect", "beta"])


def _plan_severity(plan, assoc, baseline, prevalence, names, effect, fraction, rng) -> np.ndarray:
    """Severity effect of every species (natural log per unit of latent severity, in MS only).

    ``fraction`` of the species (at least one) rise with severity (+``effect``),
    as many fall (-``effect``). They are drawn among species with no other
    planted role (MS risk, therapy, covariate, genotype) and not an anchor
    species (whose published role is MS risk or a genotype), present in at least half of the guts, preferably from the more
    abundant half and never the three dominant species: the progression truth
    stays apart from the MS-risk truth. :func:`generate` makes them present in
    every gut, as the genotype targets: with presence untouched by severity, a
    10 % share of structural zeros already outweighs the planted shift in the
    CLR variance (see :func:`_plan_associations`).
    """
    S = len(names)
    free = (plan.cls == "neutral") & (plan.cov_beta == 0).all(0) & ~np.isin(names, taxa.ANCHORS)
    free[assoc["species_index"].to_numpy()] = False
    dominant = np.argsort(np.argsort(-baseline)) < 3
    pool = np.flatnonzero(free & (prevalence >= 0.5) & ~dominant)
    k = max(1, int(round(fraction * S)))
    chosen = _powered(pool, baseline, np.median(baseline), 2 * k, rng)
    kappa = np.zeros(S)
    kappa[chosen[:k]] = effect
    kappa[chosen[k:]] = -effect
    return kappa


# --------------------------------------------------------------------------- genotypes


def _genotypes(is_ms, variant_info, rng) -> tuple[np.ndarray, np.ndarray]:
    """Hard calls (participants × variants, Hardy-Weinberg within status) and DS dosages."""
    af = np.where(is_ms[:, None], variant_info["af_ms"].to_numpy(), variant_info["af_hhc"].to_numpy())
    u = rng.random((2,) + af.shape)
    # Two uniform draws per genotype (not binomial) so the null and planted
    # cohorts share every draw and differ only through the frequency.
    calls = ((u[0] < af).astype(np.int8) + (u[1] < af)).astype(np.int8)
    noise = rng.normal(0, 0.08, af.shape)
    dosage = np.where(variant_info["imputed"].to_numpy(), np.clip(calls + noise, 0, 2), calls)
    return calls, np.round(dosage, 3)


# --------------------------------------------------------------------------- microbiome


def _latent(design, baseline, lfc, dmt_effect, cov_beta, assoc, calls, variant_info, n_sites, rng, kappa):
    """Participant × species latent log-abundance (see the module docstring)."""
    N, S = len(design.is_ms), len(baseline)
    eta = baseline[None, :] + rng.normal(0, SITE_SD, (n_sites, S))[design.site]
    eta += rng.normal(0, HOUSEHOLD_SD, (design.n_households_total, S))[design.household]
    eta += rng.normal(0, INDIVIDUAL_SD, (N, S))
    eta += design.is_ms[:, None] * lfc[None, :]
    eta += design.severity[:, None] * kappa[None, :]  # severity is 0 for HHC
    eta += dmt_effect[design.drug]
    z = np.column_stack([(design.age - 45) / 10, design.male, (design.bmi - 25) / 5])
    eta += z @ cov_beta
    if len(assoc):
        v = variant_info.set_index("variant_id").index.get_indexer(assoc["variant_id"])
        inter = (assoc["effect"] == "interaction").to_numpy()
        # Centre on the expected dosage so the planted log fold change stays the
        # marginal MS-vs-HHC difference (interaction centred on the MS frequency).
        centre = 2 * np.where(inter, variant_info["af_ms"].to_numpy()[v], variant_info["af_hhc"].to_numpy()[v])
        gate = np.where(inter[None, :], design.is_ms[:, None], 1.0)
        s = assoc["species_index"].to_numpy()
        eta[:, s] += (calls[:, v] - centre) * gate * assoc["beta"].to_numpy()
    return eta


def _presence(design, prevalence, rng) -> np.ndarray:
    """Structural presence: Bernoulli(prevalence), half of the draws shared within household."""
    N, S = len(design.is_ms), len(prevalence)
    u_house = rng.random((design.n_households_total, S))[design.household]
    u_own = rng.random((N, S))
    present = np.where(rng.random((N, S)) < PRESENCE_SHARED, u_house, u_own) < prevalence
    present[~present.any(1), np.argmax(prevalence)] = True  # nobody has an empty gut
    return present


def _sample_presence(present, participant, prevalence, turnover, rng) -> np.ndarray:
    """Presence per stool sample: the participant's, each cell redrawn with probability ``turnover``.

    A redrawn cell is Bernoulli(prevalence) anew, so a species comes and goes
    between a person's samples while its prevalence stays as planted.
    """
    per_sample = present[participant]
    if turnover <= 0:
        return per_sample
    shape = per_sample.shape
    redraw = rng.random(shape) < turnover
    fresh = rng.random(shape) < prevalence[None, :]
    out = np.where(redraw, fresh, per_sample)
    out[~out.any(1), np.argmax(prevalence)] = True  # nobody has an empty gut
    return out


@dataclass(frozen=True)
class _Stool:
    participant: np.ndarray  # participant index per sample
    day: np.ndarray  # days since 2017-01-01
    depth: np.ndarray
    batch: np.ndarray
    visit: np.ndarray  # 0 for a participant's first sample, 1 for the next, ...


def _stool(design, repeat_fraction, median_depth, rng, samples_per_participant=None) -> _Stool:
    """Stool samples: one each, two for ``repeat_fraction`` of participants (a quarter of those three);
    or ``samples_per_participant`` each when given."""
    N = len(design.is_ms)
    if samples_per_participant is None:
        n_per = np.ones(N, int)
        k = int(round(repeat_fraction * N))
        repeated = rng.choice(N, size=k, replace=False)
        n_per[repeated] = 2 + (rng.random(k) < 0.25)
    else:
        n_per = np.full(N, int(samples_per_participant))
    participant = np.repeat(np.arange(N), n_per)
    M = len(participant)
    visit = np.arange(M) - np.repeat(np.cumsum(n_per) - n_per, n_per)
    # Household members give their first samples within a few days of each other.
    first_day = rng.integers(0, 5 * 365, design.n_households_total)[design.household] + rng.integers(0, 4, N)
    gap = rng.integers(60, 240, N)
    day = first_day[participant] + visit * gap[participant]
    depth = np.maximum(np.round(median_depth * np.exp(rng.normal(0, 0.45, M))), 2000).astype(np.int64)
    batch = np.empty(M, int)
    batch[np.lexsort((np.arange(M), day))] = np.arange(M) // BATCH_SIZE
    return _Stool(participant, day, depth, batch, visit)


def _composition(eta, present, stool: _Stool, rng, within_sd=SAMPLE_SD, time_correlation=0.0) -> np.ndarray:
    """True species composition of every stool sample: softmax over present species.

    Each sample adds within-person noise of SD ``within_sd`` to the participant's
    latent log-abundance; with ``time_correlation`` rho > 0 the noise is an AR(1)
    series over the participant's visits (consecutive samples correlate by rho,
    samples ``d`` visits apart by rho^d), so samples close in time are more alike.
    ``present`` is per sample (participants x species rows already expanded).
    """
    participant = stool.participant
    noise = rng.normal(0, within_sd, (len(participant), eta.shape[1]))
    if time_correlation > 0:
        # visits are consecutive rows of a participant, so the previous visit is the previous row
        for v in range(1, int(stool.visit.max()) + 1):
            rows = np.flatnonzero(stool.visit == v)
            noise[rows] = time_correlation * noise[rows - 1] + np.sqrt(1 - time_correlation**2) * noise[rows]
    x = eta[participant] + noise
    x = np.where(present, x, -np.inf)
    x -= x.max(1, keepdims=True)
    p = np.exp(x)
    return p / p.sum(1, keepdims=True)


@dataclass(frozen=True)
class _Features:
    species: np.ndarray  # species index per feature, features in id order
    weight: np.ndarray  # share of the species' reads
    ids: np.ndarray
    blank_species: np.ndarray  # bool: taxonomy ends in s__
    blank_genus: np.ndarray  # bool: taxonomy ends in g__; s__


def _features(neutral: np.ndarray, rng) -> _Features:
    """1-3 ASV-like features per species; ~5 % of features lose their species label.

    Blanked features are minor features of neutral species, so every species is
    still seen through its dominant feature and the truth stays exact.
    """
    S = len(neutral)
    n_feat = rng.choice([1, 2, 3], size=S, p=[0.55, 0.33, 0.12])
    species = np.repeat(np.arange(S), n_feat)
    F = len(species)
    weight = rng.gamma(2.0, size=F)
    weight = weight[np.lexsort((-weight, species))]  # dominant feature first within species
    weight /= np.bincount(species, weight)[species]
    rank = np.arange(F) - np.repeat(np.cumsum(n_feat) - n_feat, n_feat)
    blank = _take(np.flatnonzero((rank > 0) & neutral[species]), max(2, int(round(0.05 * F))), rng)
    blank_species = np.zeros(F, bool)
    blank_species[blank] = True
    blank_genus = np.zeros(F, bool)
    blank_genus[blank[:2]] = True
    # Number features at random so that ID order says nothing about taxonomy.
    number = rng.permutation(F) + 1
    order = np.argsort(number)
    return _Features(species[order], weight[order], _ids("asv", number[order], _width(F)),
                     blank_species[order], blank_genus[order])


def _taxonomy(lineage: pd.DataFrame, feats: _Features) -> pd.DataFrame:
    """Greengenes-style strings, ``; ``-joined, with the planted blank genus/species."""
    lin = lineage.to_numpy()[feats.species].astype(str)
    lin[feats.blank_species, 6] = "s__"
    lin[feats.blank_genus, 5] = "g__"
    text = lin[:, 0]
    for j in range(1, lin.shape[1]):  # seven ranks
        text = np.char.add(np.char.add(text, "; "), lin[:, j])
    return pd.DataFrame({"feature_id": feats.ids, "taxonomy": text})


def _newick(lineage: pd.DataFrame, feats: _Features, rng) -> str:
    """Newick tree following the taxonomy, with random positive branch lengths.

    Built bottom-up, one rank at a time: the children of each lineage prefix are
    joined into one clade; clades with a single child are collapsed into it (its
    branch gets longer) so the tree has no unary nodes.
    """
    ranks = list(taxa.RANKS)
    nodes = lineage.iloc[feats.species].reset_index(drop=True)
    nodes["text"] = feats.ids
    nodes["length"] = rng.uniform(0.002, 0.03, len(nodes))
    spans = {"species": (0.01, 0.06), "genus": (0.03, 0.12), "family": (0.05, 0.15), "order": (0.05, 0.2),
             "class": (0.1, 0.3), "phylum": (0.2, 0.5), "kingdom": (0.3, 0.8)}
    for depth in range(len(ranks) - 1, -1, -1):
        keys = ranks[: depth + 1]
        child = nodes["text"] + ":" + pd.Series(np.char.mod("%.5f", nodes["length"].to_numpy()), index=nodes.index)
        grouped = child.groupby([nodes[k] for k in keys], sort=True)
        joined, size = grouped.agg(",".join), grouped.size()
        first = nodes.groupby(keys, sort=True)[["text", "length"]].first()
        new_len = rng.uniform(*spans[ranks[depth]], len(joined))
        single = (size == 1).to_numpy()
        nodes = joined.index.to_frame(index=False)
        nodes["text"] = np.where(single, first["text"].to_numpy(), "(" + joined.to_numpy() + ")")
        nodes["length"] = np.where(single, first["length"].to_numpy() + new_len, new_len)
    if len(nodes) == 1:
        return nodes["text"].iloc[0] + ";"
    return "(" + ",".join(nodes["text"] + ":" + np.char.mod("%.5f", nodes["length"].to_numpy())) + ");"


# --------------------------------------------------------------------------- blood


def _blood(design, stool_day, participant, null, rng) -> pd.DataFrame:
    """One blood sample per participant: sNfL and GFAP, lognormal.

    Both rise with age and fall with BMI (a larger blood volume dilutes them)
    in everyone; in MS (unless ``null``) they rise further, with the latent
    severity, and GFAP also in progressive MS:

    - log sNfL = log 7 + 0.025 (age - 45) - 0.015 (BMI - 25) + MS (0.45 + 0.30 u) + N(0, 0.35²)
    - log GFAP = log 90 + 0.02 (age - 45) - 0.01 (BMI - 25) + MS (0.25 + 0.20 u + 0.15 progressive) + N(0, 0.4²)
    """
    N = len(design.is_ms)
    first_stool = np.full(N, np.iinfo(np.int64).max)
    np.minimum.at(first_stool, participant, stool_day)
    day = first_stool + rng.integers(-14, 15, N)
    ms = 0.0 if null else design.is_ms * 1.0
    u, progressive = design.severity, (design.course > 0) * 1.0
    age, bmi = design.age - 45, design.bmi - 25
    snfl = np.exp(np.log(7) + 0.025 * age - 0.015 * bmi + ms * (0.45 + 0.30 * u) + rng.normal(0, 0.35, N))
    gfap = np.exp(np.log(90) + 0.02 * age - 0.01 * bmi + ms * (0.25 + 0.20 * u + 0.15 * progressive)
                  + rng.normal(0, 0.4, N))
    return pd.DataFrame({
        "sample_id": _ids("B", np.arange(1, N + 1), _width(N + 10)),
        "participant_id": design.table["participant_id"].to_numpy(),
        "collection_date": _dates(day),
        "snfl": np.round(snfl, 2),
        "gfap": np.round(gfap, 2),
    })


def _dates(day: np.ndarray) -> np.ndarray:
    return (np.datetime64("2017-01-01") + np.asarray(day).astype("timedelta64[D]")).astype(str)


# --------------------------------------------------------------------------- edge cases


def _edge_roles(design, rng) -> dict[str, int]:
    """Distinct participants (indices) to plant each edge case on.

    Every planted bad stool sample is an *extra* sample of a household member who
    keeps a good one, so the only participant dropped is the one planted as
    ``no_stool_sample``: the last unpaired participant, or a household member
    when there are none (its partner is then left without a pair).
    """
    n_paired = int(design.table["household_id"].notna().sum())
    roles = ["below_min_depth", "zero_reads", "not_in_abundance_table", "no_blood",
             "duplicate_blood", "not_in_genotypes", "missing_gfap", "no_stool"]
    role = dict(zip(roles, rng.choice(n_paired, size=len(roles), replace=False).tolist()))
    if n_paired < len(design.is_ms):
        role["no_stool"] = len(design.is_ms) - 1
    return role


def _plant_stool(role, stool, manifest, counts, p_feat, pid, rng):
    """Drop one participant's stool samples; add three bad samples and one orphan table column.

    ``counts`` is features × samples. Returns the new manifest, counts, table
    column ids and ledger rows.
    """
    keep = stool.participant != role["no_stool"]
    manifest, counts, p_feat = manifest[keep].reset_index(drop=True), counts[:, keep], p_feat[keep]
    participant, day = stool.participant[keep], stool.day[keep]
    width = len(manifest["sample_id"].iloc[0]) - 1
    new_ids = _ids("S", np.arange(len(stool.participant) + 1, len(stool.participant) + 5), width)
    reasons = ["below_min_depth", "zero_reads", "not_in_abundance_table"]
    # Each bad sample is a later sample of a participant who keeps their first one.
    first = np.array([np.flatnonzero(participant == role[r])[0] for r in reasons])
    extra = pd.DataFrame({
        "sample_id": new_ids[:3],
        "participant_id": pid[[role[r] for r in reasons]],
        "collection_date": _dates(day[first] + 14),
        "sequencing_batch": manifest["sequencing_batch"].to_numpy()[first],
    })
    orphan = rng.integers(len(participant))
    columns = [
        rng.multinomial(LOW_DEPTH, p_feat[first[0]]),
        np.zeros(counts.shape[0], np.int64),
        rng.multinomial(int(counts[:, orphan].sum()), p_feat[orphan]),
    ]
    ledger = [("stool_sample", sid, r) for sid, r in zip(new_ids[:3], reasons)]
    ledger += [("table_column", new_ids[3], "not_in_stool_manifest"),
               ("participant", pid[role["no_stool"]], "no_stool_sample")]
    table_ids = np.concatenate([manifest["sample_id"].to_numpy(), new_ids[[0, 1, 3]]])
    manifest = pd.concat([manifest, extra], ignore_index=True)
    return manifest, np.column_stack([counts] + columns), table_ids, ledger


def _plant_blood(role, blood, calls, dosages, variant_info, rng):
    """One participant without blood, one with two concordant samples, one with an
    extra sample missing from the genotypes, a genotype column nobody owns, and one
    missing GFAP value.

    ``calls`` and ``dosages`` are participants × variants; the returned ones are
    variants × genotype columns.
    """
    n = len(blood)
    ids = _ids("B", np.arange(n + 1, n + 4), len(blood["sample_id"].iloc[0]) - 1)
    dup, extra = role["duplicate_blood"], role["not_in_genotypes"]
    later = blood.iloc[[dup, extra]].copy()
    later["sample_id"] = ids[:2]
    later["collection_date"] = _dates((pd.to_datetime(later["collection_date"]) - pd.Timestamp("2017-01-01")).dt.days
                                      .to_numpy() + 30)
    later[["snfl", "gfap"]] = np.round(later[["snfl", "gfap"]].to_numpy() * np.exp(rng.normal(0, 0.1, (2, 2))), 2)
    stray_calls = (rng.random((2, calls.shape[1])) < variant_info["af_hhc"].to_numpy()).sum(0).astype(np.int8)
    stray_dos = np.where(variant_info["imputed"].to_numpy(),
                         np.round(np.clip(stray_calls + rng.normal(0, 0.08, calls.shape[1]), 0, 2), 3), stray_calls)

    kept = np.flatnonzero(np.arange(n) != role["no_blood"])
    geno_cols = np.concatenate([blood["sample_id"].to_numpy()[kept], [ids[0], ids[2]]])
    rows = np.concatenate([kept, [dup]])  # the duplicate's genotypes are its owner's
    calls = np.column_stack([calls[rows].T, stray_calls])
    dosages = np.column_stack([dosages[rows].T, stray_dos])
    notes = {
        "participant_without_blood_sample": str(blood["participant_id"].iloc[role["no_blood"]]),
        "concordant_duplicate_blood_samples": [str(blood["sample_id"].iloc[dup]), str(ids[0])],
        "blood_sample_with_missing_gfap": str(blood["sample_id"].iloc[role["missing_gfap"]]),
    }
    blood = blood.copy()
    blood.loc[role["missing_gfap"], "gfap"] = np.nan
    blood = pd.concat([blood.iloc[kept], later], ignore_index=True)
    ledger = [("blood_sample", ids[1], "not_in_genotypes"), ("genotype_column", ids[2], "not_in_blood_manifest")]
    return blood, calls, dosages, geno_cols, ledger, notes


# --------------------------------------------------------------------------- public


def generate(
    n_households: int = 24,
    n_unpaired: int = 4,
    n_sites: int = 3,
    n_species: int = 60,
    n_variants: int = 40,
    repeat_fraction: float = 0.2,
    seed: int = 1,
    null: bool = False,
    edge_cases: bool = False,
    effect_size: float = 1.0,
    *,
    severity_effect: float = 0.8,
    severity_fraction: float = 0.05,
    disease_fraction: float = 0.05,
    n_genotype_main: int = 3,
    n_genotype_interaction: int = 3,
    median_depth: int = 20_000,
    samples_per_participant: int | None = None,
    within_sd: float = SAMPLE_SD,
    time_correlation: float = 0.0,
    presence_turnover: float = 0.0,
) -> Cohort:
    """Simulate an iMSMS-style cohort with planted truth.

    Parameters
    ----------
    n_households : int
        Households, each one MS patient and one household healthy control (HHC).
    n_unpaired : int
        Participants without a household, alternately MS and HHC.
    n_sites : int
        Recruitment sites (iMSMS city names, then ``site08``, ...).
    n_species : int
        Species (at least 10); each gets 1-3 ASV-like features.
    n_variants : int
        Host variants; the first three are the named loci rs3135388 (HLA-DRB1*15:01
        tag), rs4988235 (LCT) and rs601338 (FUT2) when there is room.
    repeat_fraction : float
        Fraction of participants with repeated stool samples (2, a quarter of them 3).
    seed : int
        Seed of every random stream.
    null : bool
        No disease, DMT, severity, genotype or HLA-enrichment effects (and no MS
        effect on sNfL/GFAP); everything else identical to the planted cohort of
        the same seed (participants, EDSS and disease course included).
    edge_cases : bool
        Plant the exclusions listed in ``truth_ledger`` and the valid oddities in
        ``notes`` (needs ``n_households >= 4``).
    effect_size : float
        Disease log fold change (natural log) of high-risk (+) and protective (-)
        species; treatment-only species change by ±1.5 × ``effect_size``.
    severity_effect : float
        Natural-log change of severity-linked species per unit of the patients'
        latent severity (SD about 1), + for those that rise with severity, - for
        those that fall; HHC are unaffected (see :func:`_clinical`).
    severity_fraction : float
        Fraction of species planted rising with severity, and again falling (at
        least one each), apart from the MS-risk ones (:func:`_plan_severity`).
    disease_fraction : float
        Fraction of species planted high-risk, and again protective (at least one each).
    n_genotype_main, n_genotype_interaction : int
        Planted variant × species pairs with a main effect (beta ±0.8 per alt allele)
        and with a genotype × MS interaction (±1.0, in MS only; the first is
        rs3135388 × the first high-risk species, +1.0).
    median_depth : int
        Median stool sequencing depth (lognormal, sd 0.45 on the log scale, at least 2000).
    samples_per_participant : int, optional
        Give every participant this many stool samples (``repeat_fraction`` is
        then ignored), a few months apart, for longitudinal designs.
    within_sd : float
        SD of the within-person noise each stool sample adds to the latent
        log-abundance (default 0.3; between persons the SDs are site 0.5,
        household 0.5, individual 0.7).
    time_correlation : float
        In [0, 1): the within-person noise is an AR(1) series over a person's
        visits with this lag-one correlation (0: independent samples).
    presence_turnover : float
        In [0, 1]: each species' presence in each sample is drawn anew
        (Bernoulli(prevalence)) with this probability, so species come and go
        between a person's samples (0: presence is the person's).

    Returns
    -------
    Cohort
        Every input table and the truth tables.

    Notes
    -----
    ``truth_species.log_fold_change`` is the planted marginal MS-vs-HHC shift of the
    latent log-abundance among participants carrying the species: genotype
    interactions are centred on the expected MS dosage so they do not change it.
    ``truth_species.severity_effect`` is the planted severity effect and
    ``progression_class`` its class (``high-risk`` for +, ``protective`` for -,
    else ``neutral``). The participants table carries ``disease_duration`` and
    ``age_at_onset`` for MS patients.
    ``prevalence`` is the planted presence probability (1 for the species with a
    planted genotype or severity effect, see :func:`_plan_associations`) and
    ``mean_relative_abundance`` the mean true relative abundance over stool samples.

    With any of the repeated-sample options set, ``notes["repeated_samples"]``
    holds the within-person truth: the options, the between-person variance
    (site, household, individual) and the within-person variance of the latent
    log-abundance, and ``latent_icc`` = between / (between + within), the
    correlation of two samples of one person for a species present in both
    (before sampling noise and the CLR's zeros), and ``latent_correlation_by_lag``
    the correlation of samples 1, 2, ... visits apart (all ``latent_icc`` when
    ``time_correlation`` is 0).
    """
    _check(n_households, n_unpaired, n_sites, n_species, n_variants, repeat_fraction, edge_cases)
    _check_repeated(samples_per_participant, within_sd, time_correlation, presence_turnover)
    repeated = {"samples_per_participant": samples_per_participant, "within_sd": within_sd,
                "time_correlation": time_correlation, "presence_turnover": presence_turnover}
    defaults = {"samples_per_participant": None, "within_sd": SAMPLE_SD, "time_correlation": 0.0,
                "presence_turnover": 0.0}
    # Only options that differ from the defaults are recorded, so a default cohort's truth.json
    # (and the bundled cohort) stays what it was before these options existed.
    params = {k: v for k, v in locals().items()
              if k not in ("params", "repeated", "defaults") and (k not in defaults or v != defaults[k])}
    rng = _streams(seed)

    design = _clinical(_design(n_households, n_unpaired, n_sites, rng["design"]), rng["severity"])
    names = _species_names(n_species, rng["species"])
    lineage = _lineage(names)
    baseline, prevalence = _species_parameters(names, rng["species"])
    plan = _plan_species(names, baseline, prevalence, effect_size, disease_fraction, rng["truth"])
    variant_info = _variants(n_variants, null, rng["variants"])
    assoc = _plan_associations(names, plan, variant_info, n_genotype_main, n_genotype_interaction, rng["truth"])
    kappa = _plan_severity(plan, assoc, baseline, prevalence, names, severity_effect, severity_fraction,
                           rng["severity"])
    calls, dosages = _genotypes(design.is_ms, variant_info, rng["genotypes"])
    # Genotype and severity targets are core species, present in every gut (see _plan_associations).
    core = np.isin(np.arange(n_species), assoc["species_index"]) | (kappa != 0)
    prevalence = np.where(core, 1.0, prevalence)

    on = 0.0 if null else 1.0
    dmt_effect = np.zeros((len(taxa.DRUGS) + 1, n_species))
    # Row 0 (no drug) collects the non-targets, whose dmt_lfc is 0.
    dmt_effect[plan.drug, np.arange(n_species)] = plan.dmt_lfc * on
    eta = _latent(design, baseline, plan.lfc * on, dmt_effect, plan.cov_beta,
                  assoc.iloc[:0] if null else assoc, calls, variant_info, n_sites, rng["latent"], kappa * on)
    present = _presence(design, prevalence, rng["presence"])
    stool = _stool(design, repeat_fraction, median_depth, rng["samples"], samples_per_participant)
    sample_present = _sample_presence(present, stool.participant, prevalence, presence_turnover, rng["turnover"])
    p_species = _composition(eta, sample_present, stool, rng["composition"], within_sd, time_correlation)
    feats = _features(plan.cls == "neutral", rng["features"])
    p_feat = p_species[:, feats.species] * feats.weight
    counts = rng["counts"].multinomial(stool.depth, p_feat)

    M = len(stool.participant)
    pid = design.table["participant_id"].to_numpy()
    manifest = pd.DataFrame({
        "sample_id": _ids("S", np.arange(1, M + 1), _width(M + 10)),
        "participant_id": pid[stool.participant],
        "collection_date": _dates(stool.day),
        "sequencing_batch": _ids("run", stool.batch + 1, 2),
    })
    blood = _blood(design, stool.day, stool.participant, null, rng["blood"])
    tree = _newick(lineage, feats, rng["tree"])

    table_ids = manifest["sample_id"].to_numpy()
    geno_cols = blood["sample_id"].to_numpy()
    counts_mat, calls_mat, dos_mat = counts.T, calls.T, dosages.T
    ledger, notes = None, {}
    if edge_cases:
        role = _edge_roles(design, rng["edge"])
        manifest, counts_mat, table_ids, stool_ledger = _plant_stool(
            role, stool, manifest, counts_mat, p_feat, pid, rng["edge"])
        blood, calls_mat, dos_mat, geno_cols, blood_ledger, edge_notes = _plant_blood(
            role, blood, calls, dosages, variant_info, rng["edge"])
        ledger = pd.DataFrame(stool_ledger + blood_ledger, columns=["entity", "id", "reason"])
        notes["edge_cases"] = edge_notes | {"participants_file_starts_with_comment": True}
    notes["covariate_effects"] = _covariate_notes(names, plan.cov_beta)
    if repeated != defaults:
        between = SITE_SD**2 + HOUSEHOLD_SD**2 + INDIVIDUAL_SD**2
        notes["repeated_samples"] = repeated | {
            "between_variance": {"site": SITE_SD**2, "household": HOUSEHOLD_SD**2, "individual": INDIVIDUAL_SD**2},
            "within_variance": within_sd**2,
            "latent_icc": between / (between + within_sd**2),
            # with time_correlation rho, samples d visits apart correlate by (between + within rho^d) / total
            "latent_correlation_by_lag": [
                (between + within_sd**2 * time_correlation**d) / (between + within_sd**2)
                for d in range(1, int(stool.visit.max()) + 1)],
        }

    vids = variant_info["variant_id"].to_numpy()
    truth_species = _truth_species(lineage, plan, kappa, prevalence, p_species, null)
    truth_assoc = pd.DataFrame({
        "variant_id": assoc["variant_id"],
        "feature": lineage["species"].to_numpy()[assoc["species_index"].to_numpy()],
        "effect": assoc["effect"],
        "beta": assoc["beta"],
    }).iloc[: 0 if null else None].sort_values(["effect", "variant_id"], ignore_index=True)
    return Cohort(
        participants=design.table,
        stool_manifest=manifest,
        blood_manifest=blood,
        counts=pd.DataFrame(counts_mat, index=pd.Index(feats.ids, name="feature_id"), columns=table_ids),
        taxonomy=_taxonomy(lineage, feats),
        lineage=lineage,
        feature_species=pd.Series(lineage["species"].to_numpy()[feats.species], index=feats.ids, name="species"),
        tree=tree,
        variant_info=variant_info.drop(columns=["gene_or_locus", "label"]),
        genotypes=pd.DataFrame(calls_mat, index=vids, columns=geno_cols),
        dosages=pd.DataFrame(dos_mat, index=vids, columns=geno_cols),
        variants=variant_info[["variant_id", "gene_or_locus", "label"]].copy(),
        truth_species=truth_species,
        truth_associations=truth_assoc,
        truth_ledger=ledger,
        params=params,
        notes=notes,
    )


def _check(n_households, n_unpaired, n_sites, n_species, n_variants, repeat_fraction, edge_cases):
    problems = []
    if n_households < 1 or n_unpaired < 0 or n_sites < 1:
        problems.append("need n_households >= 1, n_unpaired >= 0 and n_sites >= 1")
    if n_species < 10 or n_variants < 1:
        problems.append("need n_species >= 10 and n_variants >= 1")
    if not 0 <= repeat_fraction <= 1:
        problems.append("repeat_fraction must be between 0 and 1")
    if edge_cases and n_households < 4:
        problems.append("edge_cases needs n_households >= 4 (eight participants to plant on)")
    if problems:
        raise ValueError("; ".join(problems))


def _check_repeated(samples_per_participant, within_sd, time_correlation, presence_turnover):
    problems = []
    if samples_per_participant is not None and not 1 <= samples_per_participant <= 50:
        problems.append("samples_per_participant must be between 1 and 50")
    if not within_sd >= 0:
        problems.append("within_sd must be >= 0")
    if not 0 <= time_correlation < 1:
        problems.append("time_correlation must be in [0, 1)")
    if not 0 <= presence_turnover <= 1:
        problems.append("presence_turnover must be between 0 and 1")
    if problems:
        raise ValueError("; ".join(problems))


def _truth_species(lineage, plan, kappa, prevalence, p_species, null) -> pd.DataFrame:
    cls = np.where(null, "neutral", plan.cls)
    drug_names = np.array(("",) + taxa.DRUGS, dtype=object)
    dmt = np.where(null, None, drug_names[plan.drug])
    dmt = np.where(dmt == "", None, dmt)
    truth = pd.DataFrame({
        "feature": lineage["species"].to_numpy(),
        "genus": lineage["genus"].to_numpy(),
        "class": cls,
        "log_fold_change": 0.0 if null else plan.lfc,
        "dmt": dmt,
        "dmt_log_fold_change": 0.0 if null else plan.dmt_lfc,
        "severity_effect": 0.0 if null else kappa,
        "progression_class": np.where(null | (kappa == 0), "neutral", np.where(kappa > 0, "high-risk", "protective")),
        "prevalence": np.round(prevalence, 4),
        "mean_relative_abundance": p_species.mean(0),
    })
    return truth.sort_values("feature", ignore_index=True)


def _covariate_notes(names, cov_beta) -> list[dict]:
    covariate = np.array(["age_per_decade", "sex_male", "bmi_per_5"])
    j, s = np.nonzero(cov_beta)
    return [{"feature": f"s__{names[b]}", "covariate": str(covariate[a]), "beta": float(cov_beta[a, b])}
            for a, b in zip(j, s)]
