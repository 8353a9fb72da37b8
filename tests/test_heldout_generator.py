"""The held-out generator (benchmarks/heldout/): contract files, planted truth, implant, scorer.

The generator is independent of the workflow (it imports nothing from workflow_scripts), so the
checks here read its files with pandas and test them against the input contract and the truth
it claims, on tiny cohorts.
"""

from __future__ import annotations

import ast
import json
import re
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, real_data

sys.path.insert(0, str(REPO / "benchmarks" / "heldout"))
import generate  # noqa: E402
import heldout_implant  # noqa: E402
import heldout_sim  # noqa: E402
import score as scorer  # noqa: E402

ID = re.compile(r"^[A-Za-z0-9._-]+$")
REQUIRED = {"participants": ["participant_id", "household_id", "site", "status", "sex", "age"],
            "stool_manifest": ["sample_id", "participant_id"],
            "blood_manifest": ["sample_id", "participant_id"]}


def read(path):
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("heldout") / "tiny"
    assert generate.main(["--scenario", "realistic", "--seed", "3", "--households", "40", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def easy():
    """A cohort large enough for planted effects to show in the raw counts."""
    world = heldout_sim.simulate_world(heldout_sim.make_knobs("easy", households=160), 5)
    return world, heldout_sim.world_truth(world)


def test_generator_imports_only_the_scientific_stack():
    own = {p.stem for p in (REPO / "benchmarks" / "heldout").glob("*.py")}
    allowed = own | {"numpy", "pandas", "scipy", "yaml", "__future__"} | set(sys.stdlib_module_names)
    for path in (REPO / "benchmarks" / "heldout").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, (path.name, name)


def test_files_follow_the_input_contract(tiny):
    tables = {name: read(tiny / f"{name}.tsv") for name in REQUIRED}
    for name, cols in REQUIRED.items():
        assert set(cols) <= set(tables[name].columns), name
    p, stool, blood = tables["participants"], tables["stool_manifest"], tables["blood_manifest"]
    for col, frame in (("participant_id", p), ("sample_id", stool), ("sample_id", blood)):
        assert frame[col].is_unique and frame[col].map(ID.match).all()
    assert p["household_id"].map(lambda h: h == "" or bool(ID.match(h))).all()
    assert set(p["status"]) == {"MS", "HHC"} and set(p["sex"]) <= {"F", "M"}
    assert p["age"].astype(float).between(0, 120).all()
    hhc = p[p["status"] == "HHC"]
    assert (hhc[["disease_course", "dmt"]] == "").all().all()
    ms = p[p["status"] == "MS"]
    assert set(ms["disease_course"]) <= {"RRMS", "SPMS", "PPMS"} and "untreated" in set(ms["dmt"])
    edss = pd.to_numeric(ms["edss"], errors="coerce").dropna()
    assert edss.between(0, 10).all() and (edss * 2 == (edss * 2).round()).all()
    paired = p[p["household_id"] != ""].groupby("household_id")["status"].agg(sorted)
    assert paired.map(lambda s: s == ["HHC", "MS"]).all()
    assert (p["household_id"] == "").sum() == 10  # unpaired cases + controls
    assert set(stool["participant_id"]) <= set(p["participant_id"])
    assert set(blood["participant_id"]) <= set(p["participant_id"])
    assert stool.groupby("participant_id").size().max() >= 2  # repeated samples
    pd.to_datetime(stool["collection_date"], format="%Y-%m-%d")
    counts = pd.read_csv(tiny / "abundance.tsv", sep="\t", index_col=0)
    assert list(counts.columns) == list(stool["sample_id"])
    assert (counts.to_numpy() >= 0).all() and counts.dtypes.map(lambda d: d.kind == "i").all()
    depth = counts.sum(axis=0)
    assert depth.min() >= 1500 and 10_000 < depth.median() < 30_000
    tax = read(tiny / "taxonomy.tsv")
    assert list(tax["feature_id"]) == list(counts.index)
    assert tax["taxonomy"].str.match(r"^k__\w+; p__\w+; c__\w+; o__[\w-]+; f__[\w\[\]-]*; g__[\w\[\]]*; s__\w*$").all()
    assert (tax["taxonomy"].str.endswith("s__")).mean() > 0.2  # many unassigned at species
    cfg = yaml.safe_load((tiny / "config.yaml").read_text())
    assert cfg["rank"] == "species" and cfg["outdir"].endswith("results")
    for key in ("participants", "stool_manifest", "blood_manifest", "abundance", "taxonomy"):
        assert (tiny / cfg["inputs"][key]).is_file()
    meta = json.loads((tiny / "truth.json").read_text())
    assert meta["scenario"] == "realistic" and meta["seed"] == 3 and meta["knobs"]["households"] == 40


def test_same_seed_same_bytes_other_seed_other_counts(tiny, tmp_path):
    again = tmp_path / "again"
    generate.main(["--scenario", "realistic", "--seed", "3", "--households", "40", "--out", str(again),
                   "--results", str(tiny / "results")])
    for name in ("participants.tsv", "stool_manifest.tsv", "blood_manifest.tsv", "abundance.tsv",
                 "taxonomy.tsv", "truth.tsv", "truth.json"):
        assert (again / name).read_bytes() == (tiny / name).read_bytes(), name
    other = tmp_path / "other"
    generate.main(["--scenario", "realistic", "--seed", "4", "--households", "40", "--out", str(other)])
    assert (other / "abundance.tsv").read_bytes() != (tiny / "abundance.tsv").read_bytes()


def test_truth_is_consistent_with_the_files(tiny):
    truth = read(tiny / "truth.tsv")
    tax = read(tiny / "taxonomy.tsv")
    assert set(truth["rank"]) == {"feature", "species", "genus"}
    assert set(truth.loc[truth["rank"] == "feature", "feature"]) == set(tax["feature_id"])
    parts = tax["taxonomy"].str.split("; ")
    genus, epithet = parts.str[5].str[3:], parts.str[6].str[3:]
    species = np.where((genus != "") & (epithet != ""), "s__" + genus + "_" + epithet, "s__unassigned")
    assert set(truth.loc[truth["rank"] == "species", "feature"]) == set(species)
    genera = np.where(genus != "", "g__" + genus, "g__unassigned")
    assert set(truth.loc[truth["rank"] == "genus", "feature"]) == set(genera)
    assert set(truth["class"]) <= {"high-risk", "protective", "neutral", "ambiguous"}
    eff = truth["effect_size"].replace("", "nan").astype(float)
    called = truth["class"].isin(["high-risk", "protective"])
    assert (truth.loc[called, "planted_members"].astype(int) > 0).all()
    assert ((eff[truth["class"] == "high-risk"] > 0).all() and (eff[truth["class"] == "protective"] < 0).all())
    assert (truth.loc[truth["planted_members"] == "0", "class"] == "neutral").all()
    # traps are MS-neutral; severity taxa carry the progression truth and nothing else
    asvs = truth[truth["rank"] == "feature"]
    for trap in ("therapy_only", "severity", "sex", "age", "bmi", "enterotype"):
        rows = asvs[asvs["trap"] == trap]
        assert len(rows) and (rows["class"] == "neutral").all(), trap
    single = truth[(truth["rank"] == "species") & (truth["feature"] != "s__unassigned")]
    sev = single[single["trap"] == "severity"]
    assert set(sev["progression_class"]) == {"high-risk", "protective"}
    prog_eff = sev["progression_effect"].astype(float)
    assert ((prog_eff > 0) == (sev["progression_class"] == "high-risk")).all()
    assert (single.loc[single["trap"] != "severity", "progression_class"] == "neutral").all()
    meta = json.loads((tiny / "truth.json").read_text())
    for kind, names in meta["planted"].items():
        rows = single[single["feature"].isin(names)]
        assert len(rows) == len(names) and (rows["effect_kind"] == kind).all(), kind
    k = heldout_sim.make_knobs("realistic")
    assert sum(len(v) for v in meta["planted"].values()) == (k.n_abundance + k.n_prevalence + k.n_zero_inflated
                                                            + k.n_site_heterogeneous + k.n_bloom)
    bands = single["prevalence_band"].value_counts()
    assert bands.get("<10%", 0) > 10 and bands.get("30-60%", 0) > 3 and bands.get(">=90%", 0) > 1


def test_effect_size_of_a_plain_abundance_effect_is_its_fold(easy):
    world, truth = easy
    cat = world.species
    sp = truth[truth["rank"] == "species"].set_index("feature")
    for r in cat[cat["ms_kind"] == "abundance"].itertuples():
        assert sp.at[r.species, "effect_size"] == pytest.approx(r.ms_log_fold / np.log(2), abs=1e-9)


def _paired(world):
    """Per species: counts of first samples, aggregated; and the case / control column pairs."""
    stool, p = world.stool, world.participants
    first = (stool["visit"] == 0).to_numpy()
    pidx = stool["participant_index"].to_numpy()[first]
    sp = world.species["species"].to_numpy()[world.features["species_index"]]
    names = np.unique(sp)
    agg = np.array([world.counts[sp == n][:, first].sum(axis=0) for n in names], float)
    rel = agg / agg.sum(axis=0)
    pp = p.iloc[pidx].reset_index(drop=True)
    pairs = pp[pp["household_id"] != ""].reset_index().pivot(index="household_id", columns="status", values="index")
    return names, rel, pairs["MS"].to_numpy(), pairs["HHC"].to_numpy(), pp


def test_planted_effects_show_in_the_raw_counts_in_their_direction(easy):
    world, truth = easy
    names, rel, ms, hhc, pp = _paired(world)
    sp = truth[truth["rank"] == "species"].set_index("feature")
    both = (rel[:, ms] > 0) & (rel[:, hhc] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.where(both, np.log(rel[:, ms] / rel[:, hhc]), np.nan)
    abund = np.nansum(lr, axis=1) / np.maximum(both.sum(axis=1), 1)
    presence = (rel[:, ms] > 0).mean(axis=1) - (rel[:, hhc] > 0).mean(axis=1)
    row = {n: i for i, n in enumerate(names)}
    checked = 0
    for name, t in sp[sp["class"].isin(["high-risk", "protective"])].iterrows():
        sign = 1 if t["class"] == "high-risk" else -1
        i = row[name]
        if t["effect_kind"] == "prevalence":
            assert sign * presence[i] > 0.05, name
        elif t["effect_kind"] == "zero_inflated":
            assert sign * presence[i] > 0.02 and sign * abund[i] > 0, name
        else:
            assert sign * abund[i] > 0.2, (name, abund[i])
        checked += 1
    assert checked == 18
    # unplanted species without traps move much less
    measured = both.sum(axis=1) >= 30
    plain = [row[n] for n, t in sp.iterrows() if t["class"] == "neutral" and t["trap"] == "" and measured[row[n]]]
    assert len(plain) >= 5 and np.median(np.abs(abund[plain])) < 0.2, abund[plain]
    # severity taxa follow the latent severity within cases, biomarkers follow severity and age
    cases = np.flatnonzero(pp["status"].to_numpy() == "MS")
    sev = pp["severity"].to_numpy()[cases]
    for name, t in sp[sp["progression_class"] != "neutral"].iterrows():
        x = rel[row[name], cases]
        ok = x > 0
        r = np.corrcoef(np.log(x[ok]), sev[ok])[0, 1]
        assert np.sign(r) == (1 if t["progression_class"] == "high-risk" else -1), name
    blood = world.blood.merge(world.participants[["participant_id", "age", "severity", "status"]])
    ms_blood = blood[(blood["status"] == "MS") & blood["snfl"].notna()]
    assert np.corrcoef(np.log(ms_blood["snfl"]), ms_blood["severity"])[0, 1] > 0.3
    hhc_blood = blood[(blood["status"] == "HHC") & blood["gfap"].notna()]
    assert np.corrcoef(np.log(hhc_blood["gfap"]), hhc_blood["age"])[0, 1] > 0.2


def test_null_scenario_plants_nothing_but_keeps_the_traps():
    world = heldout_sim.simulate_world(heldout_sim.make_knobs("null", households=30), 2)
    truth = heldout_sim.world_truth(world)
    assert set(truth["class"]) == {"neutral"} and set(truth["progression_class"]) == {"neutral"}
    assert {"therapy_only", "sex", "enterotype"} <= set(";".join(truth["trap"]).split(";"))


def test_bad_knobs_are_refused_with_a_message(tmp_path, capsys):
    assert generate.main(["--out", str(tmp_path / "x"), "--set", "no_such_knob=1"]) == 2
    assert "unknown knob" in capsys.readouterr().err
    assert generate.main(["--out", str(tmp_path / "x"), "--set", "species=20"]) == 2
    assert "cannot plant" in capsys.readouterr().err
    assert generate.parse_value("1.5,3", (1.0, 2.0)) == (1.5, 3.0)


# ------------------------------------------------------------------------------- implant
def test_implant_changes_only_the_chosen_rows_of_case_samples():
    rng = np.random.default_rng(0)
    counts = rng.poisson(rng.gamma(0.5, 40, (30, 1)), (30, 50)) * (rng.random((30, 50)) < 0.7)
    case = np.arange(50) % 2 == 0
    folds = {3: np.full(50, 2.5), 7: np.full(50, 0.4)}
    new, _ = heldout_implant.implant(counts, case, folds, 0.0, {3: 1, 7: -1}, rng)
    assert (new[:, ~case] == counts[:, ~case]).all()
    assert (new.sum(axis=0) == counts.sum(axis=0)).all()
    assert ((new == 0) == (counts == 0)).all()
    other = np.setdiff1d(np.arange(30), [3, 7])
    for c in np.flatnonzero(case):
        d = counts[:, c].sum()
        scaled = counts[:, c].astype(float)
        scaled[3] *= 2.5
        scaled[7] *= 0.4
        expect = scaled * d / scaled.sum()
        # rounding moves a count by less than 2 (1 when no present count had to be kept at 1)
        assert np.abs(new[:, c] - expect).max() < 2.0
        assert np.abs(new[other, c] - counts[other, c] * d / scaled.sum()).max() < 2.0


def test_round_to_total_keeps_the_total_and_the_zeros():
    x = np.array([0.0, 2.4, 3.3, 0.0, 4.3])
    out = heldout_implant.round_to_total(x, 10)
    assert out.sum() == 10 and out[0] == 0 and out[3] == 0 and np.abs(out - x).max() < 1
    out = heldout_implant.round_to_total(np.array([0.2, 0.3, 4.6, 4.9, 0.0]), 10)
    assert out.tolist() == [1, 1, 4, 4, 0]  # present stays present; units come back from the big ones


@pytest.fixture(scope="module")
def implanted(tmp_path_factory):
    source = real_data("imsms_16s")
    out = tmp_path_factory.mktemp("implant")
    assert generate.main(["--implant", str(source), "--seed", "2", "--out", str(out)]) == 0
    return source, out


def test_implant_on_the_imsms_cohort(implanted):
    source, out = implanted
    truth = read(out / "truth.tsv")
    meta = json.loads((out / "truth.json").read_text())
    new = pd.read_csv(out / "abundance.tsv", sep="\t", index_col=0)
    tax = read(out / "taxonomy.tsv").set_index("feature_id")["taxonomy"]
    p = read(out / "participants.tsv")
    asv, asv_tax, _ = heldout_implant.read_source(source)
    old, info = heldout_implant.aggregate_to_genus(asv, asv_tax)
    old = old[new.columns]
    assert (old.sum(axis=0).to_numpy() == new.sum(axis=0).to_numpy()).all()  # depth kept per sample
    assert old.to_numpy().sum() == asv.to_numpy().sum()
    status = p.set_index("participant_id").loc["P" + new.columns, "status"].to_numpy()
    case = status == "MS"
    assert (new.loc[:, ~case].to_numpy() == old.loc[:, ~case].to_numpy()).all()
    assert ((new.to_numpy() == 0) == (old.to_numpy() == 0)).all()
    names = info.set_index("feature_id")["name"]
    planted = truth[truth["class"].isin(["high-risk", "protective"])]
    assert sorted(planted.loc[planted["class"] == "high-risk", "feature"]) == meta["implanted"]["high-risk"]
    assert len(planted) == 10 and (planted["prevalence"].astype(float) >= 0.3).all()
    chosen = set(planted["feature"]) | set(meta["implanted"]["severity"])
    rows_other = ~names.reindex(new.index).isin(chosen).to_numpy()
    ratio = new.to_numpy()[rows_other][:, case].sum(axis=0) / old.to_numpy()[rows_other][:, case].sum(axis=0)
    for name, t in planted.iterrows():
        fid = names.index[names == t["feature"]]
        g_new = new.loc[fid].to_numpy()[0, case]
        g_old = old.loc[fid].to_numpy()[0, case]
        present = g_old > 20
        fold = np.median(g_new[present] / (g_old[present] * ratio[present]))
        assert np.log2(fold) == pytest.approx(float(t["effect_size"]), abs=0.1), t["feature"]
    assert tax.str.count(";").eq(5).all()
    # labels swapped in about half of the 576 households
    assert 240 < meta["swapped_households"] < 336
    assert (p.loc[p["status"] == "HHC", ["disease_course", "dmt", "edss"]] == "").all().all()


# ------------------------------------------------------------------------------- scorer
def _classification(truth_rows, calls):
    return pd.DataFrame({"feature": truth_rows["feature"], "class": calls,
                         "progression_class": truth_rows["progression_class"].replace("ambiguous", "neutral")})


def test_scorer_on_known_answers(tiny, tmp_path):
    truth = read(tiny / "truth.tsv")
    sp = truth[truth["rank"] == "species"].reset_index(drop=True)
    perfect = sp["class"].replace("ambiguous", "neutral")
    path = tmp_path / "perfect.tsv"
    _classification(sp, perfect).to_csv(path, sep="\t", index=False)
    res = scorer.score(path, tiny / "truth.tsv")
    o = res["ms_risk"]["overall"]
    n_eff = int(sp["class"].isin(["high-risk", "protective"]).sum())
    assert res["rank"] == "species" and o["true_effects"] == n_eff
    assert o["precision"] == 1.0 and o["recall"] == 1.0 and o["calls_on_nulls"] == 0
    assert res["progression"]["overall"]["recall"] == 1.0
    # one null called, one effect flipped, one effect left untested
    calls = perfect.copy()
    null_i = sp.index[(sp["class"] == "neutral") & (sp["trap"] == "therapy_only")][0]
    eff_i = sp.index[sp["class"] == "high-risk"][:2]
    calls[null_i] = "high-risk"
    calls[eff_i[0]] = "protective"
    table = _classification(sp, calls).drop(index=eff_i[1])
    table.to_csv(path, sep="\t", index=False)
    o2 = scorer.score(path, tiny / "truth.tsv")["ms_risk"]
    assert o2["overall"]["calls_on_nulls"] == 1 and o2["overall"]["wrong_direction"] == 1
    assert o2["overall"]["recall"] == pytest.approx((n_eff - 2) / n_eff)
    assert o2["overall"]["precision"] == pytest.approx((n_eff - 2) / n_eff)  # n_eff - 1 tested effects + 1 null call
    assert o2["nulls_by_trap"]["therapy_only"]["calls_on_nulls"] == 1
    assert o2["overall"]["true_effects_tested"] == n_eff - 1
    assert "ms_risk" in scorer.render(scorer.score(path, tiny / "truth.tsv"))
