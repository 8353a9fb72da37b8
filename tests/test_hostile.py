"""Issue 12, items 4-8: every hostile input stops with one readable message, never a traceback.

Each case breaks the small cohort of ``conftest.MiniCohort`` in one place and
states what the message must name (the file, and the line, id, column or config
key where there is one) and a word of its fix. Every case is run twice: through
:func:`ingest` (one :class:`InputError`) and through the ingest command line
(exit status 1, the report on stderr, no traceback, nothing written). A few run
through Snakemake too (exit status 1), in ``test_snakemake_stops_cleanly``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import biom
import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_scripts.errors import InputError
from workflow_scripts.ingest import cli
from workflow_scripts.ingest.harmonise import ingest

from conftest import REPO


@dataclass
class Case:
    """A hostile input: how to make it, and what its message must say."""

    name: str
    make: Callable  # (mini) -> Settings
    file: str  # the problem's file ends with this ("config" for config problems)
    text: str  # ... and its message contains this
    fix: str  # ... and its fix contains this
    line: int | None = None
    item: str | None = None
    column: str | None = None


def _write_text(mini, name, text):
    path = mini.path(name)
    path.write_text(text)
    return str(path)


def _retable(path, edit):
    """Rewrite a TSV through ``edit(lines) -> lines``."""
    lines = open(path).read().splitlines()
    open(path, "w").write("\n".join(edit(lines)) + "\n")


def _without_blood(settings):
    settings.blood_manifest = settings.genotypes = settings.variants = None
    return settings


def all_zero(mini):
    mini.counts.loc[:, :] = 0
    return mini.write()


def controls_below_min_depth(mini):
    for column in mini.counts.columns:
        if column.endswith("H"):
            mini.counts[column] = 1  # 12 reads < min_depth 100
    return mini.write()


def cases_zero_reads(mini):
    for column in mini.counts.columns:
        if column.endswith("M"):
            mini.counts[column] = 0
    return mini.write()


def one_household(mini):
    mini.participants["household_id"] = "H00"
    mini.participants["site"] = "SiteA"
    return mini.write()


def two_controls_left(mini):
    for column in ("SP00H", "SP01H", "SP02H", "SP03H"):
        mini.counts[column] = 0
    return mini.write()


def three_and_three(mini):
    keep = ["P00M", "P00H", "P01M", "P01H", "P02M", "P02H"]
    mini.participants = mini.participants[mini.participants["participant_id"].isin(keep)]
    mini.participants["household_id"] = ""
    mini.stool = mini.stool[mini.stool["participant_id"].isin(keep)]
    mini.counts = mini.counts[[f"S{p}" for p in keep]]
    return _without_blood(mini.write())


def two_pairs(mini):
    mini.participants.loc[mini.participants["household_id"] > "H01", "household_id"] = ""
    return mini.write()


def households_across_sites(mini):
    mini.participants.loc[1, "site"] = "SiteB"  # P00H, household H00 is at SiteA
    return mini.write()


def too_many_covariate_levels(mini):
    mini.participants["clinic"] = [f"C{i}" for i in range(len(mini.participants))]
    return mini.write(covariates=("age", "clinic"))


def covariate_confounded(mini):
    return mini.write(covariates=("sex",))  # every MS is F, every HHC is M


def covariate_missing_for_controls(mini):
    mini.participants.loc[mini.participants["status"] == "HHC", "bmi"] = ""
    return mini.write(covariates=("age", "bmi"))


def manifest_ids_not_in_table(mini):
    mini.counts.columns = [f"X{c}" for c in mini.counts.columns]
    return mini.write()


def one_taxon(mini):
    mini.taxonomy["taxonomy"] = "k__Bacteria; p__Firmicutes"
    return mini.write(rank="phylum")


def duplicate_column(table):
    def make(mini):
        settings = mini.write()
        path = {"participants": settings.participants, "stool": settings.stool_manifest,
                "blood": settings.blood_manifest, "taxonomy": settings.taxonomy,
                "abundance": settings.abundance}[table]
        _retable(path, lambda lines: [line + "\t" + line.split("\t")[1] for line in lines])
        return settings
    return make


def header_only_abundance(with_tree):
    def make(mini):
        settings = mini.write()
        _retable(settings.abundance, lambda lines: lines[:1])
        if with_tree:
            settings.tree = _write_text(mini, "tree.nwk", "(" + ",".join(f"{f}:1" for f in mini.counts.index)
                                        + ");\n")
        return settings
    return make


def sampleless_abundance_with_tree(mini):
    settings = mini.write()
    _retable(settings.abundance, lambda lines: [line.split("\t")[0] for line in lines])
    settings.tree = _write_text(mini, "tree.nwk", "(" + ",".join(f"{f}:1" for f in mini.counts.index) + ");\n")
    return settings


def empty_biom(mini):
    settings = mini.write()
    path = mini.path("empty.biom")
    with h5py.File(path, "w") as h5:
        biom.Table(np.zeros((0, 3)), [], ["SP00M", "SP00H", "SP01M"]).to_hdf5(h5, "test")
    settings.abundance = str(path)
    return settings


def unnamed_column(mini):
    settings = mini.write()
    _retable(settings.participants, lambda lines: [lines[0] + "\t"] + [line + "\tx" for line in lines[1:]])
    return settings


def unbalanced_quote(mini):
    settings = mini.write()
    _retable(settings.stool_manifest, lambda lines: lines[:3] + ['"' + lines[3]] + lines[4:])
    return settings


def header_only_participants(mini):
    settings = mini.write()
    _retable(settings.participants, lambda lines: lines[:1])
    return settings


def participants_not_utf8(mini):
    settings = mini.write()
    path = mini.path("participants.tsv")
    path.write_bytes(path.read_bytes().replace(b"SiteA", "Sit\u00e9A".encode("latin-1"), 1))
    return settings


def participants_empty(mini):
    settings = mini.write()
    mini.path("participants.tsv").write_text("")
    return settings


def relative(sums_to):
    """Relative abundances: every sample a proportion profile, one sample scaled to ``sums_to``."""
    def make(mini):
        props = mini.counts / mini.counts.sum(axis=0)
        props["SP02M"] = props["SP02M"] * sums_to
        mini.counts = props
        return mini.write(abundance_kind="relative")
    return make


def percentages_with_one_proportion(mini):
    mini.counts = 100 * mini.counts / mini.counts.sum(axis=0)
    mini.counts["SP02M"] = mini.counts["SP02M"] / 100
    return mini.write(abundance_kind="relative")


def same_labels(mini):
    return mini.write(case_label="MS", control_label="MS")


def control_value(column, value):
    def make(mini):
        mini.participants.loc[1, column] = value  # P00H, line 3
        return mini.write()
    return make


def onset_after_age(column, value):
    def make(mini):
        mini.participants[column] = ""
        mini.participants.loc[0, column] = value  # P00M, age 40, line 2
        return mini.write()
    return make


P, S, B, T, A = "participants.tsv", "stool.tsv", "blood.tsv", "taxonomy.tsv", "abundance.tsv"
CASES = [
    # item 4: cohorts that cannot be analysed, after the drops
    Case("all-zero table", all_zero, A, "every value of the abundance table is 0", "export it again"),
    Case("controls below min_depth", controls_below_min_depth, P,
         "only 0 of 6 HHC participants have a stool sample left", "min_depth", column="status"),
    Case("cases with zero reads", cases_zero_reads, P, "only 0 of 7 MS participants", "with their reads",
         column="status"),
    Case("one household", one_household, P, "every participant is in household 'H00'",
         "household_id empty", column="household_id"),
    Case("two controls left", two_controls_left, P, "only 2 of 6 HHC participants", "with their reads",
         column="status"),
    Case("3 cases and 3 controls", three_and_three, P, "no test of MS vs HHC can reach p < 0.05",
         "add participants", column="status"),
    Case("household across sites", households_across_sites, P, "household 'H00' spans 2 sites",
         "same site", line=3, item="H00", column="site"),
    Case("residual df", too_many_covariate_levels, "config", "residual degrees of freedom",
         "remove covariates", column="covariates"),
    Case("covariate confounded with status", covariate_confounded, "config", "status is confounded with sex",
         "remove that covariate", column="covariates"),
    Case("covariate missing for all controls", covariate_missing_for_controls, "config",
         "only 0 HHC participants have every covariate", "fill the missing values", column="covariates"),
    Case("manifest ids not in the table", manifest_ids_not_in_table, S,
         "no stool sample is left for the analysis (13 not in the abundance table)", "column names"),
    Case("one taxon at the rank", one_taxon, A, "only 1 taxon at rank 'phylum'", "finer rank"),
    # item 5: tables that used to raise tracebacks
    Case("duplicate column in participants", duplicate_column("participants"), P,
         "column name 'household_id' appears twice", "rename or delete", line=1, column="household_id"),
    Case("duplicate column in stool manifest", duplicate_column("stool"), S,
         "column name 'participant_id' appears twice", "rename or delete", line=1, column="participant_id"),
    Case("duplicate column in blood manifest", duplicate_column("blood"), B,
         "column name 'participant_id' appears twice", "rename or delete", line=1, column="participant_id"),
    Case("duplicate column in taxonomy", duplicate_column("taxonomy"), T,
         "column name 'taxonomy' appears twice", "rename or delete", line=1, column="taxonomy"),
    Case("duplicate sample column in abundance", duplicate_column("abundance"), A,
         "column name 'SP00M' appears twice", "rename or delete", line=1, column="SP00M"),
    Case("header-only abundance table", header_only_abundance(False), A, "has no feature rows",
         "complete table"),
    Case("header-only abundance table with a tree", header_only_abundance(True), A, "has no feature rows",
         "complete table"),
    Case("sample-less abundance table with a tree", sampleless_abundance_with_tree, A,
         "has no sample columns", "delimiter"),
    Case("BIOM without features", empty_biom, "empty.biom", "has no feature rows", "complete table"),
    Case("unnamed column with values", unnamed_column, P, "header column 11 has no name", "give the column",
         line=1),
    Case("unbalanced quote", unbalanced_quote, S, "a quoted value starts on this line and runs to line 14",
         "close or remove the quote", line=4),
    # item 6: silent misreads
    Case("one proportion sample sums to 1.3", relative(1.3), A, "'SP02M' sum to 1.3, more than 1",
         "one scale", item="SP02M"),
    Case("one percentage sample sums to 1", percentages_with_one_proportion, A, "'SP02M' sum to 1, at most 1",
         "one scale", item="SP02M"),
    Case("case_label == control_label", same_labels, "config", "case_label and control_label are both 'MS'",
         "different values"),
    # item 7: what signals a swapped status stays an error
    Case("control with a disease course", control_value("disease_course", "RRMS"), P,
         "disease_course 'RRMS' is given for a HHC participant (a disease course marks a case",
         "correct the status", line=3, item="P00H",
         column="disease_course"),
    Case("control with a therapy", control_value("dmt", "fingolimod"), P,
         "dmt 'fingolimod' is given for a HHC participant", "correct the status", line=3, item="P00H",
         column="dmt"),
    Case("control with EDSS above 0", control_value("edss", "3"), P, "edss 3 is given for a HHC participant",
         "correct the status", line=3, item="P00H", column="edss"),
    Case("control with a disease duration", control_value("disease_duration", "4"), P,
         "disease_duration 4 is given for a HHC participant", "correct the status", line=3, item="P00H",
         column="disease_duration"),
    Case("age at onset after age", onset_after_age("age_at_onset", "41"), P,
         "age_at_onset 41 is more than the age 40", "cannot exceed age", line=2, item="P00M",
         column="age_at_onset"),
    Case("disease duration longer than age", onset_after_age("disease_duration", "52"), P,
         "disease_duration 52 is more than the age 40", "cannot exceed age", line=2, item="P00M",
         column="disease_duration"),
    Case("disease duration not a number", onset_after_age("disease_duration", "ten"), P,
         "disease_duration 'ten' is not a number", "as a number", line=2, item="P00M",
         column="disease_duration"),
    Case("age at onset implausible", onset_after_age("age_at_onset", "150"), P,
         "age_at_onset 150 is outside the plausible range", "unit", line=2, item="P00M", column="age_at_onset"),
    # item 8: a root cause first, its consequences summarised
    Case("participants header only", header_only_participants, P, "has a header but no participant rows",
         "one row per participant"),
    Case("participants not UTF-8", participants_not_utf8, P, "is not UTF-8", "UTF-8", line=2),
    Case("participants empty", participants_empty, P, "is empty (no header row)", "header row"),
]


def _check(problem, case: Case):
    assert problem.file.endswith(case.file), (problem.file, case.file)
    assert case.text in problem.message, (case.text, problem.message)
    assert case.fix in problem.fix, (case.fix, problem.fix)
    for name in ("line", "item", "column"):
        if getattr(case, name) is not None:
            assert getattr(problem, name) == getattr(case, name), (name, str(problem))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gives_one_clear_problem(mini, tmp_path, capsys, case):
    settings = case.make(mini)
    with pytest.raises(InputError) as caught:
        ingest(settings)
    problems = caught.value.problems
    _check(problems[0], case)
    # One root cause, one message: follow-on problems are summarised, not repeated.
    assert len(problems) <= 3, [str(p) for p in problems]

    out = tmp_path / "out"
    status = cli.main(["--settings", json.dumps(vars(settings)), "--ledger", str(out / "ledger.tsv"),
                       "--cohort", str(out / "cohort")])
    err = capsys.readouterr().err
    assert status == 1 and not out.exists()
    assert "Traceback" not in err and case.text in err and "Fix:" in err


def test_unreadable_participants_are_one_root_cause_and_one_summary_per_manifest(mini):
    settings = participants_not_utf8(mini)
    with pytest.raises(InputError) as caught:
        ingest(settings)
    problems = caught.value.problems
    assert [p.file.rsplit("/", 1)[-1] for p in problems] == [P, S, B]
    assert "is not UTF-8" in problems[0].message
    assert "the participants of its 13 stool sample(s) could not be checked" in problems[1].message
    assert "the participants of its 13 blood sample(s) could not be checked" in problems[2].message
    assert all("participants table first" in p.fix for p in problems[1:])


def test_relative_scale_is_decided_only_when_unambiguous():
    from workflow_scripts.io.abundance import relative_scale

    assert relative_scale(np.array([1.0, 0.98, 0.0]))[0] == "proportions"
    assert relative_scale(np.array([100.0, 99.9, 57.0]))[0] == "percentages"
    assert relative_scale(np.array([0.4]), "metaphlan")[0] == "percentages"
    scale, offending = relative_scale(np.array([1.0, 1.0, 1.3, 1.0]))
    assert scale is None and [j for j, _ in offending] == [2]
    scale, offending = relative_scale(np.array([100.0, 0.9, 100.0]))
    assert scale is None and [j for j, _ in offending] == [1]
    scale, offending = relative_scale(np.array([1.0, 250.0]))
    assert scale is None and [j for j, _ in offending] == [1]


# --- item 7: the conventions real studies use for controls are accepted, with a ledger note

@pytest.mark.parametrize("column, value", [("edss", "0"), ("disease_course", "Control"),
                                           ("disease_course", "HHC"), ("dmt", "untreated"), ("dmt", "Control"),
                                           ("disease_duration", "0")])
def test_control_conventions_are_kept_with_a_note(mini, column, value):
    mini.participants.loc[1, column] = value  # P00H
    cohort, ledger = ingest(mini.write())
    row = ledger[(ledger["entity"] == "participant") & (ledger["id"] == "P00H")].iloc[0]
    assert row["outcome"] == "kept" and row["reason"] == "control_convention"
    assert column in row["detail"] and "not applicable" in row["detail"]
    assert pd.isna(cohort.participants.loc["P00H", column])  # harmonised: not applicable = empty
    others = ledger[(ledger["entity"] == "participant") & (ledger["id"] != "P00H")]
    assert (others["reason"] == "").all()


def test_imsms_style_controls_run(mini):
    """The iMSMS authors' own metadata: every control with edss 0 and course/therapy 'Control'."""
    controls = mini.participants["status"] == "HHC"
    mini.participants.loc[controls, ["disease_course", "dmt", "edss"]] = ["Control", "Control", "0"]
    cohort, ledger = ingest(mini.write())
    notes = ledger[ledger["reason"] == "control_convention"]
    assert len(notes) == controls.sum() == 6
    assert cohort.participants.loc[cohort.participants["status"] == "HHC", ["disease_course", "dmt", "edss"]] \
        .isna().all().all()


def test_disease_duration_and_age_at_onset_are_kept(mini):
    cases = mini.participants["status"] == "MS"
    mini.participants["disease_duration"] = np.where(cases, "7.5", "")
    mini.participants["age_at_onset"] = np.where(cases, "31", "")
    cohort, _ = ingest(mini.write())
    part = cohort.participants
    assert (part.loc[part["status"] == "MS", "disease_duration"] == 7.5).all()
    assert (part.loc[part["status"] == "MS", "age_at_onset"] == 31).all()
    assert part.loc[part["status"] == "HHC", ["disease_duration", "age_at_onset"]].isna().all().all()


# --- the design checks let through what can be analysed

def test_unpaired_design_passes(mini):
    mini.participants["household_id"] = ""
    cohort, _ = ingest(mini.write())
    assert cohort.info["n_households_paired"] == 0 and not cohort.participants["paired"].any()


def test_few_pairs_pass(mini):
    """Two pairs and unpaired participants: the stages analyse the cohort as unpaired; ingest does not stop."""
    cohort, _ = ingest(two_pairs(mini))
    assert cohort.info["n_households_paired"] == 2


def test_minimum_group_sizes_pass(mini):
    """3 cases and 5 controls: C(8, 3) = 56 relabelings, the smallest two-sided p 2/56 < 0.05; one site
    and one therapy: intercept, status and dmt_ocrelizumab leave 5 residual degrees of freedom."""
    keep = ["P00M", "P00H", "P01M", "P01H", "P02M", "P02H", "P03H", "P04H"]
    mini.participants = mini.participants[mini.participants["participant_id"].isin(keep)]
    mini.participants["household_id"] = ""
    mini.participants["site"] = "SiteA"
    mini.stool = mini.stool[mini.stool["participant_id"].isin(keep)]
    mini.counts = mini.counts[[f"S{p}" for p in keep]]
    cohort, _ = ingest(_without_blood(mini.write()))
    assert cohort.participants["status"].value_counts().to_dict() == {"HHC": 5, "MS": 3}


# --- the same through Snakemake: exit status 1, the message, no traceback, nothing written

def _snakemake(tmp_path, config):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "snakemake", "out/ingest/ledger.tsv", "-s", str(REPO / "Snakefile"),
                           "--cores", "1", "--directory", str(tmp_path),
                           "--configfile", str(tmp_path / "config.yaml")], capture_output=True, text=True)


def _config(settings, **extra):
    inputs = {k: getattr(settings, k) for k in ("participants", "stool_manifest", "abundance", "taxonomy")}
    return {"inputs": inputs, "outdir": "out", "rank": "genus", "covariates": ["age"],
            "ingest": {"min_depth": 100}, **extra}


def _relative_config(settings):
    config = _config(settings)
    config["inputs"]["abundance_kind"] = "relative"
    return config


SNAKEMAKE_CASES = {
    "all-zero table": (lambda mini: _config(all_zero(mini)), "every value of the abundance table is 0"),
    "duplicate column": (lambda mini: _config(duplicate_column("participants")(mini)),
                         "column name 'household_id' appears twice"),
    "mixed relative scales": (lambda mini: _relative_config(relative(1.3)(mini)), "'SP02M' sum to 1.3"),
    "config key typo": (lambda mini: {**_config(mini.write()), "covarites": ["age"]},
                        "key 'covarites' is not a known key (did you mean 'covariates'?)"),
    "stage key typo": (lambda mini: {**_config(mini.write()), "differential": {"q_treshold": 0.1}},
                       "key 'differential.q_treshold' is not a known key (did you mean "
                       "'differential.q_threshold'?)"),
    "misplaced key": (lambda mini: {**_config(mini.write()), "min_depth": 100},
                      "did you mean 'ingest.min_depth'?"),
    "enum value typo": (lambda mini: {**_config(mini.write()), "rank": "genera"},
                        "key 'rank' is 'genera', not one of"),
    "same labels": (lambda mini: {**_config(mini.write()), "case_label": "HHC"},
                    "case_label and control_label are both 'HHC'"),
    "missing input file": (lambda mini: {**_config(mini.write()), "inputs": {
        **_config(mini.write())["inputs"], "taxonomy": "no/such/taxonomy.tsv"}},
        "inputs.taxonomy: no/such/taxonomy.tsv"),
}


@pytest.mark.workflow
@pytest.mark.parametrize("name", list(SNAKEMAKE_CASES))
def test_snakemake_stops_cleanly(mini, tmp_path, name):
    make, text = SNAKEMAKE_CASES[name]
    result = _snakemake(tmp_path, make(mini))
    assert result.returncode == 1, result.stderr[-2000:]
    assert text in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "out" / "ingest").exists()
    if "key" in name or "labels" in name or "file" in name:  # config problems: a few lines, not a schema dump
        assert len(result.stderr.strip().splitlines()) <= 4, result.stderr


@pytest.mark.real_data
def test_real_imsms_controls_as_the_authors_record_them(tmp_path):
    """The iMSMS metadata give all 576 controls edss 0, disease_course and treatments 'Control' (issue 12
    item 7: these stopped the run). Written back as the source has them, they are kept with a note."""
    from conftest import real_data
    from workflow_scripts.examples import imsms
    from workflow_scripts.ingest.harmonise import Settings

    source = real_data("imsms_16s")
    config = yaml.safe_load(imsms.convert(source, tmp_path).read_text())
    config.update(case_label="MS", control_label="HHC")
    meta = pd.read_csv(source / "metadata.tsv", sep="\t", dtype=str, keep_default_na=False)
    part = pd.read_csv(tmp_path / "participants.tsv", sep="\t", dtype=str, keep_default_na=False)
    controls = part["status"] == "HHC"
    raw = meta.set_index("sample_id").loc[part["participant_id"], ["disease_course", "treatments", "edss"]]
    part.loc[controls, ["disease_course", "dmt", "edss"]] = raw.to_numpy()[controls.to_numpy()]
    assert set(part.loc[controls, "disease_course"]) == {"Control"} and set(part.loc[controls, "edss"]) == {"0"}
    part.to_csv(tmp_path / "participants.tsv", sep="\t", index=False)
    cohort, ledger = ingest(Settings.from_config(config))
    notes = ledger[ledger["reason"] == "control_convention"]
    assert len(notes) == 576 and (notes["outcome"] == "kept").all()
    assert notes["detail"].iloc[0] == ("disease_course 'Control', dmt 'Control', edss 0 recorded for a HHC: "
                                       "read as not applicable")
    assert cohort.info["n_participants"] == 1152
