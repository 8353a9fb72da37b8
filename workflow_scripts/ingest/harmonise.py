"""Ingest: read every input, validate it all in one pass, build the harmonised cohort.

Nothing is written here; :func:`ingest` returns the cohort and the ledger, or
raises one :class:`~workflow_scripts.errors.InputError` listing every problem
in every file. The CLI (``cli.py``) writes the results only after that.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import biom
import numpy as np
import pandas as pd
import skbio

from ..cohort import Cohort, CohortGenotypes
from ..errors import InputError, Problem, Problems
from ..provenance import sha256
from ..settings import schema_default
from ..io.abundance import check_values, read_abundance
from ..io.genotypes import GenotypeScan, read_variant_annotation, scan_genotypes
from ..io.tables import read_table
from ..io.taxonomy import aggregate, assign, read_taxonomy, unassigned_label
from ..ledger import Ledger
from . import feasibility
from .validate import NOTE_COLUMN, check_manifest, check_participants


@dataclass
class Settings:
    """What ingest needs from the config (see config/schema/config.schema.yaml)."""

    participants: str
    stool_manifest: str
    abundance: str
    abundance_kind: str = schema_default("inputs", "abundance_kind")
    abundance_format: str = schema_default("ingest", "abundance_format")
    blood_manifest: str | None = None
    taxonomy: str | None = None
    tree: str | None = None
    genotypes: str | None = None
    variants: str | None = None
    rank: str = schema_default("rank")
    case_label: str = schema_default("case_label")
    control_label: str = schema_default("control_label")
    covariates: tuple[str, ...] = ()  # none unless given (from_config passes the config's)
    min_depth: float = schema_default("ingest", "min_depth")
    max_duplicate_discordance: float = schema_default("ingest", "max_duplicate_discordance")

    @classmethod
    def from_config(cls, config: dict) -> "Settings":
        """Settings from a validated workflow config (``inputs`` plus top-level keys)."""
        inputs = config["inputs"]
        keys = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in inputs.items() if k in keys}
        values.update(rank=config["rank"], case_label=config["case_label"],
                      control_label=config["control_label"], covariates=tuple(config.get("covariates", ())))
        ingest = config.get("ingest", {})
        values.update({k: ingest[k] for k in ("min_depth", "max_duplicate_discordance", "abundance_format")
                       if k in ingest})
        return cls(**values)


class _Collector:
    """Runs readers, keeping every InputError's problems instead of stopping."""

    def __init__(self) -> None:
        self.problems = Problems()

    def run(self, function, *args):
        try:
            return function(*args)
        except InputError as err:
            self.problems.extend(err.problems)
            return None


def ingest(settings: Settings) -> tuple[Cohort, pd.DataFrame]:
    """Validate and harmonise a cohort.

    Returns
    -------
    cohort : Cohort
    ledger : DataFrame
        Every participant, stool and blood sample, table and genotype column,
        feature and variant with ``kept`` or the reason it was dropped.

    Raises
    ------
    InputError
        With every problem found in every input, before anything is computed;
        or, after the drops, with what makes the kept cohort impossible to
        analyse (see :mod:`.feasibility`).
    """
    s = settings
    collect = _Collector()
    if s.case_label == s.control_label:
        collect.problems.add("config", f"case_label and control_label are both {s.case_label!r}",
                             "give the two status labels different values (e.g. case_label: MS, "
                             "control_label: HHC)", column="case_label")
        collect.problems.raise_if_any()
    if s.genotypes and not s.blood_manifest:
        collect.problems.add("config", "inputs.genotypes is set but inputs.blood_manifest is not",
                             "give the blood manifest that maps genotype columns to participants")

    participants = collect.run(read_table, s.participants)
    if participants is not None:
        found, participants = check_participants(participants, s.participants, s.case_label, s.control_label)
        collect.problems.extend(found)
    # None = the participants could not be read: the manifests then summarise instead of
    # reporting every sample's participant as unknown.
    known = set(participants["participant_id"].dropna()) if participants is not None and \
        "participant_id" in participants.columns and len(participants) else None

    def manifest(path, kind):
        frame = collect.run(read_table, path)
        if frame is None:
            return None
        found, frame = check_manifest(frame, path, known, kind, s.participants)
        collect.problems.extend(found)
        return frame

    stool = manifest(s.stool_manifest, "stool")
    if participants is not None and stool is not None:
        columns = set(participants.columns) | set(stool.columns)
        for name in s.covariates:
            if name not in columns:
                collect.problems.add("config", f"covariate {name!r} is not a column of {s.participants} "
                                     f"or {s.stool_manifest}",
                                     "add the column, or correct or remove it in the covariates list",
                                     column=name)
    blood = manifest(s.blood_manifest, "blood") if s.blood_manifest else None
    abundance = collect.run(read_abundance, s.abundance, s.abundance_format)
    values = collect.run(check_values, abundance, s.abundance_kind) if abundance is not None else None
    lineages = collect.run(read_taxonomy, s.taxonomy) if s.taxonomy else None
    tree = collect.run(_read_tree, s.tree) if s.tree else None
    genotypes = collect.run(scan_genotypes, s.genotypes) if s.genotypes else None
    annotation = collect.run(read_variant_annotation, s.variants) if s.variants else None
    if abundance is not None and not s.taxonomy and not abundance.lineages and s.rank != "feature":
        collect.problems.add("config", f"rank is {s.rank!r} but no taxonomy is given and "
                             f"{s.abundance} carries none",
                             "give inputs.taxonomy (feature_id, taxonomy) or set rank: feature")
    collect.problems.raise_if_any()

    ledger = Ledger()
    data, scale = values
    samples, kept_pids = _match_stool(stool, abundance, data, s, ledger)
    _stop(feasibility.check_samples(
        stool, pd.Series(data.sum(axis=0), index=abundance.sample_ids), ledger.frame(), s))
    participants = participants.set_index("participant_id", drop=False)
    _ledger_participants(participants, kept_pids, s.participants, ledger)
    part = _participant_table(participants.loc[kept_pids], s)

    table_lineages = lineages if lineages is not None else pd.Series(abundance.lineages, dtype=object)
    features, taxa, taxonomy = _feature_tables(abundance, data, samples.index, table_lineages, s, ledger,
                                               tree)
    frame = ledger.frame()
    dropped = frame[(frame["entity"] == "stool_sample") & (frame["outcome"] == "dropped")]
    dropped = dropped.assign(participant_id=dropped["id"].map(stool.set_index("sample_id")["participant_id"]))
    _stop(feasibility.check_design(part, samples, participants, dropped, int(taxa.shape[0]), s))
    geno = variants = None
    if blood is not None:
        geno, variants, biomarkers = _blood(blood, genotypes, annotation, part.index, s, ledger)
        part = part.join(biomarkers)
        part["has_genotype"] = part.index.isin(geno.samples["participant_id"]) if geno is not None else False
    part["n_stool_samples"] = samples.groupby("participant_id").size().reindex(part.index).astype(int)
    samples = samples.join(part.drop(columns=["n_stool_samples"]), on="participant_id")
    if tree is not None:
        tree = tree.shear(list(features.ids(axis="observation")))
        tree.prune()

    info = {
        "case_label": s.case_label, "control_label": s.control_label, "rank": s.rank,
        "abundance_kind": s.abundance_kind, "abundance_scale": scale,
        "abundance_format": abundance.format, "has_tree": tree is not None,
        "has_genotypes": geno is not None, "genotype_source": genotypes.dosage_field if genotypes else None,
        "n_participants": int(len(part)), "n_samples": int(len(samples)),
        "n_households_paired": int(part.loc[part["paired"], "household_id"].nunique()),
        "n_features": int(features.shape[0]), "n_taxa": int(taxa.shape[0]),
        "n_variants": int(0 if geno is None else len(variants)),
        "settings": asdict(s),
        "input_sha256": {k: sha256(v) for k, v in asdict(s).items()
                         if isinstance(v, str) and k in _INPUT_KEYS},
    }
    cohort = Cohort(part, samples, features, taxa, taxonomy, info, tree, geno, variants)
    return cohort, ledger.frame()


def _stop(problems: list[Problem]) -> None:
    if problems:
        raise InputError(problems)


_INPUT_KEYS = ("participants", "stool_manifest", "abundance", "blood_manifest", "taxonomy", "tree",
               "genotypes", "variants")


def _read_tree(path) -> skbio.TreeNode:
    if not Path(path).is_file():
        raise InputError([Problem(str(path), "file does not exist", "check inputs.tree in the config")])
    try:
        return skbio.TreeNode.read(str(path), format="newick")
    except Exception as err:
        raise InputError([Problem(str(path), f"is not a readable Newick tree ({err})",
                                  "give the tree in Newick format (e.g. QIIME 2's exported tree.nwk)")]) \
            from err


def _match_stool(stool, abundance, data, s: Settings, ledger: Ledger):
    """Match manifest rows to table columns; drop empty and shallow samples."""
    columns = pd.Index(abundance.sample_ids)
    depth = pd.Series(data.sum(axis=0), index=columns)
    in_table = stool["sample_id"].isin(columns)
    ledger.dropped("stool_sample", stool.loc[~in_table, "sample_id"], s.stool_manifest,
                   "not_in_abundance_table", f"no column in {s.abundance}")
    matched = stool[in_table].set_index("sample_id", drop=False)
    matched_depth = depth.reindex(matched.index)
    zero = matched_depth <= 0
    shallow = ~zero & (matched_depth < s.min_depth) & (s.abundance_kind == "counts")
    ledger.dropped("stool_sample", matched.index[zero], s.stool_manifest, "zero_reads",
                   "all abundances are zero")
    for sid in matched.index[shallow]:
        ledger.dropped("stool_sample", [sid], s.stool_manifest, "below_min_depth",
                       f"{matched_depth[sid]:.0f} reads < ingest.min_depth {s.min_depth:g}")
    keep = matched.index[~zero & ~shallow]
    ledger.kept("stool_sample", keep, s.stool_manifest)
    in_manifest = columns.isin(stool["sample_id"])
    ledger.kept("table_column", columns[in_manifest], s.abundance)
    ledger.dropped("table_column", columns[~in_manifest], s.abundance, "not_in_stool_manifest",
                   f"no row in {s.stool_manifest}")
    samples = matched.loc[keep].drop(columns=["sample_id", "_line"])
    samples.insert(0, "depth", matched_depth[keep].to_numpy())
    samples.index.name = "sample_id"
    kept_pids = list(dict.fromkeys(samples["participant_id"]))
    return samples, kept_pids


def _ledger_participants(participants, kept_pids, path, ledger: Ledger) -> None:
    keep = set(kept_pids)
    notes = participants[NOTE_COLUMN] if NOTE_COLUMN in participants.columns else {}
    for pid in participants.index:
        if pid in keep and notes.get(pid):
            ledger.kept("participant", [pid], path, "control_convention", notes[pid])
        elif pid in keep:
            ledger.kept("participant", [pid], path)
        else:
            ledger.dropped("participant", [pid], path, "no_stool_sample",
                           "no stool sample left in the analysis (see the stool_sample rows)")


def _participant_table(part: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """Participant rows in input order, with ``paired`` = household has a kept case and control."""
    part = part.drop(columns=["participant_id", "_line", NOTE_COLUMN], errors="ignore").copy()
    part.index.name = "participant_id"
    statuses = part.dropna(subset=["household_id"]).groupby("household_id")["status"].agg(set)
    paired = statuses[statuses.map(lambda st: {s.case_label, s.control_label} <= st)].index
    part["paired"] = part["household_id"].isin(paired)
    return part


def _feature_tables(abundance, data, sample_ids, lineages: pd.Series, s: Settings, ledger: Ledger,
                    tree):
    """Feature-level and rank-level BIOM tables over the kept samples."""
    columns = pd.Index(abundance.sample_ids)
    matrix = data[:, columns.get_indexer(sample_ids)]
    feature_ids = pd.Index(abundance.feature_ids)
    present = matrix.sum(axis=1) > 0
    for fid, reason, detail in abundance.dropped_rows:
        ledger.dropped("feature", [fid], s.abundance, reason, detail)
    ledger.dropped("feature", feature_ids[~present], s.abundance, "absent_from_kept_samples",
                   "zero in every stool sample left in the analysis")
    kept = feature_ids[present]
    matrix = matrix[present]
    feature_lineage = lineages.reindex(kept)
    no_lineage = feature_lineage.isna()
    feature_lineage = feature_lineage.fillna("")
    assignment = assign(feature_lineage, s.rank)
    unassigned = assignment == (unassigned_label(s.rank) if s.rank != "feature" else None)
    for fid in kept:
        if s.rank != "feature" and no_lineage[fid]:
            ledger.kept("feature", [fid], s.abundance, "no_taxonomy",
                        f"no lineage given; counted in {unassigned_label(s.rank)}")
        elif unassigned[fid]:
            ledger.kept("feature", [fid], s.abundance, "unassigned_at_rank",
                        f"lineage has no {s.rank}; counted in {unassigned_label(s.rank)}")
        else:
            ledger.kept("feature", [fid], s.abundance)
    if lineages is not None and len(lineages):
        extra = lineages.index[~lineages.index.isin(feature_ids)]
        ledger.dropped("taxonomy_row", extra, s.taxonomy or s.abundance, "not_in_abundance_table",
                       "lineage for a feature the table does not have")
    if tree is not None:
        tips = {t.name for t in tree.tips()}
        missing = [f for f in kept if f not in tips]
        if missing:
            raise InputError([Problem(s.tree, f"{len(missing)} feature(s) of the table are not tips of "
                                      f"the tree, e.g. {missing[:5]}",
                                      "give the tree built for this feature table (UniFrac and Faith's "
                                      "PD need every feature on it)", item=missing[0])])
    taxa_data, taxa = aggregate(matrix, assignment)
    features = biom.Table(matrix, list(kept), list(sample_ids))
    taxa_table = biom.Table(taxa_data, taxa, list(sample_ids))
    taxonomy = pd.DataFrame({"lineage": feature_lineage.to_numpy(), "taxon": assignment.to_numpy()},
                            index=pd.Index(kept, name="feature_id"))
    return features, taxa_table, taxonomy


def _blood(blood, genotypes: GenotypeScan | None, annotation, kept_pids: pd.Index, s: Settings,
           ledger: Ledger):
    """The genotype source with its sample -> participant map, the variants, and per-participant biomarkers.

    No dosage is loaded: duplicate blood samples of a participant are
    compared on the first variants of the file (``genotypes.check``).
    """
    blood = blood.set_index("sample_id", drop=False)
    in_manifest = set(blood.index)
    of_kept = blood["participant_id"].isin(kept_pids)
    ledger.dropped("blood_sample", blood.index[~of_kept], s.blood_manifest, "participant_dropped",
                   "the participant has no stool sample in the analysis")
    blood = blood[of_kept]
    markers = [c for c in ("snfl", "gfap") if c in blood.columns]
    biomarkers = blood.groupby("participant_id")[markers].mean().reindex(kept_pids) if markers else \
        pd.DataFrame(index=kept_pids)
    biomarkers["n_blood_samples"] = blood.groupby("participant_id").size().reindex(kept_pids) \
        .fillna(0).astype(int)
    if genotypes is None:
        ledger.kept("blood_sample", blood.index, s.blood_manifest, "no_genotype_file",
                    "no genotype file given; used for sNfL/GFAP only")
        return None, None, biomarkers
    columns = pd.Index(genotypes.samples)
    in_geno = blood.index.isin(columns)
    ledger.dropped("blood_sample", blood.index[~in_geno], s.blood_manifest, "not_in_genotypes",
                   f"no column in {s.genotypes} (its sNfL/GFAP are still used)")
    known = columns.isin(in_manifest)
    ledger.kept("genotype_column", columns[known], s.genotypes)
    ledger.dropped("genotype_column", columns[~known], s.genotypes, "not_in_blood_manifest",
                   f"no row in {s.blood_manifest}")
    typed = blood[in_geno]
    _, check = genotypes.check
    n_checked = check.shape[0]
    problems = Problems()
    first_sample: dict[str, str] = {}
    rows = []
    for sid, pid in zip(typed.index, typed["participant_id"]):
        column = int(columns.get_loc(sid))
        if pid not in first_sample:
            first_sample[pid] = sid
            rows.append((sid, column, pid))
            ledger.kept("blood_sample", [sid], s.blood_manifest)
            continue
        first = check[:, columns.get_loc(first_sample[pid])].astype(float)
        diff = np.abs(first - check[:, column])
        worst = np.nanmax(diff) if np.isfinite(diff).any() else 0.0
        if worst > s.max_duplicate_discordance:
            problems.add(s.blood_manifest, f"blood samples {first_sample[pid]!r} and {sid!r} of participant "
                         f"{pid!r} have discordant genotypes (dosages differ by up to {worst:.2f} over the "
                         f"first {n_checked} variants)",
                         "check for a sample swap; remove the wrong sample from the blood manifest",
                         item=sid)
            continue
        rows.append((sid, column, pid))
        ledger.kept("blood_sample", [sid], s.blood_manifest, "merged_concordant_duplicate",
                    f"second blood sample of {pid}; dosages averaged with {first_sample[pid]} (concordant "
                    f"over the first {n_checked} variants)")
    problems.raise_if_any()
    variants = genotypes.variants.copy()
    if annotation is not None:
        unknown = ~annotation["variant_id"].isin(variants["variant_id"])
        ledger.dropped("variant_annotation", annotation.loc[unknown, "variant_id"], s.variants,
                       "not_in_genotypes", f"annotated variant absent from {s.genotypes}")
        variants = variants.merge(annotation, on="variant_id", how="left")
    else:
        variants["gene_or_locus"] = None
        variants["label"] = None
    for vid, reason, detail in genotypes.dropped:
        ledger.dropped("variant", [vid], s.genotypes, reason, detail)
    ledger.kept("variant", variants["variant_id"], s.genotypes)
    source = {"path": genotypes.path, "format": genotypes.format, "dosage_field": genotypes.dosage_field,
              "indexed": genotypes.indexed, "undeclared": genotypes.undeclared, "n_samples": len(genotypes.samples),
              "n_records": int(len(variants) + len(genotypes.dropped)), "n_variants": int(len(variants)),
              "n_checked": int(n_checked)}
    samples = pd.DataFrame(rows, columns=["sample_id", "column", "participant_id"])
    return CohortGenotypes(source, samples), variants, biomarkers
