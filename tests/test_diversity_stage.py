"""The diversity stage on generated and real cohorts, against independent references."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from workflow_scripts.cohort import read_cohort, write_cohort
from workflow_scripts.design import build_design
from workflow_scripts.diversity.alpha_tests import paired_wilcoxon, participant_values
from workflow_scripts.diversity.analysis import DiversitySettings, run
from workflow_scripts.diversity.stability import stability
from workflow_scripts.models.repeated_model import fit_repeated
from workflow_scripts.ingest.harmonise import Settings as IngestSettings
from workflow_scripts.ingest.harmonise import ingest
from workflow_scripts import synthetic



def synthetic_cohort(tmp_path, unpaired=False, **kwargs):
    """A generated cohort through ingest; ``unpaired``: every household_id blanked first."""
    files = synthetic.write(synthetic.generate(**kwargs), tmp_path / "inputs")
    if unpaired:
        part = pd.read_csv(files["participants"], sep="\t", dtype=str, keep_default_na=False, comment="#")
        part["household_id"] = ""
        part.to_csv(files["participants"], sep="\t", index=False)
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
    assert (table["profile"] == "first stool sample per participant").all()
    assert (results.permdisp["profile"] == "first stool sample per participant").all()
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


def gls_se(x, groups, variances, scale):
    """Standard errors sigma2 (X' V^-1 X)^-1 from given variance components (dense V)."""
    V = scale * np.eye(len(x))
    for labels, variance in zip(groups, variances):
        same = labels[:, None] == labels[None, :]
        V = V + variance * same
    A = x.T @ np.linalg.solve(V, x)
    return np.sqrt(np.diag(np.linalg.inv(A)))


def test_alpha_mixed_model_uses_every_sample_as_statsmodels(cohort, results):
    """repeated_samples: all -- every sample, participant within household; statsmodels MixedLM
    (household groups, participant variance component) reaches the same status effect, and the
    standard error is sigma2 (X' V^-1 X)^-1 at statsmodels' variance estimates."""
    samples = cohort.samples.loc[results.alpha.index]
    assert (samples.groupby("participant_id").size() > 1).sum() > 20
    design = build_design(cohort.participants, ["sex", "age", "bmi"], "MS", samples=samples)
    tests = results.alpha_tests.set_index(["test", "metric"])
    keep = samples["participant_id"].isin(design.frame.index).to_numpy()
    owner = samples["participant_id"].to_numpy()[keep]
    x = design.matrix().loc[owner]
    frame = x.drop(columns="intercept").reset_index(drop=True)
    frame.columns = [c.replace("[", "_").replace(".", "_").replace("]", "") for c in frame.columns]
    terms = list(frame.columns)
    frame["household"] = design.frame.loc[owner, "household"].to_numpy()
    frame["participant"] = owner
    for metric in ("shannon", "simpson"):
        ours = tests.loc[("mixed_model", metric)]
        assert ours["n"] == keep.sum() and ours["n_participants"] == len(design.frame)
        assert ours["model"].endswith("+ (1 | household/participant)")
        frame["y"] = results.alpha.loc[keep, metric].to_numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm(f"y ~ {' + '.join(terms)}", frame, groups="household", re_formula="1",
                              vc_formula={"participant": "0 + C(participant)"}).fit(reml=True)
        assert ours["effect"] == pytest.approx(fit.params["status"], abs=1e-4 * (1 + abs(fit.params["status"])))
        se = gls_se(x.to_numpy(), [frame["household"].to_numpy(), owner],
                    [float(fit.cov_re.iloc[0, 0]), float(fit.vcomp[0])], fit.scale)
        assert ours["se"] == pytest.approx(se[list(x.columns).index("status")], rel=1e-3)


def test_alpha_first_sample_model_equals_statsmodels(cohort):
    res = run(cohort, DiversitySettings.from_config(covariates=["sex", "age", "bmi"], metrics=[],
                                                repeated_samples="first"))
    samples = cohort.samples.loc[res.alpha.index]
    values = participant_values(res.alpha[["shannon"]], samples, "first")
    design = build_design(cohort.participants, ["sex", "age", "bmi"], "MS", samples=samples)
    ours = res.alpha_tests.set_index(["test", "metric"]).loc[("mixed_model", "shannon")]
    assert ours["n"] == len(design.frame) and ours["model"].endswith("+ (1 | household)")
    x = design.matrix()
    frame = pd.concat([values.loc[x.index], x.drop(columns="intercept")], axis=1)
    frame.columns = [c.replace("[", "_").replace(".", "_").replace("]", "") for c in frame.columns]
    terms = [c for c in frame.columns if c != "shannon"]
    fit = smf.mixedlm(f"shannon ~ {' + '.join(terms)}", frame, groups=design.households).fit(reml=True)
    assert ours["effect"] == pytest.approx(fit.params["status"], abs=1e-4)
    se = gls_se(x.to_numpy(), [design.households], [float(fit.cov_re.iloc[0, 0])], fit.scale)
    assert ours["se"] == pytest.approx(se[1], rel=1e-3)


def test_paired_wilcoxon_equals_scipy_on_household_differences(cohort, results):
    samples = cohort.samples.loc[results.alpha.index]
    values = participant_values(results.alpha[["shannon"]], samples, "mean")
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


def test_policies_say_what_one_participant_contributes(cohort, results):
    settings = {"covariates": ["sex"], "metrics": ["braycurtis"], "permutations": 9}
    pooled = run(cohort, DiversitySettings.from_config(repeated_samples="sum", **settings))
    dm = pooled.distances["braycurtis"]
    assert set(dm.ids) == set(cohort.participants.index)  # one pooled profile per participant
    assert (pooled.permanova["profile"] == "pooled samples per participant").all()
    mean = run(cohort, DiversitySettings.from_config(repeated_samples="mean", **settings))
    assert (mean.permanova["profile"] == "mean relative profile per participant").all()
    # alpha under sum and mean: the mean of each participant's sample values, one row per participant
    samples = cohort.samples.loc[results.alpha.index]
    means = participant_values(results.alpha, samples, "mean")
    for res in (pooled, mean):
        pd.testing.assert_frame_equal(res.alpha_participants, means)
        model = res.alpha_tests[res.alpha_tests["test"] == "mixed_model"]
        assert (model["n"] == len(cohort.participants)).all()
    # every sample, one participant-mean per participant for the rank test
    pd.testing.assert_frame_equal(results.alpha_participants, means)


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory):
    return synthetic_cohort(tmp_path_factory.mktemp("unpaired"), unpaired=True, n_households=30, n_unpaired=4,
                            n_sites=2, n_species=40, n_variants=5, repeat_fraction=0.4, seed=8)


def test_unpaired_cohort_uses_rank_sum_and_a_participant_intercept(unpaired):
    """Issue 12 item 3: no households at all (the Kiel cohort) -- no crash; the tests that need pairs change."""
    assert unpaired.participants["household_id"].isna().all()
    res = run(unpaired, DiversitySettings.from_config(covariates=["sex", "age"], metrics=["braycurtis"],
                                                  permutations=99, seed=1))
    tests = res.alpha_tests.set_index(["test", "metric"])
    assert set(res.alpha_tests["test"]) == {"rank_sum", "mixed_model"}
    samples = unpaired.samples.loc[res.alpha.index]
    means = participant_values(res.alpha[["shannon"]], samples, "mean")["shannon"]
    status = unpaired.participants.loc[means.index, "status"]
    cases, controls = means[status == "MS"], means[status == "HHC"]
    reference = stats.mannwhitneyu(cases, controls, alternative="two-sided")
    ours = tests.loc[("rank_sum", "shannon")]
    assert ours["statistic"] == reference.statistic and ours["p_value"] == pytest.approx(reference.pvalue)
    assert ours["effect"] == pytest.approx(np.median(np.subtract.outer(cases.to_numpy(), controls.to_numpy())))
    assert ours["n_pairs"] == 0
    model = tests.loc[("mixed_model", "shannon")]
    assert model["model"].endswith("+ (1 | participant)") and model["n"] == len(samples)
    design = build_design(unpaired.participants, ["sex", "age"], "MS", samples=samples)
    owner = samples["participant_id"].to_numpy()
    direct = fit_repeated(res.alpha[["shannon"]], design.matrix().loc[owner], owner)
    assert model["effect"] == pytest.approx(direct.beta[1, 0], rel=1e-12)
    assert (res.permanova.loc[res.permanova["model"] == "status", "strata"] == "none").all()


def test_stability_table_against_a_direct_count(cohort):
    samples = cohort.samples
    design = build_design(cohort.participants, [], "MS", samples=samples)
    taxa = cohort.table("taxa").loc[samples.index]
    table, summary = stability(taxa, samples, design, "counts", 0.1)
    repeated = samples.groupby("participant_id").size()
    repeated = repeated[repeated > 1].index
    assert summary["n_participants_repeated"] == len(repeated) > 20 and summary["levels"] == ["participant", "household"]
    assert not table["feature"].str.endswith("__unassigned").any()
    assert (table.loc[table["icc"].notna(), "icc"].between(0, 1)).all()
    assert table["icc"].is_monotonic_decreasing
    for feature in table["feature"].iloc[[0, 5, -1]]:
        row = table.set_index("feature").loc[feature]
        agree = seen = always = 0
        for pid in repeated:
            present = taxa.loc[samples.index[samples["participant_id"] == pid], feature] > 0
            agree += present.all() or not present.any()
            seen += present.any()
            always += present.all()
        assert row["presence_agreement"] == pytest.approx(agree / len(repeated))
        assert row["persistence"] == pytest.approx(always / seen)
        assert row["icc"] == pytest.approx(
            (row["var_participant"] + row["var_household"])
            / (row["var_participant"] + row["var_household"] + row["var_residual"]))


def test_stability_is_skipped_with_a_note_without_repeated_samples(cohort):
    samples = cohort.samples
    first = samples.drop_duplicates("participant_id")
    design = build_design(cohort.participants, [], "MS", samples=first)
    table, summary = stability(cohort.table("taxa").loc[first.index], first, design, "counts")
    assert table.empty and "skipped" in summary["note"] and summary["n_participants_repeated"] == 0


def test_stability_recovers_the_planted_icc(tmp_path):
    """K = 3 samples each, within-person SD 1: the ICC of the species in every gut is the planted one."""
    gen = dict(n_households=60, n_unpaired=0, n_sites=2, n_species=40, n_variants=5, seed=3,
               samples_per_participant=3, within_sd=1.0)
    truth = synthetic.generate(**gen)
    cohort = synthetic_cohort(tmp_path, **gen)
    design = build_design(cohort.participants, [], "MS", samples=cohort.samples)
    table, _ = stability(cohort.table("taxa").loc[cohort.samples.index], cohort.samples, design, "counts", 0.1)
    core = truth.truth_species.loc[truth.truth_species["prevalence"] == 1, "feature"]
    icc = table.set_index("feature")["icc"].reindex(core).dropna()
    assert len(icc) >= 5
    assert icc.median() == pytest.approx(truth.notes["repeated_samples"]["latent_icc"], abs=0.08)


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


def test_the_policy_is_in_the_validated_config_provenance_records():
    """The schema fills diversity.repeated_samples (default all); provenance.json records the whole config."""
    from conftest import REPO
    from workflow_scripts.config_check import validate_config
    from workflow_scripts.provenance import collect

    config = {"inputs": {"participants": "p.tsv", "stool_manifest": "s.tsv", "abundance": "a.biom",
                         "abundance_kind": "counts"}, "outdir": "results"}
    validate_config(config, REPO / "config" / "schema" / "diversity.schema.yaml")
    assert config["diversity"]["repeated_samples"] == "all"
    recorded = collect(config, [], "results")
    assert recorded["config"]["diversity"]["repeated_samples"] == "all"
