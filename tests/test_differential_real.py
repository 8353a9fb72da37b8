"""The real iMSMS 16S cohort at genus rank: the published directions (skipped without ../shared)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from workflow_scripts.differential.consensus import Rule, consensus
from workflow_scripts.differential.methods import run_method
from workflow_scripts.differential.stage import Settings, prepare
from workflow_scripts.examples import imsms
from workflow_scripts.ingest.harmonise import Settings as IngestSettings
from workflow_scripts.ingest.harmonise import ingest

from conftest import real_data

pytestmark = pytest.mark.real_data

# iMSMS Consortium, Cell 2022 (and the shotgun LMM in the source README):
# Akkermansia higher in MS; Faecalibacterium and Blautia lower.
PUBLISHED = {"g__Akkermansia": "up", "g__Faecalibacterium": "down", "g__Blautia": "down"}


@pytest.fixture(scope="module")
def imsms_stage(tmp_path_factory):
    source = real_data("imsms_16s")
    config = yaml.safe_load(imsms.convert(source, tmp_path_factory.mktemp("imsms_differential")).read_text())
    config.update(case_label="MS", control_label="HHC")
    cohort, _ = ingest(IngestSettings.from_config(config))
    settings = Settings.from_dict({"aldex": {"draws": 16}})
    data = prepare(cohort, settings)
    tables = {m: run_method(m, data) for m in settings.methods}
    return data, tables, consensus(tables, Rule.from_settings(settings)).set_index("feature")


def test_design_of_the_real_cohort(imsms_stage):
    data, tables, con = imsms_stage
    assert len(data.design.frame) == 1152 and len(data.pairs.households) == 576
    assert data.pairs.untreated.sum() == 209  # households of untreated patients
    assert data.design.dmt.shape[1] == 6  # one indicator per therapy
    assert 60 <= len(data.features) <= 120 and "g__unassigned" not in data.features
    assert (tables["paired_wilcoxon"]["n_pairs"] == 209).all()
    assert (tables["ancombc"]["n_pairs"] == 576).all()


def test_published_genera_are_called_in_their_direction(imsms_stage):
    data, tables, con = imsms_stage
    for genus, call in PUBLISHED.items():
        assert con.loc[genus, "call"] == call, con.loc[genus]
        sign = 1 if call == "up" else -1
        # every method estimates the published direction
        effects = np.array([t.set_index("feature").loc[genus, "effect"] for t in tables.values()])
        assert (np.sign(effects) == sign).all(), (genus, effects)
        assert con.loc[genus, "n_significant"] >= 2 and con.loc[genus, "min_qvalue"] < 0.01
