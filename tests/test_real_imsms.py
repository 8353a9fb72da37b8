"""The real iMSMS 16S cohort ingests completely (skipped when ../shared is absent)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from workflow_scripts.examples import imsms

from conftest import REPO, real_data

pytestmark = pytest.mark.real_data


def test_all_1152_samples_ingest_at_genus_rank(imsms_cohort):
    cohort, ledger = imsms_cohort
    assert cohort.info["n_samples"] == 1152 and cohort.info["n_participants"] == 1152
    assert cohort.info["n_households_paired"] == 576 and cohort.participants["paired"].all()
    assert (cohort.participants["status"].value_counts() == 576).all()
    assert cohort.participants["site"].nunique() == 7
    assert cohort.info["n_features"] == 7271  # every ASV has >= 10 reads in the source
    taxa = cohort.table("taxa")
    for genus in ("g__Akkermansia", "g__Faecalibacterium", "g__Blautia", "g__unassigned"):
        assert genus in taxa.columns
    # Aggregation loses no reads.
    assert taxa.to_numpy().sum() == cohort.table("features").to_numpy().sum()
    assert taxa.sum(axis=1).min() == 1993  # the README's minimum depth


def test_ledger_is_complete(imsms_cohort):
    cohort, ledger = imsms_cohort
    counts = ledger.groupby("entity").size().to_dict()
    assert counts == {"participant": 1152, "stool_sample": 1152, "table_column": 1152, "feature": 7271}
    assert (ledger["outcome"] == "kept").all()
    unassigned = ledger[ledger["reason"] == "unassigned_at_rank"]
    assert len(unassigned) == (cohort.taxonomy["taxon"] == "g__unassigned").sum() > 0


def test_converter_keeps_the_authors_control_conventions_and_disease_duration(tmp_path):
    source = real_data("imsms_16s")
    imsms.convert(source, tmp_path)
    part = pd.read_csv(tmp_path / "participants.tsv", sep="\t", dtype=str, keep_default_na=False)
    controls = part[part["status"] == "HHC"]
    assert (controls[["disease_course", "dmt"]] == "Control").all().all() and (controls["edss"] == "0").all()
    assert (controls["disease_duration"] == "").all()
    meta = pd.read_csv(source / "metadata.tsv", sep="\t", dtype=str, keep_default_na=False)
    cases = part[part["status"] == "MS"]
    assert cases["disease_duration"].tolist() == meta.loc[meta["disease"] == "MS", "disease_duration"].tolist()
    assert (cases["disease_duration"] != "").sum() == 575
    cases = part[part["status"] == "MS"]
    assert cases["dmt"].value_counts()["untreated"] == 209
    assert set(cases["dmt"]) == {"untreated", "interferon", "dimethyl_fumarate", "fingolimod",
                                 "glatiramer_acetate", "anti_cd20", "natalizumab"}


def test_example_config_is_valid():
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "examples" / "imsms_16s.yaml").read_text())
    validate(config, str(REPO / "config" / "schema" / "config.schema.yaml"))
    assert config["rank"] == "genus" and config["ingest"]["min_depth"] == 1000
