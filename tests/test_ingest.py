"""Awkward but valid input is accepted and every input id is accounted for in the ledger."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.cohort import VARIANT_DTYPES, read_cohort, write_cohort
from workflow_scripts.ingest import cli
from workflow_scripts.ingest.harmonise import ingest


def ledger_row(ledger, entity, id_):
    rows = ledger[(ledger["entity"] == entity) & (ledger["id"] == id_)]
    assert len(rows) == 1, f"{entity} {id_}: {len(rows)} ledger rows"
    return rows.iloc[0]


def add_households(mini, n):
    """Append ``n`` more MS + HHC households (site SiteB) with stool and blood samples."""
    rng = np.random.default_rng(11)
    for h in range(10, 10 + n):
        for status, sex in (("MS", "M"), ("HHC", "F")):
            pid = f"P{h:02d}{status[0]}"
            mini.participants.loc[len(mini.participants)] = {
                "participant_id": pid, "household_id": f"H{h:02d}", "site": "SiteB", "status": status,
                "sex": sex, "age": "45", "bmi": "25", "disease_course": "RRMS" if status == "MS" else "",
                "dmt": "untreated" if status == "MS" else "", "edss": "3" if status == "MS" else ""}
            mini.stool.loc[len(mini.stool)] = {"sample_id": f"S{pid}", "participant_id": pid,
                                               "collection_date": "2020-02-01", "sequencing_batch": "run2"}
            mini.blood.loc[len(mini.blood)] = {"sample_id": f"B{pid}", "participant_id": pid, "snfl": "9",
                                               "gfap": "70"}
            mini.counts[f"S{pid}"] = rng.integers(50, 400, size=len(mini.counts))
            mini.dosages[f"B{pid}"] = rng.integers(0, 3, size=len(mini.dosages)).astype(float)


def test_awkward_but_valid_cohort(mini):
    add_households(mini, 1)  # six pairs are left after H01 drops out (feasibility.MIN_PAIRS)
    mini.counts["EXTRA"] = 500  # a table column with no manifest row
    mini.stool.loc[len(mini.stool)] = {"sample_id": "SP00M_b", "participant_id": "P00M"}  # no column
    mini.counts["SP01M"] = 0  # zero reads
    mini.counts["SP01H"] = 1  # 12 reads, below min_depth
    mini.blood = mini.blood[mini.blood["participant_id"] != "P02H"]  # no blood sample
    mini.dosages = mini.dosages.drop(columns=["BP02H"])
    cohort, ledger = ingest(mini.write())

    assert ledger_row(ledger, "table_column", "EXTRA")["reason"] == "not_in_stool_manifest"
    assert ledger_row(ledger, "stool_sample", "SP00M_b")["reason"] == "not_in_abundance_table"
    assert ledger_row(ledger, "stool_sample", "SP01M")["reason"] == "zero_reads"
    row = ledger_row(ledger, "stool_sample", "SP01H")
    assert row["reason"] == "below_min_depth" and "12 reads" in row["detail"]
    # Both members of household H01 lost their only stool sample.
    for pid in ("P01M", "P01H"):
        assert ledger_row(ledger, "participant", pid)["reason"] == "no_stool_sample"
        assert pid not in cohort.participants.index
        assert ledger_row(ledger, "blood_sample", f"B{pid}")["reason"] == "participant_dropped"
    assert ledger_row(ledger, "participant", "P02H")["outcome"] == "kept"
    assert not cohort.participants.loc["P02H", "has_genotype"]
    assert "P02H" not in set(cohort.genotypes.samples["participant_id"])
    _, dosages = cohort.genotypes.dosage_matrix(cohort.participants.index)
    assert np.isnan(dosages[:, cohort.participants.index.get_loc("P02H")]).all()
    assert cohort.participants.loc["P02H", "n_blood_samples"] == 0
    assert cohort.participants["paired"].to_dict() == {
        **{p: True for p in cohort.participants.index if p != "P99M"}, "P99M": False}
    assert cohort.info["n_households_paired"] == 6


def test_cohort_without_blood_manifest(mini):
    settings = mini.write()
    settings.blood_manifest = settings.genotypes = settings.variants = None
    cohort, ledger = ingest(settings)
    assert cohort.genotypes is None and not cohort.info["has_genotypes"]
    assert not (ledger["entity"].isin(["blood_sample", "variant"])).any()
    assert "snfl" not in cohort.participants.columns


def test_blood_manifest_without_genotypes_keeps_biomarkers(mini):
    settings = mini.write()
    settings.genotypes = settings.variants = None
    cohort, ledger = ingest(settings)
    assert cohort.genotypes is None
    assert (ledger.loc[ledger["entity"] == "blood_sample", "reason"] == "no_genotype_file").all()
    assert cohort.participants["snfl"].eq(10.5).all()


def test_concordant_duplicate_blood_samples_are_merged(mini):
    mini.blood.loc[len(mini.blood)] = {"sample_id": "BP00M_2", "participant_id": "P00M", "snfl": "20.5",
                                      "gfap": "100"}
    mini.dosages["BP00M_2"] = mini.dosages["BP00M"]
    mini.dosages.loc["rs0002", "BP00M"] = np.nan  # missing in one, called in the other
    cohort, ledger = ingest(mini.write())
    row = ledger_row(ledger, "blood_sample", "BP00M_2")
    assert row["outcome"] == "kept" and row["reason"] == "merged_concordant_duplicate"
    j = cohort.participants.index.get_loc("P00M")
    assert list(cohort.genotypes.samples.loc[cohort.genotypes.samples["participant_id"] == "P00M", "sample_id"]) \
        == ["BP00M", "BP00M_2"]
    _, dosages = cohort.genotypes.dosage_matrix(cohort.participants.index)
    np.testing.assert_array_equal(dosages[:, j], mini.dosages["BP00M_2"].to_numpy())
    assert cohort.participants.loc["P00M", "snfl"] == pytest.approx(15.5)
    assert cohort.participants.loc["P00M", "n_blood_samples"] == 2


def test_genotype_column_without_blood_row(mini):
    mini.dosages["STRAY"] = 1.0
    cohort, ledger = ingest(mini.write())
    assert ledger_row(ledger, "genotype_column", "STRAY")["reason"] == "not_in_blood_manifest"


def test_ledger_accounts_for_every_input_id(mini):
    mini.counts["EXTRA"] = 5
    mini.counts.loc["asv05"] = 0  # absent feature
    settings = mini.write()
    cohort, ledger = ingest(settings)
    expected = {
        "participant": set(mini.participants["participant_id"]),
        "stool_sample": set(mini.stool["sample_id"]),
        "blood_sample": set(mini.blood["sample_id"]),
        "table_column": set(mini.counts.columns),
        "genotype_column": set(mini.dosages.columns),
        "feature": set(mini.counts.index),
        "variant": set(mini.dosages.index),
    }
    for entity, ids in expected.items():
        assert set(ledger.loc[ledger["entity"] == entity, "id"]) == ids, entity
    assert not ledger.duplicated(["entity", "id"]).any()
    assert ledger_row(ledger, "feature", "asv05")["reason"] == "absent_from_kept_samples"
    kept = ledger[ledger["outcome"] == "kept"]
    assert set(kept.loc[kept["entity"] == "participant", "id"]) == set(cohort.participants.index)
    assert set(kept.loc[kept["entity"] == "stool_sample", "id"]) == set(cohort.samples.index)
    assert set(kept.loc[kept["entity"] == "feature", "id"]) == set(cohort.features.ids(axis="observation"))
    # The unassigned bucket is named and its members say so.
    assert ledger_row(ledger, "feature", "asv10")["reason"] == "unassigned_at_rank"
    assert "g__unassigned" in cohort.taxa.ids(axis="observation")


def test_rank_table_is_the_sum_of_its_features(mini):
    cohort, _ = ingest(mini.write())
    features, taxa = cohort.table("features"), cohort.table("taxa")
    by_taxon = features.T.groupby(cohort.taxonomy["taxon"]).sum().T
    pd.testing.assert_frame_equal(by_taxon[taxa.columns], taxa, check_names=False)
    assert taxa.loc["SP00M", "g__Blautia"] == mini.counts.loc[["asv01", "asv02"], "SP00M"].sum()


def test_samples_carry_participant_attributes(mini):
    cohort, _ = ingest(mini.write())
    s = cohort.samples.loc["SP03M"]
    assert (s["participant_id"], s["household_id"], s["site"], s["status"], s["dmt"]) == \
        ("P03M", "H03", "SiteB", "MS", "untreated")
    assert s["age"] == 43.0 and s["depth"] == mini.counts["SP03M"].sum()


def test_cohort_round_trip(mini, tmp_path):
    cohort, _ = ingest(mini.write())
    write_cohort(cohort, tmp_path / "c")
    back = read_cohort(tmp_path / "c", with_variants=True)
    pd.testing.assert_frame_equal(back.participants, cohort.participants, check_dtype=False)
    pd.testing.assert_frame_equal(back.samples, cohort.samples, check_dtype=False)
    pd.testing.assert_frame_equal(back.table("taxa"), cohort.table("taxa"))
    pd.testing.assert_frame_equal(back.genotypes.samples, cohort.genotypes.samples, check_dtype=False)
    ids = cohort.participants.index
    np.testing.assert_array_equal(back.genotypes.dosage_matrix(ids)[1], cohort.genotypes.dosage_matrix(ids)[1])
    assert back.variants.loc[0, "label"] == "HLA-DRB1*15:01 tag"
    assert list(back.variants.columns) == list(VARIANT_DTYPES)


def _digest(directory):
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.suffix != ".log"}


def test_cli_is_deterministic_and_writes_nothing_on_bad_input(mini, tmp_path, capsys):
    settings = json.dumps({k: v for k, v in vars(mini.write(abundance="biom", genotypes="vcf.gz")).items()})
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert cli.main(["--settings", settings, "--ledger", str(out / "ledger.tsv"),
                         "--cohort", str(out / "cohort")]) == 0
        runs.append(_digest(out))
    # 10 cohort and ledger files, and the tabix index ingest built for the unindexed VCF
    assert runs[0] == runs[1] and len(runs[0]) == 11 and "cohort/genotype_access/genotypes.vcf.gz.tbi" in runs[0]

    mini.participants.loc[0, "sex"] = "?"
    bad = json.dumps(vars(mini.write()))
    out = tmp_path / "bad"
    assert cli.main(["--settings", bad, "--ledger", str(out / "ledger.tsv"),
                     "--cohort", str(out / "cohort"), "--log", str(tmp_path / "bad.log")]) == 1
    assert not out.exists()
    message = capsys.readouterr().err
    assert "participants.tsv, line 2, id 'P00M', column 'sex'" in message
    assert "Nothing was written" in (tmp_path / "bad.log").read_text()
