"""Writing a held-out cohort as input-contract files, and the truth behind it.

Shared by the simulated world (``heldout_sim``) and the real-data implant (``heldout_implant``):
the contract tables, ``config.yaml``, ``truth.tsv`` (one row per taxon at every rank emitted)
and ``truth.json`` (scenario, knobs, seed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

TRUTH_COLUMNS = ["rank", "feature", "parent", "class", "effect_kind", "effect_size", "parameter", "prevalence",
                 "prevalence_band", "trap", "progression_class", "progression_effect", "n_members",
                 "planted_members"]
BANDS = [(0.0, 0.10, "<10%"), (0.10, 0.30, "10-30%"), (0.30, 0.60, "30-60%"), (0.60, 0.90, "60-90%"),
         (0.90, 1.01, ">=90%")]
PARTICIPANT_COLUMNS = ["participant_id", "household_id", "site", "status", "sex", "age", "bmi",
                       "disease_course", "dmt", "edss", "disease_duration", "age_at_onset"]


def prevalence_band(p: float) -> str:
    """Prevalence band label used by the truth and the scorer."""
    for lo, hi, label in BANDS:
        if lo <= p < hi:
            return label
    return "n/a"


def write_tsv(df: pd.DataFrame, path: Path) -> None:
    """Tab-separated, empty cells for missing values, integers without a trailing ``.0``."""
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if pd.api.types.is_float_dtype(col):
            whole = col.dropna()
            if len(whole) and np.all(whole == np.round(whole)) and c not in ("effect_size", "progression_effect"):
                out[c] = col.map(lambda v: "" if pd.isna(v) else str(int(v)))
    out.to_csv(path, sep="\t", index=False, na_rep="", float_format="%.6g")


def write_counts(counts: np.ndarray, feature_ids, sample_ids, path: Path) -> None:
    """Features x samples integer count table, first column ``feature_id``."""
    df = pd.DataFrame(np.asarray(counts, dtype=np.int64), index=pd.Index(feature_ids, name="feature_id"),
                      columns=list(sample_ids))
    df.to_csv(path, sep="\t")


def write_config(out: Path, rank: str, results: Path, with_blood: bool) -> Path:
    """A config the workflow runs directly: ``snakemake --cores 2 --configfile out/config.yaml``."""
    out = out.resolve()
    inputs = {"participants": str(out / "participants.tsv"),
              "stool_manifest": str(out / "stool_manifest.tsv"),
              "abundance": str(out / "abundance.tsv"),
              "abundance_kind": "counts",
              "taxonomy": str(out / "taxonomy.tsv")}
    if with_blood:
        inputs["blood_manifest"] = str(out / "blood_manifest.tsv")
    cfg = {"inputs": inputs, "rank": rank, "outdir": str(Path(results).resolve())}
    path = out / "config.yaml"
    path.write_text("# Held-out cohort written by benchmarks/heldout/generate.py; truth in truth.tsv\n"
                    + yaml.safe_dump(cfg, sort_keys=False))
    return path


def write_truth_json(out: Path, payload: dict) -> None:
    def clean(v):
        if isinstance(v, (tuple, list)):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {str(a): clean(b) for a, b in v.items()}
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.floating, float)):
            return None if math.isnan(v) else float(v)
        if isinstance(v, np.bool_):
            return bool(v)
        return v
    (out / "truth.json").write_text(json.dumps(clean(payload), indent=2, sort_keys=True) + "\n")


def classify(effect_log2: float, planted: bool, min_log2: float) -> str:
    """True MS-risk class of a taxon from its realised effect and whether any member was planted.

    Unplanted taxa are neutral whatever their case/control difference (covariates, therapy,
    compositional shifts); planted aggregates whose effect is diluted below ``min_log2`` are
    ``ambiguous`` and excluded from scoring.
    """
    if not planted:
        return "neutral"
    if not np.isfinite(effect_log2) or abs(effect_log2) < min_log2:
        return "ambiguous"
    return "high-risk" if effect_log2 > 0 else "protective"


def group_sum(matrix: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum rows of ``matrix`` by ``labels``; returns (unique labels, summed rows)."""
    names, inv = np.unique(labels, return_inverse=True)
    out = np.zeros((names.size, matrix.shape[1]))
    np.add.at(out, inv, matrix)
    return names, out


def ms_effect(full: np.ndarray, no_ms: np.ndarray, case_cols: np.ndarray) -> np.ndarray:
    """log2 of mean abundance in cases with / without the planted MS effects (per row)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log2(full[:, case_cols].mean(axis=1) / no_ms[:, case_cols].mean(axis=1))


def progression_slope(full: np.ndarray, no_sev: np.ndarray, severity: np.ndarray) -> np.ndarray:
    """Per row, the least-squares slope of log(full / no_sev) on severity, over columns where both > 0."""
    out = np.zeros(full.shape[0])
    for r in range(full.shape[0]):
        ok = (full[r] > 0) & (no_sev[r] > 0)
        if ok.sum() < 3:
            continue
        y = np.log(full[r, ok] / no_sev[r, ok])
        x = severity[ok]
        vx = np.var(x)
        out[r] = np.cov(x, y, bias=True)[0, 1] / vx if vx > 0 else 0.0
    return out
