"""The held-out world: an iMSMS-like cohort simulated from a latent-presence × log-normal model.

This generator is written apart from the workflow and from its own synthetic generator, so the
workflow's statistics can be judged on a data-generating process they were not tuned to. It only
produces files of the public input contract (``../shared/spec/inputs.md``) and the planted truth.

Model (per species j, participant i, stool sample k of i; all effects drawn once per seed)
-----------------------------------------------------------------------------------------
Structural presence (a different mechanism from sampling zeros)::

    L_ijk = c_j + site_p[s(i), j] + u[h(i), j] + ent_p[i, j] + ms_p[j] * case_i
            + sqrt(1 - w) * e_ij + sqrt(w) * e_ijk,          e ~ N(0, 1)
    z_ijk = 1[L_ijk > 0]

``c_j`` is set so that the marginal presence probability is the species' target prevalence
(``Phi^-1(p_j) * sqrt(1 + var(site_p) + var(u))``); ``u`` is shared by a household's members
(shared structural presence); ``w`` (``presence_turnover``) is the share of the noise that is
redrawn at every stool sample. A species can be absent from a whole site (``site_absence``).

Log absolute abundance where present::

    X_ijk = mu_j + site_a[s(i), j] + v[h(i), j] + ent_a[i, j] + cov_j(age, sex, BMI)
            + ms_a[i, j] + therapy[i, j] + severity_j * S_i + sigma_j * e'_ij
            + within_sd * e'_ijk + drift_ij * t_k

with ``v`` the household's shared log-abundance offset, ``S_i`` the latent severity of a case
(standard normal; it drives EDSS, sNfL and GFAP), ``t_k`` years since the first sample and
``ent`` the enterotype (a Prevotella-high state, more common at some sites and shared within
households). Absolute abundance ``A = z * exp(X)`` is split over the species' ASVs (fixed
Dirichlet weights; secondary ASVs present in a fraction of carriers). Measurement multiplies by a
batch-specific taxon bias (extraction / primer), adds gamma technical noise (shape
``1 / tech_dispersion``) and draws ``depth_k`` reads multinomially: low-abundance taxa that are
present still give sampling zeros. The depth is log-normal with a low-depth component and a batch
shift.

Planted MS risk (cases vs the same cases without the effect):
``abundance`` (fold where present), ``prevalence`` (probit shift of presence only),
``zero_inflated`` (30-60% prevalent species, both), ``site_heterogeneous`` (fold varying by site,
same sign), ``bloom`` (an abundant species multiplied in a subset of cases, which shifts the whole
composition). Traps that must stay MS-neutral: ``therapy_only`` (one DMT changes a species),
``severity`` (within-MS slope on S), ``sex`` / ``age`` / ``bmi`` covariate effects (sex differs
strongly between cases and their household controls, as in the iMSMS), ``enterotype``.

Notes
-----
The truth is defined on absolute abundance: the MS effect of a taxon (or of an aggregate of
taxa at a rank) is the log2 ratio of its mean absolute abundance in the cases to the mean in the
same cases with every MS-risk effect removed (the counterfactual, same random draws). A bloom
therefore makes other taxa *relatively* rarer in cases while their truth stays neutral. The
progression effect of an aggregate is the slope of log(aggregate with severity effects /
aggregate without) on S among cases.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from heldout_contract import (PARTICIPANT_COLUMNS, TRUTH_COLUMNS, classify, group_sum, ms_effect,
                              prevalence_band, progression_slope, write_config, write_counts, write_truth_json,
                              write_tsv)
from heldout_taxa import ENTEROTYPE_DOWN_GENUS, ENTEROTYPE_UP, PINNED, build_catalogue

SITE_NAMES = ["Lisbon", "Toronto", "Melbourne", "Kiel", "Sapporo", "Santiago", "Denver"]
COURSES = ("RRMS", "SPMS", "PPMS")
MS_KINDS = ("abundance", "prevalence", "zero_inflated", "site_heterogeneous", "bloom")


@dataclass
class Knobs:
    """Every setting of the world, with realistic (iMSMS-like) defaults.

    Ranges are ``(low, high)`` pairs; folds and slopes are drawn log-uniformly / uniformly in them.
    """

    # --- design ---
    households: int = 250            # MS case + household control pairs
    unpaired_cases: int = 6          # participants with an empty household_id
    unpaired_controls: int = 4
    sites: int = 5                   # 3-7
    site_size_shape: float = 2.0     # gamma shape of the site weights (smaller = more unequal sites)
    case_female: float = 0.70        # iMSMS: 69% of cases are women
    control_female: float = 0.35     # household controls are mostly spouses: 35% women
    age_mean: float = 49.0
    age_sd: float = 12.0
    case_age_shift: float = -1.5     # cases' mean age minus controls' (iMSMS: -1.7 years)
    relative_controls: float = 0.2   # controls who are not spouses (age differs widely)
    bmi_median: float = 25.5
    case_bmi_shift: float = -1.3     # iMSMS: cases 1.5 kg/m2 lighter
    bmi_missing: float = 0.03
    course_probs: tuple = (0.76, 0.12, 0.12)   # RRMS, SPMS, PPMS
    untreated: float = 0.35
    dmts: tuple = ("interferon_beta", "dimethyl_fumarate", "fingolimod", "glatiramer_acetate",
                   "ocrelizumab")
    dmt_weights: tuple = (0.24, 0.24, 0.20, 0.19, 0.13)
    therapy_course_link: bool = True  # progressive MS: more untreated and more ocrelizumab
    control_edss: str = "zero"        # zero | empty: what controls carry in `edss`
    clinical_missing: float = 0.03    # EDSS / duration missing in cases
    blood_fraction: float = 0.9       # participants with a blood sample
    biomarker_missing: float = 0.05
    repeated_fraction: float = 0.2    # participants with 2..repeated_max stool samples
    repeated_max: int = 4
    # --- sequencing ---
    depth_median: float = 20000.0
    depth_sdlog: float = 0.45
    low_depth_fraction: float = 0.08  # heavy left tail
    low_depth_median: float = 5000.0
    depth_floor: float = 1500.0
    batches: int = 3
    batch_site_link: float = 0.7      # probability a sample is run in its site's usual batch
    batch_depth_sdlog: float = 0.2
    batch_bias_sd: float = 0.3        # per-batch, per-taxon log bias of the measurement
    tech_dispersion: float = 0.3      # gamma technical noise on proportions (1/shape)
    min_feature_reads: int = 10       # features with fewer reads in total are not emitted
    # --- taxa ---
    species: int = 160
    genusless_species: int = 14
    unassigned_species: float = 0.3   # share of species in a genus without an epithet
    extra_asvs: float = 0.6           # Poisson mean of extra ASVs per species
    secondary_asv_presence: tuple = (0.5, 1.0)
    prevalence_mix: tuple = (0.12, 0.25, 0.20, 0.43)  # core, common (30-65%), 12-30%, rare
    zipf_slope: float = 1.1
    between_sd: tuple = (0.8, 1.6)    # person-level log-abundance sd where present
    # --- structure ---
    site_abundance_sd: float = 0.8    # site >> disease, as in the iMSMS
    site_presence_sd: float = 0.8
    site_absence: float = 0.12        # chance a rare/intermediate species is absent from a site
    household_presence_sd: float = 1.0
    household_abundance_sd: float = 0.6
    enterotype_site_range: tuple = (0.1, 0.5)  # P(Prevotella-high) per site
    enterotype_concordance: float = 0.8        # a member keeps the household's enterotype
    enterotype_boost: float = 3.5
    covariate_species: int = 6        # species affected by each of age, sex, BMI
    sex_effect: tuple = (0.5, 0.9)    # log-abundance difference F vs M
    age_effect: tuple = (0.2, 0.4)    # per decade
    bmi_effect: tuple = (0.2, 0.4)    # per 5 kg/m2
    within_sd: float = 0.5            # sample-to-sample log-abundance noise
    drift_sd: float = 0.2             # per-year drift of a person's log-abundance
    presence_turnover: float = 0.15
    # --- planted truth ---
    n_abundance: int = 6
    n_prevalence: int = 4
    n_zero_inflated: int = 4
    n_site_heterogeneous: int = 3
    n_bloom: int = 1
    fold_range: tuple = (1.5, 4.0)
    presence_shift: tuple = (0.8, 1.6)   # probit units
    site_heterogeneity: float = 0.75     # site multipliers of the effect in [1-h, 1+h]
    bloom_fold: float = 3.0
    bloom_fraction: float = 0.6          # cases in which the bloom happens
    n_therapy: int = 3
    therapy_fold: tuple = (2.5, 4.0)
    n_severity: int = 4
    severity_slope: tuple = (0.5, 0.9)   # log-abundance per SD of latent severity
    min_true_fold: float = 1.25          # aggregates with a smaller MS effect are 'ambiguous'
    min_true_slope: float = 0.15         # ... and for severity


SCENARIOS: dict[str, dict] = {
    # large effects, mild structure, balanced sexes, no low-depth tail
    "easy": dict(households=200, site_abundance_sd=0.4, site_presence_sd=0.4, household_abundance_sd=0.4,
                 fold_range=(2.5, 4.0), presence_shift=(1.5, 2.0), site_heterogeneity=0.3,
                 case_female=0.55, control_female=0.55, case_age_shift=0.0, case_bmi_shift=0.0,
                 low_depth_fraction=0.0, depth_median=30000.0, tech_dispersion=0.15, batch_bias_sd=0.1,
                 severity_slope=(0.7, 0.9), control_edss="empty", repeated_fraction=0.1),
    "realistic": dict(),
    # small effects, strong site and batch structure, more low-depth samples
    "hard": dict(households=150, sites=7, fold_range=(1.5, 2.2), presence_shift=(0.6, 1.0),
                 site_abundance_sd=1.0, site_presence_sd=1.0, site_heterogeneity=0.9, batch_site_link=0.9,
                 batch_bias_sd=0.45, depth_median=15000.0, low_depth_fraction=0.15, tech_dispersion=0.6,
                 case_female=0.75, control_female=0.30, n_site_heterogeneous=5, severity_slope=(0.4, 0.6),
                 within_sd=0.7, repeated_fraction=0.3),
    # no MS-risk and no severity effect; every trap (therapy, covariates, enterotype) stays
    "null": dict(n_abundance=0, n_prevalence=0, n_zero_inflated=0, n_site_heterogeneous=0, n_bloom=0,
                 n_severity=0),
}


def make_knobs(scenario: str = "realistic", **overrides) -> Knobs:
    """Knobs of a named scenario, with explicit overrides on top."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    names = {f.name for f in dataclasses.fields(Knobs)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise ValueError(f"unknown knob(s) {', '.join(bad)}; see Knobs in heldout_sim.py")
    return dataclasses.replace(Knobs(), **{**SCENARIOS[scenario], **overrides})


@dataclass
class World:
    """Everything the generator drew: tables for the contract files and the arrays behind the truth."""

    knobs: Knobs
    seed: int
    participants: pd.DataFrame
    stool: pd.DataFrame
    blood: pd.DataFrame
    species: pd.DataFrame          # one row per species: names, lineage, baseline, planted effects
    features: pd.DataFrame         # one row per emitted ASV: feature_id, species index, lineage
    counts: np.ndarray             # emitted features x stool samples
    abs_full: np.ndarray           # features x stool samples, absolute abundance, every effect
    abs_no_ms: np.ndarray          # the same without MS-risk effects
    abs_no_severity: np.ndarray    # the same without severity effects
    extras: dict = field(default_factory=dict)


def _rng(seed: int, part: int) -> np.random.Generator:
    # one stream per component, so a knob of one component does not reshuffle the others
    return np.random.default_rng([seed, part])


def _loguniform(rng, lo_hi, size=None):
    lo, hi = lo_hi
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


# ----------------------------------------------------------------------------------- design
def simulate_design(k: Knobs, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Participants (with latent severity and enterotype), stool samples and blood samples."""
    rng = _rng(seed, 1)
    if not 1 <= k.sites <= len(SITE_NAMES):
        raise ValueError(f"sites={k.sites}: choose 1..{len(SITE_NAMES)}")
    site_w = rng.gamma(k.site_size_shape, size=k.sites)
    site_w /= site_w.sum()
    sites = np.array(SITE_NAMES[: k.sites])
    ent_p = rng.uniform(*k.enterotype_site_range, size=k.sites)
    rows = []
    hh_site = rng.choice(k.sites, size=k.households, p=site_w)
    hh_ent = rng.random(k.households) < ent_p[hh_site]
    for h in range(k.households):
        hid = f"H{h + 1:04d}"
        case_age = rng.normal(k.age_mean + k.case_age_shift / 2, k.age_sd)
        if rng.random() < k.relative_controls:
            ctrl_age = rng.normal(k.age_mean - k.case_age_shift / 2, k.age_sd)
        else:
            ctrl_age = case_age - k.case_age_shift + rng.normal(0, 4)
        for status, age, fem in (("MS", case_age, k.case_female), ("HHC", ctrl_age, k.control_female)):
            ent = hh_ent[h] if rng.random() < k.enterotype_concordance else rng.random() < ent_p[hh_site[h]]
            rows.append(dict(household_id=hid, hh_index=h, site_index=hh_site[h], status=status,
                             sex="F" if rng.random() < fem else "M", age=age, enterotype=bool(ent)))
    n_hh = k.households
    for j, (status, fem, n) in enumerate((("MS", k.case_female, k.unpaired_cases),
                                           ("HHC", k.control_female, k.unpaired_controls))):
        for _ in range(n):
            s = rng.choice(k.sites, p=site_w)
            shift = k.case_age_shift / 2 if status == "MS" else -k.case_age_shift / 2
            rows.append(dict(household_id="", hh_index=n_hh, site_index=s, status=status,
                             sex="F" if rng.random() < fem else "M",
                             age=rng.normal(k.age_mean + shift, k.age_sd),
                             enterotype=bool(rng.random() < ent_p[s])))
            n_hh += 1  # an unpaired participant is a household of one for the shared latents
    p = pd.DataFrame(rows)
    n = len(p)
    p.insert(0, "participant_id", [f"P{i + 1:05d}" for i in range(n)])
    p["site"] = sites[p["site_index"]]
    p["age"] = np.clip(p["age"], 18, 85).round(0)
    case = (p["status"] == "MS").to_numpy()
    bmi = k.bmi_median * np.exp(rng.normal(0, 0.17, n)) + np.where(case, k.case_bmi_shift, 0.0)
    p["bmi"] = np.clip(bmi, 16, 55).round(1)
    p.loc[rng.random(n) < k.bmi_missing, "bmi"] = np.nan
    # clinical: course, duration, severity, EDSS, therapy
    course = np.where(case, rng.choice(len(COURSES), size=n, p=np.array(k.course_probs) / sum(k.course_probs)), -1)
    severity = np.where(case, rng.normal(0, 1, n), 0.0)
    duration = rng.gamma(1.6, 14.0 / 1.6, n) + np.where(course > 0, 6.0, 0.0)
    duration = np.minimum(duration, p["age"].to_numpy() - 16).clip(0).round(0)
    base = np.array([1.6, 5.8, 5.2])[np.maximum(course, 0)]
    edss_latent = base + 0.05 * (duration - 12) + 1.1 * severity + rng.normal(0, 0.5, n)
    edss = np.clip(np.round(edss_latent * 2) / 2, 0, 9.5)
    dmt = np.full(n, "", dtype=object)
    w = np.array(k.dmt_weights, float) / sum(k.dmt_weights)
    names = list(k.dmts)
    for i in np.flatnonzero(case):
        untreated, ww = k.untreated, w
        if k.therapy_course_link and course[i] > 0:
            untreated = 0.5
            if "ocrelizumab" in names:  # the one DMT approved in progressive MS
                ww = np.where(np.array(names) == "ocrelizumab", 3.0, 1.0) * w
                ww = ww / ww.sum()
        dmt[i] = "untreated" if rng.random() < untreated else names[rng.choice(len(names), p=ww)]
    p["disease_course"] = np.where(case, np.array(COURSES)[np.maximum(course, 0)], "")
    p["dmt"] = dmt
    p["edss"] = np.where(case, edss, 0.0 if k.control_edss == "zero" else np.nan)
    p["disease_duration"] = np.where(case, duration, np.nan)
    p["age_at_onset"] = np.where(case, p["age"] - duration, np.nan)
    miss = case & (rng.random(n) < k.clinical_missing)
    p.loc[miss, "edss"] = np.nan
    miss = case & (rng.random(n) < k.clinical_missing)
    p.loc[miss, ["disease_duration", "age_at_onset"]] = np.nan
    p["severity"] = severity
    p["bloomer"] = case & (rng.random(n) < k.bloom_fraction)
    progressive = course > 0
    # biomarkers rise with age and with severity (cases), progressive courses raise GFAP more
    log_nfl = (np.log(7.5) + 0.022 * (p["age"] - 45) + np.where(case, 0.2 + 0.30 * severity, 0.0)
               + 0.15 * progressive + rng.normal(0, 0.35, n))
    log_gfap = (np.log(85.0) + 0.025 * (p["age"] - 45) + np.where(case, 0.1 + 0.25 * severity, 0.0)
                + 0.30 * progressive + rng.normal(0, 0.40, n))
    p["_snfl"] = np.exp(log_nfl).round(2)
    p["_gfap"] = np.exp(log_gfap).round(1)

    # stool samples: baseline date per household, repeated samples 2..K over months
    start = dt.date(2016, 1, 1)
    hh_day = rng.integers(0, 4 * 365, size=n_hh)
    stool = []
    for i in range(n):
        day0 = int(hh_day[p["hh_index"][i]] + rng.integers(0, 10))
        repeated = k.repeated_max >= 2 and rng.random() < k.repeated_fraction
        kk = int(rng.integers(2, k.repeated_max + 1)) if repeated else 1
        day = day0
        for r in range(kk):
            if r:
                day += int(rng.integers(60, 240))
            stool.append(dict(participant_index=i, visit=r, t_years=(day - day0) / 365.25,
                              collection_date=(start + dt.timedelta(days=day)).isoformat()))
    stool = pd.DataFrame(stool)
    stool.insert(0, "sample_id", [f"ST{j + 1:05d}" for j in range(len(stool))])
    stool["participant_id"] = p["participant_id"].to_numpy()[stool["participant_index"]]
    home_batch = rng.integers(0, k.batches, size=k.sites)
    site_of = p["site_index"].to_numpy()[stool["participant_index"]]
    own = rng.random(len(stool)) < k.batch_site_link
    batch = np.where(own, home_batch[site_of], rng.integers(0, k.batches, len(stool)))
    stool["batch_index"] = batch
    stool["sequencing_batch"] = [f"run{b + 1}" for b in batch]

    has_blood = rng.random(n) < k.blood_fraction
    blood = []
    first_date = stool.groupby("participant_index")["collection_date"].first()
    for i in np.flatnonzero(has_blood):
        d = dt.date.fromisoformat(first_date[i]) + dt.timedelta(days=int(rng.integers(-30, 31)))
        blood.append(dict(sample_id=f"BL{i + 1:05d}", participant_id=p["participant_id"][i],
                          collection_date=d.isoformat(),
                          snfl=p["_snfl"][i] if rng.random() > k.biomarker_missing else np.nan,
                          gfap=p["_gfap"][i] if rng.random() > k.biomarker_missing else np.nan))
    blood = pd.DataFrame(blood, columns=["sample_id", "participant_id", "collection_date", "snfl", "gfap"])
    p = p.drop(columns=["_snfl", "_gfap"])
    return p, stool, blood


# ------------------------------------------------------------------------------------- taxa
def simulate_taxa(k: Knobs, seed: int) -> pd.DataFrame:
    """Species catalogue with baseline prevalence, abundance and spread."""
    rng = _rng(seed, 2)
    cat = build_catalogue(k.species, k.genusless_species, k.unassigned_species, rng)
    n = len(cat)
    mix = np.array(k.prevalence_mix, float) / sum(k.prevalence_mix)
    tier = rng.choice(4, size=n, p=mix)
    prev = np.select([tier == 0, tier == 1, tier == 2],
                     [rng.uniform(0.85, 0.99, n), rng.uniform(0.30, 0.65, n), rng.uniform(0.12, 0.30, n)],
                     np.exp(rng.uniform(np.log(0.01), np.log(0.12), n)))
    # Zipf-like abundance ranks, correlated with prevalence (common taxa tend to be abundant)
    score = stats.norm.ppf(prev) + rng.normal(0, 0.8, n)
    rank = np.empty(n)
    rank[np.argsort(-score)] = np.arange(1, n + 1)
    for key, (pv, r) in PINNED.items():
        hit = np.flatnonzero((cat["genus"] == key[0]) & (cat["epithet"] == key[1]))
        if hit.size:
            prev[hit[0]] = pv
            rank[hit[0]] = r + 1 + 0.01 * hit[0]
    mu = -k.zipf_slope * np.log(rank) + rng.normal(0, 0.4, n)
    cat["prevalence_target"] = prev
    cat["mu"] = mu
    cat["sigma"] = rng.uniform(*k.between_sd, n)
    cat["enterotype"] = ""
    for g, e in ENTEROTYPE_UP:
        cat.loc[(cat["genus"] == g) & (cat["epithet"] == e), "enterotype"] = "up"
    cat.loc[cat["genus"] == ENTEROTYPE_DOWN_GENUS, "enterotype"] = "down"
    return cat


def plant_effects(cat: pd.DataFrame, k: Knobs, seed: int) -> pd.DataFrame:
    """Choose the planted species and their effects; returns the catalogue with effect columns.

    Only named species outside the enterotype group are planted, one role per species, so each
    planted effect is scorable at species rank.
    """
    rng = _rng(seed, 3)
    cat = cat.copy()
    n = len(cat)
    cat["ms_kind"] = ""
    cat["ms_sign"] = 0
    cat["ms_log_fold"] = 0.0
    cat["ms_presence_shift"] = 0.0
    cat["trap"] = np.where(cat["enterotype"] != "", "enterotype", "")
    cat["therapy_dmt"] = ""
    cat["therapy_log_fold"] = 0.0
    cat["severity_slope"] = 0.0
    for c in ("sex", "age", "bmi"):
        cat[f"cov_{c}"] = 0.0
    site_mult = np.ones((n, k.sites))
    free = (cat["epithet"] != "").to_numpy() & (cat["enterotype"] == "").to_numpy()
    prev = cat["prevalence_target"].to_numpy()

    def take(count, lo, hi, label, order=None):
        ok = np.flatnonzero(free & (prev >= lo) & (prev <= hi))
        if count > ok.size:
            raise ValueError(f"cannot plant {count} '{label}' species with prevalence {lo}-{hi}: only "
                             f"{ok.size} free; raise `species` or lower the count")
        if order is not None:
            chosen = ok[np.argsort(order[ok])][:count]
        else:
            chosen = rng.choice(ok, size=count, replace=False)
        free[chosen] = False
        return chosen

    def signs(count):
        s = np.where(np.arange(count) % 2 == 0, 1, -1)
        return rng.permutation(s)

    bloom = take(k.n_bloom, 0.6, 1.0, "bloom", order=-cat["mu"].to_numpy())
    cat.loc[bloom, ["ms_kind", "ms_sign"]] = ["bloom", 1]
    cat.loc[bloom, "ms_log_fold"] = np.log(k.bloom_fold)
    zi = take(k.n_zero_inflated, 0.30, 0.60, "zero_inflated")
    s = signs(zi.size)
    cat.loc[zi, "ms_kind"] = "zero_inflated"
    cat.loc[zi, "ms_sign"] = s
    cat.loc[zi, "ms_log_fold"] = s * np.log(_loguniform(rng, k.fold_range, zi.size))
    cat.loc[zi, "ms_presence_shift"] = s * rng.uniform(*k.presence_shift, zi.size) * 0.7
    pr = take(k.n_prevalence, 0.15, 0.75, "prevalence")
    s = signs(pr.size)
    cat.loc[pr, "ms_kind"] = "prevalence"
    cat.loc[pr, "ms_sign"] = s
    cat.loc[pr, "ms_presence_shift"] = s * rng.uniform(*k.presence_shift, pr.size)
    sh = take(k.n_site_heterogeneous, 0.30, 1.0, "site_heterogeneous")
    s = signs(sh.size)
    cat.loc[sh, "ms_kind"] = "site_heterogeneous"
    cat.loc[sh, "ms_sign"] = s
    cat.loc[sh, "ms_log_fold"] = s * np.log(_loguniform(rng, k.fold_range, sh.size))
    m = rng.uniform(1 - k.site_heterogeneity, 1 + k.site_heterogeneity, (sh.size, k.sites))
    site_mult[sh] = m / m.mean(axis=1, keepdims=True)
    ab = take(k.n_abundance, 0.15, 1.0, "abundance")
    s = signs(ab.size)
    cat.loc[ab, "ms_kind"] = "abundance"
    cat.loc[ab, "ms_sign"] = s
    cat.loc[ab, "ms_log_fold"] = s * np.log(_loguniform(rng, k.fold_range, ab.size))
    th = take(k.n_therapy, 0.30, 1.0, "therapy_only")
    dmts = list(k.dmts)
    for j, idx in enumerate(th):
        cat.loc[idx, "trap"] = "therapy_only"
        cat.loc[idx, "therapy_dmt"] = dmts[j % len(dmts)] if j < len(dmts) else dmts[rng.integers(len(dmts))]
        cat.loc[idx, "therapy_log_fold"] = rng.choice([-1, 1]) * np.log(_loguniform(rng, k.therapy_fold))
    sv = take(k.n_severity, 0.30, 1.0, "severity")
    s = signs(sv.size)
    cat.loc[sv, "severity_slope"] = s * rng.uniform(*k.severity_slope, sv.size)
    cat.loc[sv, "trap"] = "severity"
    # covariate effects go to unplanted species (named or not): neutral for MS, but sex differs
    # between cases and their household controls
    for c, effect in (("sex", k.sex_effect), ("age", k.age_effect), ("bmi", k.bmi_effect)):
        pool = np.flatnonzero((cat["ms_kind"] == "").to_numpy() & (cat["trap"] == "").to_numpy() & (prev >= 0.1))
        chosen = rng.choice(pool, size=min(k.covariate_species, pool.size), replace=False)
        cat.loc[chosen, f"cov_{c}"] = rng.choice([-1, 1], chosen.size) * rng.uniform(*effect, chosen.size)
        cat.loc[chosen, "trap"] = c
    cat.attrs["site_mult"] = site_mult
    return cat


# ---------------------------------------------------------------------------------- latents
def simulate_world(k: Knobs, seed: int) -> World:
    """Draw the whole world: design, taxa, latent abundances and the observed counts."""
    p, stool, blood = simulate_design(k, seed)
    cat = plant_effects(simulate_taxa(k, seed), k, seed)
    rng = _rng(seed, 4)
    n_sp, n_p, n_s = len(cat), len(p), len(stool)
    n_hh = int(p["hh_index"].max()) + 1
    pi = stool["participant_index"].to_numpy()
    site = p["site_index"].to_numpy()
    hh = p["hh_index"].to_numpy()
    case = (p["status"] == "MS").to_numpy()
    female = (p["sex"] == "F").to_numpy().astype(float)
    age_dec = (p["age"].to_numpy() - 50) / 10
    bmi5 = (p["bmi"].fillna(p["bmi"].median()).to_numpy() - 25) / 5
    ent = p["enterotype"].to_numpy()
    prev = cat["prevalence_target"].to_numpy()

    # presence latent (participants x species), then per sample
    site_p = rng.normal(0, k.site_presence_sd, (k.sites, n_sp))
    absent = (rng.random((k.sites, n_sp)) < k.site_absence) & (prev < 0.3)
    site_p[absent] = -20.0
    u = rng.normal(0, k.household_presence_sd, (n_hh, n_sp))
    c = stats.norm.ppf(prev) * np.sqrt(1 + k.site_presence_sd ** 2 + k.household_presence_sd ** 2)
    ent_sign = np.select([cat["enterotype"] == "up", cat["enterotype"] == "down"], [1.0, -1.0], 0.0)
    ent_p = np.outer(ent, np.where(ent_sign > 0, 2.5, 0.0))
    ms_p = np.outer(case, cat["ms_presence_shift"].to_numpy())
    e_person = rng.normal(0, 1, (n_p, n_sp))
    e_sample = rng.normal(0, 1, (n_s, n_sp))
    w = k.presence_turnover
    base_L = (c + site_p[site] + u[hh] + ent_p)[pi] + np.sqrt(1 - w) * e_person[pi] + np.sqrt(w) * e_sample
    z_full = base_L + ms_p[pi] > 0
    z_no_ms = base_L > 0

    # log abundance
    site_a = rng.normal(0, k.site_abundance_sd, (k.sites, n_sp))
    v = rng.normal(0, k.household_abundance_sd, (n_hh, n_sp))
    ent_a = np.outer(ent, np.where(ent_sign > 0, k.enterotype_boost, np.where(ent_sign < 0, -0.8, 0.0)))
    cov = (np.outer(female - 0.5, cat["cov_sex"]) + np.outer(age_dec, cat["cov_age"])
           + np.outer(bmi5, cat["cov_bmi"]))
    dmt = p["dmt"].to_numpy()
    therapy = np.zeros((n_p, n_sp))
    for j in np.flatnonzero(cat["therapy_dmt"] != ""):
        therapy[:, j] = np.where(dmt == cat.at[j, "therapy_dmt"], cat.at[j, "therapy_log_fold"], 0.0)
    # severity effect b*S - b^2/4 in cases: by Jensen no offset keeps both the geometric and the
    # arithmetic case mean unchanged; this one splits the difference (exp(+-b^2/4), <= 1.22x for b <= 0.9)
    b_sev = cat["severity_slope"].to_numpy()
    sev = (np.outer(p["severity"].to_numpy(), b_sev) - b_sev ** 2 / 4) * case[:, None]
    site_mult = cat.attrs["site_mult"]
    ms_a = np.outer(case, cat["ms_log_fold"].to_numpy()) * site_mult[:, site].T
    bloom = (cat["ms_kind"] == "bloom").to_numpy()
    ms_a[:, bloom] *= p["bloomer"].to_numpy()[:, None]
    sigma = cat["sigma"].to_numpy()
    person = cat["mu"].to_numpy() + site_a[site] + v[hh] + ent_a + cov + therapy + sigma * rng.normal(0, 1, (n_p, n_sp))
    drift = rng.normal(0, k.drift_sd, (n_p, n_sp))
    t = stool["t_years"].to_numpy()[:, None]
    base_X = person[pi] + drift[pi] * t + rng.normal(0, k.within_sd, (n_s, n_sp))
    sp_full = z_full * np.exp(base_X + ms_a[pi] + sev[pi])
    sp_no_ms = z_no_ms * np.exp(base_X + sev[pi])
    sp_no_sev = z_full * np.exp(base_X + ms_a[pi])

    # ASVs: a species' reads split over 1 + Poisson(extra_asvs) ASVs with fixed weights
    rng_f = _rng(seed, 5)
    n_asv = 1 + rng_f.poisson(k.extra_asvs, n_sp)
    asv_sp = np.repeat(np.arange(n_sp), n_asv)
    weights = np.concatenate([np.sort(rng_f.dirichlet(np.ones(m)))[::-1] for m in n_asv])
    primary = np.concatenate([[True] + [False] * (m - 1) for m in n_asv])
    q = np.where(primary, 1.0, rng_f.uniform(*k.secondary_asv_presence, asv_sp.size))
    carried = rng_f.random((n_s, asv_sp.size)) < q
    asv_full = (sp_full[:, asv_sp] * weights * carried).T
    asv_no_ms = (sp_no_ms[:, asv_sp] * weights * carried).T
    asv_no_sev = (sp_no_sev[:, asv_sp] * weights * carried).T

    # measurement: batch bias, gamma technical noise, multinomial reads at a log-normal depth
    rng_m = _rng(seed, 6)
    bias = rng_m.normal(0, k.batch_bias_sd, (k.batches, asv_sp.size))
    b = stool["batch_index"].to_numpy()
    batch_depth = np.exp(rng_m.normal(0, k.batch_depth_sdlog, k.batches))
    batch_depth /= np.exp(np.log(batch_depth).mean())  # batches shift depth around depth_median
    low = rng_m.random(n_s) < k.low_depth_fraction
    depth = np.where(low, k.low_depth_median * np.exp(rng_m.normal(0, 0.5, n_s)),
                     k.depth_median * np.exp(rng_m.normal(0, k.depth_sdlog, n_s))) * batch_depth[b]
    depth = np.maximum(depth, k.depth_floor).round().astype(np.int64)
    measured = asv_full * np.exp(bias[b].T)
    shape = 1.0 / k.tech_dispersion
    noisy = rng_m.gamma(shape, 1.0, measured.shape) * measured
    counts = np.zeros(noisy.shape, dtype=np.int64)
    for s_ in range(n_s):
        col = noisy[:, s_]
        tot = col.sum()
        if tot > 0:
            counts[:, s_] = rng_m.multinomial(depth[s_], col / tot)
    keep = counts.sum(axis=1) >= k.min_feature_reads
    features = pd.DataFrame({"species_index": asv_sp, "asv_weight": weights})
    features["feature_id"] = [f"ASV{i + 1:05d}" for i in range(len(features))]
    features = features[keep].reset_index(drop=True)
    features["lineage"] = cat["lineage"].to_numpy()[features["species_index"]]
    stool["depth_target"] = depth
    return World(knobs=k, seed=seed, participants=p, stool=stool, blood=blood, species=cat,
                 features=features, counts=counts[keep], abs_full=asv_full[keep], abs_no_ms=asv_no_ms[keep],
                 abs_no_severity=asv_no_sev[keep], extras={"site_mult": site_mult})


# ------------------------------------------------------------------------------------ truth
def _describe(row, k: Knobs) -> str:
    """The planted parameter of one species, in words a reader can check."""
    parts = []
    if row.ms_kind == "bloom":
        parts.append(f"fold={np.exp(row.ms_log_fold):.2f} in {k.bloom_fraction:.0%} of cases")
    elif row.ms_kind == "site_heterogeneous":
        parts.append(f"fold={np.exp(row.ms_log_fold):.2f} on average, site multipliers "
                     f"{1 - k.site_heterogeneity:.2f}..{1 + k.site_heterogeneity:.2f} of the log fold")
    elif row.ms_log_fold:
        parts.append(f"fold={np.exp(row.ms_log_fold):.2f} where present")
    if row.ms_presence_shift:
        parts.append(f"presence shift={row.ms_presence_shift:+.2f} probit")
    if row.therapy_dmt:
        parts.append(f"therapy {row.therapy_dmt} fold={np.exp(row.therapy_log_fold):.2f}")
    if row.severity_slope:
        parts.append(f"severity slope={row.severity_slope:+.2f} per SD")
    for c in ("sex", "age", "bmi"):
        v = getattr(row, f"cov_{c}")
        if v:
            parts.append(f"{c} effect={v:+.2f}")
    return "; ".join(parts)


def world_truth(world: World) -> pd.DataFrame:
    """Truth at feature, species and genus rank for every emitted feature (see module Notes)."""
    k, cat, feats = world.knobs, world.species, world.features
    stool, p = world.stool, world.participants
    first = (stool["visit"] == 0).to_numpy()
    pidx = stool["participant_index"].to_numpy()[first]
    case = (p["status"] == "MS").to_numpy()[pidx]
    severity = p["severity"].to_numpy()[pidx][case]
    sp = feats["species_index"].to_numpy()
    labels = {"feature": feats["feature_id"].to_numpy(),
              "species": cat["species"].to_numpy()[sp],
              "genus": cat["genus_label"].to_numpy()[sp]}
    # the name one rank up, which a workflow uses to qualify homonyms (s__Ruminococcus_x (g__[Ruminococcus]))
    family = np.array([f"f__{f}" for f in cat["family"]])[sp]
    parents = {"feature": labels["species"], "species": labels["genus"], "genus": family}
    full = world.abs_full[:, first]
    no_ms = world.abs_no_ms[:, first]
    no_sev = world.abs_no_severity[:, first]
    counts = world.counts[:, first]
    rows = []
    for rank, lab in labels.items():
        names, a_full = group_sum(full, lab)
        _, a_no_ms = group_sum(no_ms, lab)
        _, a_no_sev = group_sum(no_sev, lab)
        _, cnt = group_sum(counts, lab)
        eff = ms_effect(a_full, a_no_ms, case)
        slope = progression_slope(a_full[:, case], a_no_sev[:, case], severity)
        prev = (cnt > 0).mean(axis=1)
        for g, name in enumerate(names):
            members = np.unique(sp[lab == name])
            m = cat.loc[members]
            planted = m[m["ms_kind"] != ""]
            sev = m[m["severity_slope"] != 0]
            traps = sorted(set(t for t in m["trap"] if t and t != "severity") | ({"severity"} if len(sev) else set()))
            described = m[(m["ms_kind"] != "") | (m["trap"] != "")]
            up = np.unique(parents[rank][lab == name])
            rows.append(dict(
                rank=rank, feature=name, parent=up[0] if up.size == 1 else "",
                **{"class": classify(eff[g], len(planted) > 0, np.log2(k.min_true_fold))},
                effect_kind=";".join(sorted(set(planted["ms_kind"]))) or "none",
                effect_size=float(eff[g]) if np.isfinite(eff[g]) else np.nan,
                parameter=" | ".join(f"{r.species}: {_describe(r, k)}" for r in described.itertuples())
                if rank != "feature" or len(described) else "",
                prevalence=float(prev[g]), prevalence_band=prevalence_band(prev[g]),
                trap=";".join(traps),
                progression_class=classify(slope[g], len(sev) > 0, k.min_true_slope),
                progression_effect=float(slope[g]),
                n_members=int(len(members)), planted_members=int(len(planted))))
    truth = pd.DataFrame(rows, columns=TRUTH_COLUMNS)
    return truth


def write_world(world: World, out: Path, scenario: str, results: Path | None = None) -> pd.DataFrame:
    """Write the contract files, ``config.yaml``, ``truth.tsv``, ``truth.json`` and hidden latents."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = world.participants
    write_tsv(p[PARTICIPANT_COLUMNS], out / "participants.tsv")
    write_tsv(world.stool[["sample_id", "participant_id", "collection_date", "sequencing_batch"]],
              out / "stool_manifest.tsv")
    write_tsv(world.blood, out / "blood_manifest.tsv")
    write_counts(world.counts, world.features["feature_id"], world.stool["sample_id"], out / "abundance.tsv")
    pd.DataFrame({"feature_id": world.features["feature_id"], "taxonomy": world.features["lineage"]}).to_csv(
        out / "taxonomy.tsv", sep="\t", index=False)
    truth = world_truth(world)
    write_tsv(truth, out / "truth.tsv")
    hidden = p[["participant_id", "status", "site", "severity", "enterotype", "bloomer"]]
    write_tsv(hidden, out / "truth_participants.tsv")
    write_config(out, "species", results or out / "results", with_blood=True)
    cat = world.species
    write_truth_json(out, {
        "mode": "simulate", "scenario": scenario, "seed": world.seed,
        "knobs": dataclasses.asdict(world.knobs),
        "sites": sorted(p["site"].unique()),
        "counts": {"participants": len(p), "stool_samples": len(world.stool), "blood_samples": len(world.blood),
                   "features": len(world.features), "species": int(cat.shape[0])},
        "planted": {kind: sorted(cat.loc[cat["ms_kind"] == kind, "species"]) for kind in MS_KINDS},
        "therapy_only": {r.species: r.therapy_dmt for r in cat[cat["therapy_dmt"] != ""].itertuples()},
        "severity": sorted(cat.loc[cat["severity_slope"] != 0, "species"]),
        "truth_definition": "MS risk: log2 mean absolute abundance in cases / same cases without MS effects "
                            "(first stool samples); progression: slope of log(with / without severity "
                            "effects) on latent severity in cases",
    })
    return truth
