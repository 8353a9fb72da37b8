"""The diversity stage on generated and real cohorts, against independent references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from workflow_scripts.cohort import read_cohort, write_cohort
from workflow_scripts.design import build_design
from workflow_scripts.diversity.alpha_tests import mixed_model, paired_wilcoxon, participant_means
from workflow_scripts.diversity.analysis import DiversitySettings, run
from workflow_scripts.ingest.harmonise import Settings as IngestSettings
from workflow_scripts.ingest.harmonise import ingest
from workflow_scripts import synthetic



def synthetic_cohort(tmp_path, **kwargs):
    files = synthetic.write(synthetic.generate(**kwargs), tmp_path / "inputs")
    cohort, _ = ingest(IngestSettings(
        participants=str(files["participants"]), stool_manifest=str(files["stool_manifest"]),
        abundance=str(files["abundance"]), taxonomy=str(files["taxonomy"]), tree=str(files["tree"]),
        blood_manifest=str(files["blood_manifest"]), genotypes=str(files["genotypes"]), rank="species"))
    write_cohort(cohort, tmp_path / "cohort")
    return read_cohort(tmp_path / "cohort")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return synthetic_cohort(tmp_path_factory.mktemp("div"), n_households=60, n_unpaired=6, n_sites=3,
                            n_species=60, n_variants=10, repeat_fraction=0.3, seed=4)


@pytest.fixture(scope="module")
def results(cohort):
    return run(cohort, DiversitySettings.from_config(covariates=["sex", "age", "bmi"], permutations=199, seed=3))


def test_outputs_cover_every_sample_and_metric(cohort, results):
    assert list(results.alpha.index) == list(cohort.samples.index)
    assert set(results.distances) == {"braycurtis", "jaccard", "robust_aitchison", "weighted_unifrac",
                                      "unweighted_unifrac"}
    n_participants = len(cohort.participants)
    for dm in results.distances.values():
        assert dm.shape == (n_participants, n_participants)  # one (first) sample per participant
    table = results.permanova
    assert set(table["model"]) == {"status", "adjusted", "adjusted_marginal"}
    status = table[(table["model"] == "status")]
    assert (status["strata"] == "household").all() and (status["formula"] == "status").all()
    adjusted = table[table["model"] == "adjusted"]
    assert (adjusted["formula"] == "status + sex + age + bmi + site").all()
    assert list(adjusted[adjusted["metric"] == "braycurtis"]["term"]) == \
        ["status", "sex", "age", "bmi", "site", "Residual", "Total"]


def test_marginal_model_equals_sequential_for_the_last_term(results):
    table = results.permanova.set_index(["metric", "model", "term"])
    for metric in ("braycurtis", "jaccard"):
        # The last sequential term is already adjusted for all others: same SS and F.
        seq, marg = table.loc[(metric, "adjusted", "site")], table.loc[(metric, "adjusted_marginal", "site")]
        assert marg["sum_of_squares"] == pytest.approx(seq["sum_of_squares"], rel=1e-10)
        assert marg["pseudo_f"] == pytest.approx(seq["pseudo_f"], rel=1e-10)
        # Status first in the sequence carries more SS than status after everything else.
        assert table.loc[(metric, "adjusted_marginal", "status"), "sum_of_squares"] != \
            pytest.approx(table.loc[(metric, "adjusted", "status"), "sum_of_squares"], rel=1e-6)


def test_planted_site_effect_dominates_status(results):
    table = results.permanova.set_index(["metric", "model", "term"])
    for metric in ("braycurtis", "robust_aitchison"):
        site = table.loc[(metric, "adjusted", "site")]
        status = table.loc[(metric, "adjusted", "status")]
        assert site["r2"] > 2 * status["r2"] and site["p_value"] <= 0.01


def test_alpha_mixed_model_equals_statsmodels(cohort, results):
    samples = cohort.samples.loc[results.alpha.index]
    values = participant_means(results.alpha[["shannon", "simpson"]], samples)
    design = build_design(cohort.participants, ["sex", "age", "bmi"], "MS", samples=samples)
    ours = mixed_model(values, design, "m").set_index("metric")
    x = design.matrix()
    frame = pd.concat([values.loc[x.index], x.drop(columns="intercept")], axis=1)
    frame.columns = [c.replace("[", "_").replace(".", "_").replace("]", "") for c in frame.columns]
    terms = [c for c in frame.columns if c not in ("shannon", "simpson")]
    for metric in ("shannon", "simpson"):
        fit = smf.mixedlm(f"{metric} ~ {' + '.join(terms)}", frame, groups=design.households).fit(reml=True)
        assert ours.loc[metric, "effect"] == pytest.approx(fit.params["status"], abs=1e-4)
        assert ours.loc[metric, "se"] == pytest.approx(fit.bse["status"], rel=1e-3)
        assert ours.loc[metric, "p_value"] == pytest.approx(fit.pvalues["status"], abs=1e-4)


def test_paired_wilcoxon_equals_scipy_on_household_differences(cohort, results):
    samples = cohort.samples.loc[results.alpha.index]
    values = participant_means(results.alpha[["shannon"]], samples)
    part = cohort.participants
    diffs = []
    for _, members in part[part["paired"]].groupby("household_id"):
        case = values.loc[members.index[members["status"] == "MS"], "shannon"].mean()
        control = values.loc[members.index[members["status"] == "HHC"], "shannon"].mean()
        diffs.append(case - control)
    design = build_design(part, [], "MS", samples=samples)
    ours = paired_wilcoxon(values, design).iloc[0]
    reference = stats.wilcoxon(diffs)
    assert ours["n_pairs"] == len(diffs) == 60
    assert ours["statistic"] == reference.statistic and ours["p_value"] == pytest.approx(reference.pvalue)
    assert ours["effect"] == pytest.approx(np.median(diffs))


def test_rarefaction_drops_shallow_samples_to_the_ledger(cohort):
    depth = int(np.percentile(cohort.samples["depth"], 20))
    res = run(cohort, DiversitySettings.from_config(covariates=["sex"], metrics=["braycurtis"],
                                                rarefaction_depth=depth, permutations=9))
    shallow = set(cohort.samples.index[cohort.samples["depth"] < depth])
    assert set(res.ledger.loc[res.ledger["reason"] == "below_rarefaction_depth", "id"]) == shallow
    assert set(res.alpha.index) == set(cohort.samples.index) - shallow


def test_same_seed_same_permanova(cohort):
    settings = DiversitySettings.from_config(covariates=["sex"], metrics=["braycurtis"], permutations=99, seed=11)
    first, second = run(cohort, settings), run(cohort, settings)
    pd.testing.assert_frame_equal(first.permanova, second.permanova)


@pytest.mark.real_data
def test_imsms_site_explains_more_than_status(imsms_cohort):
    cohort, _ = imsms_cohort
    res = run(cohort, DiversitySettings.from_config(covariates=["sex", "age", "bmi"], metrics=["braycurtis"], permutations=99))
    table = res.permanova.set_index(["model", "term"])
    site, status = table.loc[("adjusted", "site")], table.loc[("adjusted", "status")]
    # The authors' weighted-UniFrac table: site R2 0.058 >> disease 0.0138.
    assert site["r2"] > 3 * status["r2"] and site["p_value"] == pytest.approx(0.01)
    assert table.loc[("status", "status"), "strata"] == "household"
    assert 0.001 < table.loc[("status", "status"), "r2"] < 0.01
