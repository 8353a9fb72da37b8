"""Each validation rule: bad input gives a clear error naming file, row, id, column and fix."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from workflow_scripts.errors import InputError
from workflow_scripts.ingest.harmonise import ingest


def problems_of(settings):
    with pytest.raises(InputError) as caught:
        ingest(settings)
    return caught.value.problems


def only(problems, text):
    """The problems whose message contains ``text`` (at least one must)."""
    found = [p for p in problems if text in p.message]
    assert found, f"no problem mentions {text!r}: {[str(p) for p in problems]}"
    return found


def test_missing_required_column(mini):
    mini.participants = mini.participants.drop(columns=["sex"])
    [p] = problems_of(mini.write())
    assert p.file.endswith("participants.tsv") and p.column == "sex"
    assert "missing required column" in p.message and "header" in p.fix


def test_duplicate_participant_id(mini):
    mini.participants.loc[3, "participant_id"] = mini.participants.loc[1, "participant_id"]
    [p] = only(problems_of(mini.write()), "duplicate participant id")
    assert p.line == 5 and p.item == "P00H" and "first seen on line 3" in p.message


def test_duplicate_sample_id(mini):
    mini.stool.loc[4, "sample_id"] = "SP00M"
    [p] = only(problems_of(mini.write()), "duplicate stool sample id")
    assert p.file.endswith("stool.tsv") and p.line == 6 and p.item == "SP00M"


def test_duplicate_feature_id(mini):
    mini.counts.index = ["asv00"] + list(mini.counts.index[1:5]) + ["asv00"] + list(mini.counts.index[6:])
    [p] = only(problems_of(mini.write()), "duplicate feature id")
    assert p.file.endswith("abundance.tsv") and p.line == 7 and p.item == "asv00"


@pytest.mark.parametrize("bad", ["P 01", "P/01", "Pé01"])
def test_id_characters(mini, bad):
    mini.participants.loc[2, "participant_id"] = bad
    mini.stool.loc[2, "participant_id"] = bad
    mini.blood.loc[2, "participant_id"] = bad
    [p] = only(problems_of(mini.write()), "characters outside")
    assert p.line == 4 and p.item == bad and p.column == "participant_id"


def test_sample_of_unknown_participant(mini):
    mini.stool.loc[5, "participant_id"] = "NOBODY"
    [p] = only(problems_of(mini.write()), "not in the participants table")
    assert p.file.endswith("stool.tsv") and p.line == 7 and p.item == "SP02H"


def test_status_not_a_configured_label(mini):
    mini.participants.loc[0, "status"] = "Control"
    [p] = only(problems_of(mini.write()), "status is 'Control'")
    assert p.line == 2 and "MS or HHC" in p.fix


def test_status_labels_are_configurable(mini):
    mini.participants["status"] = mini.participants["status"].map({"MS": "case", "HHC": "control"})
    settings = mini.write(case_label="case", control_label="control")
    mini.participants.loc[mini.participants["status"] == "control", ["disease_course", "dmt", "edss"]] = ""
    cohort, _ = ingest(settings)
    assert set(cohort.participants["status"]) == {"case", "control"}


def test_sex_not_f_or_m(mini):
    mini.participants.loc[4, "sex"] = "female"
    [p] = only(problems_of(mini.write()), "sex is 'female'")
    assert p.line == 6 and p.column == "sex"


@pytest.mark.parametrize("column, value, text", [
    ("age", "forty", "is not a number"), ("age", "430", "outside the plausible range"),
    ("age", "", "age is missing"), ("bmi", "2.4", "outside the plausible range"),
    ("bmi", "x", "is not a number"), ("edss", "11", "outside the plausible range"),
])
def test_numeric_columns(mini, column, value, text):
    mini.participants.loc[0, column] = value
    [p] = only(problems_of(mini.write()), text)
    assert p.line == 2 and p.column == column and p.item == "P00M"


def test_case_only_fields_given_for_a_control(mini):
    mini.participants.loc[1, "dmt"] = "ocrelizumab"
    [p] = only(problems_of(mini.write()), "given for a HHC participant")
    assert p.column == "dmt" and p.line == 3


def test_negative_and_non_numeric_counts(mini):
    mini.counts = mini.counts.astype(object)
    mini.counts.iloc[2, 3] = "lots"
    [p] = only(problems_of(mini.write()), "non-numeric value 'lots'")
    assert p.line == 4 and p.item == "asv02" and p.column == mini.counts.columns[3]
    mini.counts.iloc[2, 3] = -4
    [p] = only(problems_of(mini.write()), "negative abundance")
    assert p.item == "asv02" and p.column == mini.counts.columns[3]


def test_non_integer_counts(mini):
    mini.counts = mini.counts.astype(float)
    mini.counts.iloc[0, 0] = 2.5
    [p] = only(problems_of(mini.write()), "non-integer count 2.5")
    assert "abundance_kind: relative" in p.fix and p.item == "asv00"


def test_relative_abundances_that_are_not_proportions_or_percentages(mini):
    [p, *_] = only(problems_of(mini.write(abundance_kind="relative")), "neither proportions")
    assert "abundance_kind: counts" in p.fix


@pytest.mark.parametrize("value, text", [(2.5, "outside 0-2"), (-1, "outside 0-2")])
def test_dosage_out_of_range(mini, value, text):
    mini.dosages.iloc[1, 4] = value
    [p] = only(problems_of(mini.write()), text)
    assert p.item == "rs0001" and p.column == mini.dosages.columns[4] and p.line == 3


def test_unreadable_gt(mini):
    settings = mini.write(genotypes="vcf-gt")
    text = open(settings.genotypes).read()
    open(settings.genotypes, "w").write(text.replace("\t0/0", "\t0/A", 1))
    [p] = only(problems_of(settings), "unreadable GT '0/A'")
    assert p.file == settings.genotypes and p.line >= 3 and p.item is not None and p.column is not None


@pytest.mark.parametrize("label", ["MS", "HHC"])
def test_cohort_without_cases_or_controls(mini, label):
    other = "HHC" if label == "MS" else "MS"
    mini.participants["status"] = other
    mini.participants[["disease_course", "dmt", "edss"]] = ""
    if other == "MS":
        mini.participants["disease_course"] = "RRMS"
    [p] = only(problems_of(mini.write()), f"no {label} participants")
    assert p.column == "status"


def test_missing_file(mini):
    settings = mini.write()
    settings.taxonomy = str(mini.path("nope.tsv"))
    [p] = problems_of(settings)
    assert p.file.endswith("nope.tsv") and p.message == "file does not exist"


def test_truncated_gzip_table(mini):
    settings = mini.write()
    raw = gzip.compress(open(settings.abundance, "rb").read())
    truncated = mini.path("abundance.tsv.gz")
    truncated.write_bytes(raw[: len(raw) // 2])
    settings.abundance = str(truncated)
    [p] = problems_of(settings)
    assert "truncated" in p.fix and p.file.endswith("abundance.tsv.gz")


@pytest.mark.parametrize("fmt", ["biom", "qza"])
def test_truncated_binary_tables(mini, fmt):
    settings = mini.write(abundance=fmt)
    data = open(settings.abundance, "rb").read()
    open(settings.abundance, "wb").write(data[: len(data) // 3])
    [p] = problems_of(settings)
    assert p.file == settings.abundance and "truncated" in p.fix


def test_ragged_row_points_at_its_line(mini):
    settings = mini.write()
    lines = open(settings.stool_manifest).read().splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0]
    open(settings.stool_manifest, "w").write("\n".join(lines) + "\n")
    [p] = problems_of(settings)
    assert p.line == 4 and "fields" in p.message


def test_all_problems_reported_together(mini):
    """One run lists the problems of several files, not just the first."""
    mini.participants.loc[0, "sex"] = "X"
    mini.participants.loc[1, "age"] = "old"
    mini.stool.loc[2, "participant_id"] = "GHOST"
    mini.counts.iloc[0, 0] = -1
    mini.dosages.iloc[0, 0] = 3
    problems = problems_of(mini.write())
    files = {p.file.rsplit("/", 1)[-1] for p in problems}
    assert files == {"participants.tsv", "stool.tsv", "abundance.tsv", "dosages.tsv"}
    assert len(problems) == 5


def test_error_message_names_everything():
    from workflow_scripts.errors import Problem

    text = str(Problem("p.tsv", "sex is 'X', not one of F, M", "use exactly F or M", line=4, item="P1",
                       column="sex"))
    assert text == "p.tsv, line 4, id 'P1', column 'sex': sex is 'X', not one of F, M. Fix: use exactly F or M"


def test_genotypes_without_blood_manifest(mini):
    settings = mini.write()
    settings.blood_manifest = None
    [p] = problems_of(settings)
    assert p.file == "config" and "blood_manifest" in p.message


def test_discordant_duplicate_blood_samples_are_an_error(mini):
    mini.blood.loc[len(mini.blood)] = {"sample_id": "BP00M_2", "participant_id": "P00M", "snfl": "11",
                                      "gfap": "80"}
    mini.dosages["BP00M_2"] = 2 - mini.dosages["BP00M"]
    mini.dosages.loc["rs0001", ["BP00M", "BP00M_2"]] = [0, 2]
    [p] = only(problems_of(mini.write()), "discordant genotypes")
    assert p.item == "BP00M_2" and "sample swap" in p.fix


def test_rank_without_taxonomy(mini):
    settings = mini.write()
    settings.taxonomy = None
    [p] = problems_of(settings)
    assert "no taxonomy" in p.message and "rank: feature" in p.fix
    settings.rank = "feature"
    cohort, _ = ingest(settings)
    assert cohort.taxa.shape == cohort.features.shape


def test_tree_missing_a_feature(mini):
    settings = mini.write()
    mini.path("tree.nwk").write_text("(" + ",".join(f"{f}:1" for f in mini.counts.index[:-1]) + ");\n")
    settings.tree = str(mini.path("tree.nwk"))
    [p] = problems_of(settings)
    assert "not tips of the tree" in p.message and p.item == "asv11"


def test_large_tables_report_a_bounded_number_of_problems(tmp_path):
    from workflow_scripts.io.abundance import Abundance, check_values

    data = -np.ones((300, 300))
    table = Abundance("big.tsv", "table", data, [f"f{i}" for i in range(300)], [f"s{j}" for j in range(300)])
    with pytest.raises(InputError) as caught:
        check_values(table, "counts")
    assert len(caught.value.problems) == 51
    assert "90000 cells break this rule" in caught.value.problems[0].message


def test_unknown_covariate_is_named(mini):
    settings = mini.write(covariates=("sex", "age", "smoking"))
    [p] = problems_of(settings)
    assert p.file == "config" and p.column == "smoking" and "covariates list" in p.fix
    settings.covariates = ("age", "sequencing_batch")  # stool manifest columns count too
    ingest(settings)
