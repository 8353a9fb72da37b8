"""Real-data implant (Wirbel et al. 2024 style) on the iMSMS 16S cohort.

The real counts keep their own depth, zeros, site and household structure; only the planted
signal is ours:

1. ASVs are summed to genus from their Greengenes string (lineages without a genus are kept as
   their own rows; the workflow puts them in ``g__unassigned``).
2. Within every household the MS / control labels are swapped with probability 1/2, so the real
   MS signal averages out; the clinical record (course, DMT, EDSS, duration) follows the label and,
   by default, is also permuted among the labelled cases of a site, which removes real severity and
   therapy associations.
3. In the labelled cases, chosen genera are multiplied by a fold (2-3x up or down) where present
   (zeros stay zero); optionally a prevalence shift adds (up) or removes (down) presence in a
   fraction of cases; optionally severity genera are scaled by exp(beta * z) with z the
   standardised EDSS of the case. Each case sample is then rescaled to its original depth and
   rounded by largest remainder, so depth is kept exactly, zeros stay zero and (without a
   prevalence shift) present taxa stay present.

Only genera present in at least ``min_prevalence`` (default 30%) of samples are implanted, and
never the unassigned or homonym rows.

References
----------
Wirbel J, Essex M, Forslund SK, Zeller G. A realistic benchmark for differential abundance
testing and confounder adjustment in human microbiome studies. Genome Biology 25, 247 (2024).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from heldout_contract import (PARTICIPANT_COLUMNS, TRUTH_COLUMNS, classify, prevalence_band, write_config,
                              write_counts, write_truth_json, write_tsv)

RANKS = ("k", "p", "c", "o", "f", "g")


@dataclass
class ImplantKnobs:
    """Settings of the implant; defaults follow Wirbel et al. (folds 2-3, prevalent features)."""

    n_up: int = 5                  # genera made high-risk (higher in labelled cases)
    n_down: int = 5                # genera made protective
    fold_range: tuple = (2.0, 3.0)
    min_prevalence: float = 0.3    # implant only in genera at least this prevalent (0 = any)
    prevalence_shift: float = 0.0  # fraction of case samples that gain (up) / lose (down) the genus
    n_severity: int = 2            # genera scaled with the case's EDSS (progression truth)
    severity_slope: tuple = (0.5, 0.8)  # log-abundance per SD of EDSS among cases
    shuffle_clinical: bool = True  # permute clinical records among a site's labelled cases
    biomarkers: bool = True        # write a blood manifest with simulated sNfL / GFAP
    min_true_fold: float = 1.25
    min_true_slope: float = 0.15


def read_source(source: Path) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """The iMSMS 16S files: ASV counts, ASV taxonomy strings, per-sample metadata."""
    source = Path(source)
    for name in ("asv_counts.tsv.gz", "asv_taxonomy.tsv", "metadata.tsv"):
        if not (source / name).is_file():
            raise FileNotFoundError(f"{source / name} is missing: --source must be the imsms_16s folder "
                                    f"(../shared/data/real/imsms_16s)")
    counts = pd.read_csv(source / "asv_counts.tsv.gz", sep="\t", index_col=0)
    tax = pd.read_csv(source / "asv_taxonomy.tsv", sep="\t", index_col=0)["taxonomy"]
    meta = pd.read_csv(source / "metadata.tsv", sep="\t", dtype={"household": str})
    return counts, tax, meta


def genus_lineage(taxonomy: str) -> str:
    """Greengenes string cut at genus, every rank present (``g__`` when unnamed)."""
    parts = [s.strip() for s in str(taxonomy).split(";")]
    named = {s[:1]: s for s in parts if len(s) >= 3 and s[1:3] == "__"}
    return "; ".join(named.get(r, f"{r}__") for r in RANKS)


def genus_names(lineages: pd.Series) -> pd.Series:
    """Workflow-style genus names: ``g__X``; ``g__X (f__Family)`` for homonyms; ``g__unassigned``."""
    parts = lineages.str.split("; ")
    genus = parts.str[5]
    family = parts.str[4]
    named = genus != "g__"
    fam_count = pd.Series(family[named].values, index=genus[named].values).groupby(level=0).nunique()
    homonym = genus.map(fam_count).fillna(0) > 1
    out = genus.where(~homonym, genus + " (" + family + ")")
    return out.where(named, "g__unassigned")


def aggregate_to_genus(counts: pd.DataFrame, taxonomy: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Genus x sample counts and a table of ``feature_id``, ``lineage``, ``name``, ``homonym``."""
    lin = taxonomy.reindex(counts.index).fillna("k__Bacteria").map(genus_lineage)
    g = counts.groupby(lin.values).sum()
    g = g.loc[sorted(g.index)]
    info = pd.DataFrame({"lineage": g.index})
    info["feature_id"] = [f"G{i + 1:04d}" for i in range(len(info))]
    info["name"] = genus_names(info["lineage"]).values
    info["homonym"] = info["name"].str.contains(r" \(", regex=True)
    g.index = info["feature_id"].values
    return g, info


def round_to_total(x: np.ndarray, total: int) -> np.ndarray:
    """Round non-negative ``x`` to integers summing to ``total``, keeping the zero pattern.

    Largest-remainder rounding, except that an entry above 0 never rounds to 0 (a rescaled count
    of 1 stays present: the implant changes abundance, not presence, unless asked to).
    """
    out = np.floor(x)
    out[(x > 0) & (out == 0)] = 1
    rem = int(round(total - out.sum()))
    frac = x - np.floor(x)
    if rem > 0:
        idx = np.argsort(-np.where(x > 0, frac, -1.0), kind="stable")[:rem]
        out[idx] += 1
    elif rem < 0:
        # take units back where the rounding gave most away: entries above 1 with the smallest remainder
        can = np.flatnonzero(out > 1)
        idx = can[np.argsort(frac[can], kind="stable")][:-rem]
        out[idx] -= 1
    return out.astype(np.int64)


def relabel(meta: pd.DataFrame, rng: np.random.Generator, shuffle_clinical: bool) -> pd.DataFrame:
    """Participants in the input contract, with MS / HHC swapped within half of the households."""
    m = meta.copy()
    m["is_ms"] = m["disease"].eq("MS")
    clinical = ["disease_course", "treatments", "edss", "disease_duration"]
    rows = []
    for hh, grp in m.groupby("household", sort=True):
        if len(grp) != 2 or grp["is_ms"].sum() != 1:
            raise ValueError(f"household {hh} is not one MS + one control; the implant needs the iMSMS pairing")
        ms = grp[grp["is_ms"]].iloc[0]
        ctrl = grp[~grp["is_ms"]].iloc[0]
        swap = rng.random() < 0.5
        case_person, ctrl_person = (ctrl, ms) if swap else (ms, ctrl)
        rec = {c: ms[c] for c in clinical}
        rows.append({**_person(case_person), "status": "MS", **rec, "swapped": swap})
        rows.append({**_person(ctrl_person), "status": "HHC", "swapped": swap})
    p = pd.DataFrame(rows)
    case = p["status"] == "MS"
    if shuffle_clinical:
        for site, idx in p[case].groupby("site").groups.items():
            perm = rng.permutation(len(idx))
            p.loc[idx, clinical] = p.loc[idx, clinical].to_numpy()[perm]
    dmt = p["treatments"].astype(str).str.strip()
    p["dmt"] = np.where(case, dmt.replace({"Untreated": "untreated"}).str.replace(r"[^A-Za-z0-9]+", "_", regex=True)
                        .str.strip("_"), "")
    p["disease_course"] = p["disease_course"].where(case, "")
    p["edss"] = pd.to_numeric(p["edss"], errors="coerce").where(case)
    dur = pd.to_numeric(p["disease_duration"], errors="coerce").where(case)
    p["disease_duration"] = np.minimum(dur, (p["age"] - 10).clip(lower=0))
    p["age_at_onset"] = np.nan
    return p


def _person(row) -> dict:
    sid = str(row["sample_id"])
    return {"participant_id": f"P{sid}", "sample_id": sid, "household_id": f"H{row['household']}",
            "site": str(row["site"]).replace(" ", "_"), "sex": row["sex"], "age": row["age"], "bmi": row["bmi"]}


def implant(counts: np.ndarray, case: np.ndarray, folds: dict[int, np.ndarray], prevalence_shift: float,
            up_down: dict[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Scale rows in case columns and rescale each case column to its original depth.

    Parameters
    ----------
    counts : (features, samples) integer counts.
    case : boolean mask of the labelled case samples.
    folds : row -> per-sample multiplicative factor (length = samples; used in case columns).
    prevalence_shift : fraction of case samples that gain (sign +1) or lose (sign -1) presence.
    up_down : row -> +1 / -1, the direction used by the prevalence shift.

    Returns
    -------
    new counts, and the pre-rescale scaled counts (float) whose ratio to the original defines the
    realised effect.
    """
    x = counts.astype(float).copy()
    depth = counts.sum(axis=0)
    cols = np.flatnonzero(case)
    for r, f in folds.items():
        x[r, cols] *= f[cols]
    if prevalence_shift > 0:
        ctrl = ~case
        for r, sign in up_down.items():
            if sign > 0:
                donors = counts[r, ctrl][counts[r, ctrl] > 0] / depth[ctrl][counts[r, ctrl] > 0]
                gain = cols[(counts[r, cols] == 0) & (rng.random(cols.size) < prevalence_shift)]
                if donors.size and gain.size:
                    x[r, gain] = rng.choice(donors, gain.size) * depth[gain] * folds[r][gain]
            else:
                lose = cols[(counts[r, cols] > 0) & (rng.random(cols.size) < prevalence_shift)]
                x[r, lose] = 0.0
    out = counts.copy()
    for c in cols:
        tot = x[:, c].sum()
        out[:, c] = round_to_total(x[:, c] * depth[c] / tot, int(depth[c])) if tot > 0 else 0
    return out, x


def run_implant(source: Path, out: Path, k: ImplantKnobs, seed: int, results: Path | None = None) -> pd.DataFrame:
    """Write an implanted iMSMS cohort (contract files, config, truth) to ``out``; returns the truth."""
    rng = np.random.default_rng([seed, 11])
    asv, tax, meta = read_source(source)
    gcounts, info = aggregate_to_genus(asv, tax)
    p = relabel(meta, rng, k.shuffle_clinical)
    samples = p["sample_id"].to_numpy()
    counts = gcounts[samples].to_numpy().astype(np.int64)
    case = (p["status"] == "MS").to_numpy()
    prev = (counts > 0).mean(axis=1)
    eligible = np.flatnonzero((prev >= k.min_prevalence) & (info["name"] != "g__unassigned").to_numpy()
                              & ~info["homonym"].to_numpy())
    need = k.n_up + k.n_down + k.n_severity
    if need > eligible.size:
        raise ValueError(f"{need} genera requested but only {eligible.size} have prevalence >= "
                         f"{k.min_prevalence}; lower the counts or --min-prevalence")
    chosen = rng.choice(eligible, size=need, replace=False)
    up, down, sev = chosen[:k.n_up], chosen[k.n_up:k.n_up + k.n_down], chosen[k.n_up + k.n_down:]
    fold = np.exp(rng.uniform(np.log(k.fold_range[0]), np.log(k.fold_range[1]), need))
    n = counts.shape[1]
    folds, up_down, params, slopes = {}, {}, {}, {}
    for j, r in enumerate(up):
        folds[r], up_down[r], params[r] = np.full(n, fold[j]), 1, f"fold={fold[j]:.2f}"
    for j, r in enumerate(down, start=k.n_up):
        folds[r], up_down[r], params[r] = np.full(n, 1 / fold[j]), -1, f"fold={1 / fold[j]:.2f}"
    edss = p["edss"].to_numpy(float)
    z = np.zeros(n)
    ok = case & np.isfinite(edss)
    z[ok] = (edss[ok] - edss[ok].mean()) / edss[ok].std()
    for r in sev:
        b = rng.choice([-1, 1]) * rng.uniform(*k.severity_slope)
        slopes[r] = b
        folds[r] = np.exp(b * z - b ** 2 / 4 * ok)
        params[r] = f"severity slope={b:+.2f} per SD of EDSS"
    new, scaled = implant(counts, case, folds, k.prevalence_shift, up_down, rng)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_tsv(p[PARTICIPANT_COLUMNS], out / "participants.tsv")
    write_tsv(pd.DataFrame({"sample_id": samples, "participant_id": p["participant_id"]}), out / "stool_manifest.tsv")
    if k.biomarkers:
        write_tsv(_biomarkers(p, z, case, rng), out / "blood_manifest.tsv")
    write_counts(new, info["feature_id"], samples, out / "abundance.tsv")
    pd.DataFrame({"feature_id": info["feature_id"], "taxonomy": info["lineage"]}).to_csv(
        out / "taxonomy.tsv", sep="\t", index=False)

    # truth per workflow genus name (unassigned rows form one bucket)
    depth = counts.sum(axis=0)
    rel_old = counts / depth
    rel_new = scaled / depth
    rows = []
    for name, idx in info.groupby("name").groups.items():
        idx = np.asarray(idx)
        with np.errstate(divide="ignore", invalid="ignore"):
            eff = np.log2(rel_new[idx][:, case].sum(axis=0).mean() / rel_old[idx][:, case].sum(axis=0).mean())
        ms_rows = [r for r in idx if r in up_down]
        sev_rows = [r for r in idx if r in slopes]
        kind = "implant_abundance" + ("+prevalence" if k.prevalence_shift > 0 else "") if ms_rows else "none"
        pv = float((new[idx].sum(axis=0) > 0).mean())
        slope = float(slopes[sev_rows[0]]) if sev_rows else 0.0
        fams = info["lineage"].str.split("; ").str[4][idx].unique()
        rows.append(dict(rank="genus", feature=name, parent=fams[0] if len(fams) == 1 else "",
                         **{"class": classify(eff if ms_rows else 0.0, bool(ms_rows), np.log2(k.min_true_fold))},
                         effect_kind=kind, effect_size=float(eff) if ms_rows else 0.0,
                         parameter="; ".join(params[r] for r in ms_rows + sev_rows), prevalence=pv,
                         prevalence_band=prevalence_band(pv), trap="severity" if sev_rows else "",
                         progression_class=classify(slope, bool(sev_rows), k.min_true_slope),
                         progression_effect=slope, n_members=int(len(idx)), planted_members=len(ms_rows)))
    truth = pd.DataFrame(rows, columns=TRUTH_COLUMNS)
    write_tsv(truth, out / "truth.tsv")
    write_tsv(p[["participant_id", "status", "site", "swapped"]], out / "truth_participants.tsv")
    write_config(out, "genus", results or out / "results", with_blood=k.biomarkers)
    write_truth_json(out, {
        "mode": "implant", "source": str(Path(source).resolve()), "seed": seed, "knobs": dataclasses.asdict(k),
        "swapped_households": int(p.loc[case, "swapped"].sum()), "households": int(case.sum()),
        "implanted": {"high-risk": sorted(info["name"][up]), "protective": sorted(info["name"][down]),
                      "severity": sorted(info["name"][sev])},
        "eligible_genera": int(eligible.size),
        "truth_definition": "MS risk: log2 of mean relative abundance in labelled cases after / before scaling "
                            "(before depth rescaling); progression: planted slope per SD of EDSS in cases",
    })
    return truth


def _biomarkers(p: pd.DataFrame, z: np.ndarray, case: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """sNfL / GFAP rising with age and with the case's EDSS (simulated: the iMSMS files have none)."""
    age = p["age"].to_numpy(float)
    n = len(p)
    nfl = np.exp(np.log(7.5) + 0.022 * (age - 45) + case * (0.2 + 0.3 * z) + rng.normal(0, 0.35, n))
    gfap = np.exp(np.log(85.0) + 0.025 * (age - 45) + case * (0.1 + 0.25 * z) + rng.normal(0, 0.4, n))
    return pd.DataFrame({"sample_id": "B" + p["sample_id"], "participant_id": p["participant_id"],
                         "snfl": nfl.round(2), "gfap": gfap.round(1)})
