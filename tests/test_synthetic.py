"""Tests of the synthetic cohort generator (workflow_scripts.synthetic)."""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
from pathlib import Path

import biom
import h5py
import numpy as np
import pandas as pd
import pytest
import skbio

from workflow_scripts.synthetic import (
    ABUNDANCE_FORMATS, BUNDLED, CLASSES, GENOTYPE_FORMATS, LEDGER_REASONS, bundled, generate, main, write,
)
from workflow_scripts.synthetic.taxa import ANCHORS
from workflow_scripts.synthetic.writers import bgzf_compress

ID = re.compile(r"^[A-Za-z0-9._-]+$")
CONTRACT = {
    "participants": ["participant_id", "household_id", "site", "status", "sex", "age", "bmi",
                     "disease_course", "dmt", "edss", "disease_duration", "age_at_onset"],
    "stool_manifest": ["sample_id", "participant_id", "collection_date", "sequencing_batch"],
    "blood_manifest": ["sample_id", "participant_id", "collection_date", "snfl", "gfap"],
    "taxonomy": ["feature_id", "taxonomy"],
    "variants": ["variant_id", "gene_or_locus", "label"],
    "truth_species": ["feature", "genus", "class", "log_fold_change", "dmt", "dmt_log_fold_change",
                      "severity_effect", "progression_class", "prevalence", "mean_relative_abundance"],
    "truth_associations": ["variant_id", "feature", "effect", "beta"],
    "truth_ledger": ["entity", "id", "reason"],
}
MIN_DEPTH = 1000  # the workflow's default minimum stool depth


# --------------------------------------------------------------------------- fixtures and readers


@pytest.fixture(scope="module")
def small():
    return generate(edge_cases=True)


@pytest.fixture(scope="module")
def small_dir(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    return write(small, out)


@pytest.fixture(scope="module")
def large():
    """~200 households: enough to see the planted effects, fast to generate."""
    return generate(n_households=200, n_unpaired=0, seed=11)


@pytest.fixture(scope="module")
def large_null():
    return generate(n_households=200, n_unpaired=0, seed=11, null=True)


def read_tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", comment="#", dtype=str, keep_default_na=False)


def read_abundance(path: Path, fmt: str) -> pd.DataFrame:
    """Features × samples, as the workflow's ingest would read it."""
    if fmt in ("biom", "biom-json"):
        return biom.load_table(str(path)).to_dataframe(dense=True)
    if fmt in ("tsv", "csv"):
        return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", index_col=0)
    if fmt == "qza":
        with zipfile.ZipFile(path) as archive:
            inner = [n for n in archive.namelist() if n.endswith("/data/feature-table.biom")]
            assert len(inner) == 1
            with h5py.File(io.BytesIO(archive.read(inner[0])), "r") as h5:
                return biom.Table.from_hdf5(h5).to_dataframe(dense=True)
    raise AssertionError(fmt)


def read_vcf_ds(path: Path) -> pd.DataFrame:
    """DS of every variant × sample, parsed from the FORMAT field."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as handle:
        lines = [line.rstrip("\n").split("\t") for line in handle if not line.startswith("##")]
    header, rows = lines[0], lines[1:]
    assert header[:9] == ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
    fmt = rows[0][8].split(":")
    ds = fmt.index("DS")
    values = [[float(cell.split(":")[ds]) for cell in row[9:]] for row in rows]
    return pd.DataFrame(values, index=[r[2] for r in rows], columns=header[9:])


def household_clr_diff(cohort, t_statistic: bool = False) -> pd.Series:
    """Mean within-household CLR difference MS − HHC per species (first stool sample each),
    or its one-sample t statistic."""
    species = cohort.species_counts()
    first = cohort.stool_manifest.drop_duplicates("participant_id")
    first = first[first["sample_id"].isin(species.columns)]
    x = np.log(species[first["sample_id"]].to_numpy() + 0.5)
    clr = pd.DataFrame(x - x.mean(axis=0), index=species.index, columns=first["participant_id"].to_numpy())
    p = cohort.participants.dropna(subset=["household_id"])
    ms = p[p["status"] == "MS"].set_index("household_id")["participant_id"]
    hhc = p[p["status"] == "HHC"].set_index("household_id")["participant_id"].loc[ms.index]
    diff = clr[ms.to_numpy()].to_numpy() - clr[hhc.to_numpy()].to_numpy()
    stat = diff.mean(axis=1)
    if t_statistic:
        stat = stat / (diff.std(axis=1, ddof=1) / np.sqrt(diff.shape[1]))
    return pd.Series(stat, index=species.index)


def hla_frequencies(cohort) -> tuple[float, float]:
    """Alternate-allele frequency of rs3135388 in MS and in HHC (one column per participant)."""
    blood = cohort.blood_manifest.drop_duplicates("participant_id").set_index("sample_id")["participant_id"]
    g = cohort.genotypes.loc["rs3135388", blood.index]
    status = cohort.participants.set_index("participant_id").loc[blood.to_numpy(), "status"].to_numpy()
    return g[status == "MS"].mean() / 2, g[status == "HHC"].mean() / 2


# --------------------------------------------------------------------------- contract


def test_files_have_exact_contract_columns(small_dir):
    for name, columns in CONTRACT.items():
        assert list(read_tsv(small_dir[name]).columns) == columns, name
    assert set(small_dir) == set(CONTRACT) | {"abundance", "tree", "genotypes", "truth"}


def test_ids_are_valid_and_unique(small, small_dir):
    ids = {
        "participant_id": read_tsv(small_dir["participants"])["participant_id"],
        "stool sample_id": read_tsv(small_dir["stool_manifest"])["sample_id"],
        "blood sample_id": read_tsv(small_dir["blood_manifest"])["sample_id"],
        "feature_id": read_tsv(small_dir["taxonomy"])["feature_id"],
        "variant_id": read_tsv(small_dir["variants"])["variant_id"],
    }
    for name, values in ids.items():
        assert values.map(ID.match).all(), name
        assert values.is_unique, name
    for values in (small.counts.columns, small.genotypes.columns, small.participants["household_id"].dropna(),
                   small.participants["site"], small.stool_manifest["sequencing_batch"]):
        assert all(ID.match(v) for v in values)


def test_participants_follow_the_design(small, small_dir):
    p = read_tsv(small_dir["participants"])
    paired = p[p["household_id"] != ""]
    assert len(paired) == 2 * BUNDLED["n_households"]
    assert (paired.groupby("household_id")["status"].agg(sorted).map(tuple) == ("HHC", "MS")).all()
    assert (paired.groupby("household_id")["site"].nunique() == 1).all()
    unpaired = p[p["household_id"] == ""]
    assert len(unpaired) == BUNDLED["n_unpaired"] and set(unpaired["status"]) == {"MS", "HHC"}
    ms, hhc = p[p["status"] == "MS"], p[p["status"] == "HHC"]
    assert set(ms["disease_course"]) <= {"RRMS", "SPMS", "PPMS"} and (hhc["disease_course"] == "").all()
    assert (hhc[["dmt", "edss", "disease_duration", "age_at_onset"]] == "").all().all()
    assert ms["dmt"].str.len().gt(0).all() and "untreated" in set(ms["dmt"])
    edss = ms["edss"].astype(float)
    assert edss.between(0, 10).all() and ((edss * 2) % 1 == 0).all() and not (edss == 0.5).any()
    duration, onset = ms["disease_duration"].astype(float), ms["age_at_onset"].astype(float)
    assert (duration > 0).all() and np.allclose(ms["age"].astype(float) - onset, duration, atol=0.051)
    assert onset.between(12, 60).all()
    assert set(p["sex"]) == {"F", "M"} and p["age"].astype(int).between(18, 85).all()
    assert p["bmi"].astype(float).between(12, 60).all()
    assert p["site"].nunique() == BUNDLED["n_sites"]


def test_demography_and_treatments_on_a_large_cohort(large):
    p = large.participants
    ms = p[p["status"] == "MS"]
    assert 0.6 < (ms["sex"] == "F").mean() < 0.8  # 200 MS: SE ≈ 0.03
    assert 0.25 < (ms["dmt"] == "untreated").mean() < 0.45
    assert ms["dmt"].nunique() == 6  # untreated + five drugs


def test_stool_samples_depth_and_repeats(large):
    m = large.stool_manifest
    per_person = m.groupby("participant_id").size()
    n = len(large.participants)
    assert (per_person >= 1).all() and len(per_person) == n
    assert (per_person >= 2).sum() == round(0.2 * n)
    assert (per_person == 3).sum() > 0
    depth = large.counts.sum(axis=0)
    assert 17_000 < depth.median() < 23_000 and depth.min() >= 2000
    assert pd.to_datetime(m["collection_date"], format="%Y-%m-%d").notna().all()
    # counts are integers, features are 1-3 per species
    assert large.counts.dtypes.map(lambda d: np.issubdtype(d, np.integer)).all()
    assert large.feature_species.value_counts().between(1, 3).all()


# --------------------------------------------------------------------------- repeated samples


def repeated_cohort(**kwargs):
    return generate(n_households=100, n_unpaired=0, n_sites=3, n_species=60, n_variants=5, seed=2,
                    samples_per_participant=kwargs.pop("k", 3), **kwargs)


def core_species_clr(cohort):
    """CLR of the species present in every gut (samples x species) and each sample's participant."""
    from workflow_scripts.transforms import clr_abundance

    counts = cohort.species_counts().T
    participant = cohort.stool_manifest.set_index("sample_id").loc[counts.index, "participant_id"]
    truth = cohort.truth_species.set_index("feature")
    core = [f for f in truth.index[truth["prevalence"] == 1] if f in counts.columns]
    return clr_abundance(counts, "counts")[core], participant


@pytest.mark.parametrize("within_sd", [0.5, 1.5])
def test_k_samples_per_participant_with_the_planted_within_person_variance(within_sd):
    """Every participant gives K samples; the nested model recovers the planted latent ICC."""
    from workflow_scripts.models.repeated_model import fit_repeated

    cohort = repeated_cohort(within_sd=within_sd)
    m = cohort.stool_manifest
    assert (m.groupby("participant_id").size() == 3).all()
    dates = pd.to_datetime(m["collection_date"])
    assert (dates.groupby(m["participant_id"]).diff().dropna().dt.days >= 60).all()  # months apart, in order
    truth = cohort.notes["repeated_samples"]
    between = 0.5**2 + 0.5**2 + 0.7**2
    assert truth["latent_icc"] == pytest.approx(between / (between + within_sd**2))
    assert cohort.params["samples_per_participant"] == 3 and cohort.params["within_sd"] == within_sd
    clr, participant = core_species_clr(cohort)
    people = cohort.participants.set_index("participant_id").loc[participant]
    X = np.column_stack([np.ones(len(clr)), (people["status"] == "MS").to_numpy(float),
                         pd.get_dummies(people["site"], drop_first=True, dtype=float).to_numpy()])
    fit = fit_repeated(clr, X, participant.to_numpy(), people["household_id"].to_numpy())
    assert np.median(fit.icc) == pytest.approx(truth["latent_icc"], abs=0.06)


def test_time_correlation_makes_close_samples_alike():
    cohort = repeated_cohort(k=4, within_sd=1.0, time_correlation=0.8)
    lags = cohort.notes["repeated_samples"]["latent_correlation_by_lag"]
    assert len(lags) == 3 and lags[0] > lags[1] > lags[2] > cohort.notes["repeated_samples"]["latent_icc"]
    clr, participant = core_species_clr(cohort)
    values = clr.to_numpy().reshape(-1, 4, clr.shape[1])  # participants x visits x species (rows in visit order)
    assert (participant.to_numpy().reshape(-1, 4) == participant.to_numpy().reshape(-1, 4)[:, :1]).all()
    lag1 = ((values[:, 1:] - values[:, :-1]) ** 2).mean()
    lag3 = ((values[:, 3] - values[:, 0]) ** 2).mean()
    assert lag1 < 0.6 * lag3  # AR(1), rho 0.8: expected ratio (1 - 0.8) / (1 - 0.8^3) = 0.41


def test_presence_turnover_makes_species_come_and_go():
    def agreement(cohort):
        counts = cohort.species_counts().T > 0
        participant = cohort.stool_manifest.set_index("sample_id").loc[counts.index, "participant_id"]
        by_person = counts.groupby(participant.to_numpy())
        return (by_person.all() | ~by_person.any()).mean().mean()

    stable, turning = repeated_cohort(), repeated_cohort(presence_turnover=0.3)
    assert agreement(turning) < agreement(stable) - 0.1
    np.testing.assert_allclose(turning.truth_species["prevalence"], stable.truth_species["prevalence"])


def test_cli_writes_k_samples_and_the_truth(tmp_path):
    assert main(["--outdir", str(tmp_path), "--households", "6", "--unpaired", "0", "--variants", "3",
                 "--samples-per-participant", "4", "--within-sd", "1.2", "--time-correlation", "0.5",
                 "--abundance-format", "tsv", "--genotype-format", "dosage"]) == 0
    stool = pd.read_csv(tmp_path / "stool_manifest.tsv", sep="\t", comment="#")
    assert (stool.groupby("participant_id").size() == 4).all()
    truth = json.loads((tmp_path / "truth.json").read_text())["notes"]["repeated_samples"]
    assert truth["within_variance"] == pytest.approx(1.44) and len(truth["latent_correlation_by_lag"]) == 3


def test_repeated_options_are_checked():
    for bad in ({"samples_per_participant": 0}, {"time_correlation": 1.0}, {"presence_turnover": 1.5},
                {"within_sd": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            generate(**bad)
    assert "repeated_samples" not in generate(n_households=4, n_variants=2).notes


def test_taxonomy_strings_and_unassigned_bucket(small):
    tax = small.taxonomy["taxonomy"]
    parts = tax.str.split("; ")
    assert (parts.map(len) == 7).all()
    assert parts.map(lambda x: [s[:3] for s in x] == ["k__", "p__", "c__", "o__", "f__", "g__", "s__"]).all()
    blank_species = (parts.str[6] == "s__").mean()
    assert 0.03 <= blank_species <= 0.08
    assert (parts.str[5] == "g__").sum() == 2
    named = parts.str[6][parts.str[6] != "s__"]
    assert named.str.fullmatch(r"s__[A-Z][a-z]+_[a-z0-9]+").all()
    # the species part repeats the genus
    genus = parts.str[5][parts.str[6] != "s__"].str[3:]
    assert (named.str[3:].str.split("_").str[0] == genus).all()
    # every species is still seen through at least one labelled feature
    labelled = small.feature_species[(parts.str[6] != "s__").to_numpy()]
    assert set(labelled) == set(small.lineage.index)


def test_tree_is_readable_and_covers_all_features(small, small_dir):
    tree = skbio.TreeNode.read(str(small_dir["tree"]))
    tips = {t.name for t in tree.tips()}
    assert tips == set(small.counts.index)
    lengths = [n.length for n in tree.traverse() if not n.is_root()]
    assert min(lengths) > 0
    assert all(len(n.children) != 1 for n in tree.non_tips())


def test_blood_biomarkers(large):
    b = large.blood_manifest.merge(large.participants, on="participant_id")
    assert (b[["snfl", "gfap"]] > 0).all().all()
    log_snfl = np.log(b["snfl"])
    ms = b["status"] == "MS"
    assert log_snfl[ms].mean() - log_snfl[~ms].mean() > 0.3
    assert np.corrcoef(b["age"], log_snfl)[0, 1] > 0.2
    assert np.corrcoef(b.loc[ms, "edss"], log_snfl[ms])[0, 1] > 0.2
    # higher BMI, lower markers (dilution), in everyone
    assert np.corrcoef(b["bmi"], log_snfl)[0, 1] < 0


def test_edss_grows_with_duration_course_and_severity(large):
    p = large.participants[large.participants["status"] == "MS"]
    edss, duration = p["edss"].astype(float), p["disease_duration"].astype(float)
    assert np.corrcoef(edss, duration)[0, 1] > 0.2
    by_course = edss.groupby(p["disease_course"]).mean()
    assert by_course["SPMS"] > by_course["RRMS"] + 1 and by_course["PPMS"] > by_course["RRMS"] + 1
    assert 1.5 < by_course["RRMS"] < 3 and 1 < edss.std() < 2.5
    assert p.groupby("disease_course")["disease_duration"].mean()["SPMS"] > 12


def test_severity_truth_and_its_visible_effect(large, large_null):
    t = large.truth_species.set_index("feature")
    planted = t[t["severity_effect"] != 0]
    assert len(planted) == 2 * round(0.05 * len(t))
    assert set(planted["severity_effect"]) == {0.8, -0.8} and (planted["prevalence"] == 1).all()
    assert (planted["progression_class"] == np.where(planted["severity_effect"] > 0, "high-risk", "protective")).all()
    assert (planted["class"] == "neutral").all()  # apart from the MS-risk truth
    assert not planted.index.isin([f"s__{a}" for a in ANCHORS]).any()
    assert (t.loc[t["severity_effect"] == 0, "progression_class"] == "neutral").all()
    assert not set(planted.index) & set(large.truth_associations["feature"])
    assert not set(planted.index) & {d["feature"] for d in large.notes["covariate_effects"]}
    assert (large_null.truth_species["severity_effect"] == 0).all()
    assert (large_null.truth_species["progression_class"] == "neutral").all()
    # Planted minus null CLR (same noise) of a severity species follows EDSS in MS, is flat in HHC.
    first = large.stool_manifest.drop_duplicates("participant_id").set_index("participant_id")["sample_id"]

    def clr(cohort):
        x = np.log(cohort.species_counts().loc[:, first.to_numpy()] + 0.5)
        return (x - x.mean(axis=0)).set_axis(first.index, axis=1)

    shift = (clr(large) - clr(large_null)).loc[planted.index].T
    p = large.participants.set_index("participant_id").loc[first.index]
    ms = (p["status"] == "MS").to_numpy()
    r = [np.corrcoef(shift.loc[ms, f], p.loc[ms, "edss"])[0, 1] * np.sign(planted.loc[f, "severity_effect"])
         for f in planted.index]
    assert min(r) > 0.3
    # in HHC only multinomial sampling noise differs (~0.1), in MS the planted 0.8 x |severity| (~0.7)
    assert shift.loc[ms].abs().to_numpy().mean() > 4 * shift.loc[~ms].abs().to_numpy().mean()


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", ["biom", "biom-json", "tsv", "csv", "qza"])
def test_abundance_formats_read_back(small, tmp_path, fmt):
    paths = write(small, tmp_path, abundance_format=fmt)
    table = read_abundance(paths["abundance"], fmt)
    expected = small.counts
    assert list(table.columns) == list(expected.columns)
    assert list(table.index) == list(expected.index)
    assert np.array_equal(table.to_numpy(), expected.to_numpy())


def test_qza_layout(small, tmp_path):
    path = write(small, tmp_path, abundance_format="qza")["abundance"]
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        uid = names[0].split("/")[0]
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uid)
        assert set(names) >= {f"{uid}/metadata.yaml", f"{uid}/data/feature-table.biom"}
        meta = archive.read(f"{uid}/metadata.yaml").decode()
        assert archive.getinfo(f"{uid}/metadata.yaml").date_time == (2000, 1, 1, 0, 0, 0)
    assert f"uuid: {uid}" in meta
    assert "type: FeatureTable[Frequency]" in meta and "format: BIOMV210DirFmt" in meta


def test_metaphlan_profile(small, tmp_path):
    path = write(small, tmp_path, abundance_format="metaphlan")["abundance"]
    lines = path.read_text().splitlines()
    assert lines[0] == "#mpa_vJan21_CHOCOPhlAnSGB_202103"
    assert lines[1].split("\t") == ["clade_name", *small.counts.columns]
    profile = pd.read_csv(path, sep="\t", comment="#", index_col=0)
    depth = small.counts.sum(axis=0)
    rank = profile.index.str.count(r"\|")
    assert sorted(set(rank)) == list(range(7))
    for r in range(7):
        sums = profile[rank == r].sum(axis=0)
        assert np.allclose(sums[depth > 0], 100, atol=1e-3), r
        assert np.allclose(sums[depth == 0], 0)
    species = profile[rank == 6]
    assert "k__Bacteria|p__Verrucomicrobia|c__Verrucomicrobiae|o__Verrucomicrobiales|f__Akkermansiaceae|" \
           "g__Akkermansia|s__Akkermansia_muciniphila" in species.index
    # species values are the species-level relative abundances
    expected = small.species_counts() / depth.replace(0, 1) * 100
    got = species.rename(index=lambda s: s.rsplit("|", 1)[1])
    expected = expected.loc[got.index]
    assert np.allclose(got.to_numpy(), expected.to_numpy(), atol=1e-5)


@pytest.mark.parametrize("fmt", GENOTYPE_FORMATS)
def test_genotype_formats_read_back(small, tmp_path, fmt):
    path = write(small, tmp_path, genotype_format=fmt)["genotypes"]
    if fmt == "dosage":
        got = pd.read_csv(path, sep="\t", index_col=0)
        assert got.index.name == "variant_id"
    else:
        got = read_vcf_ds(path)
    assert list(got.columns) == list(small.dosages.columns)
    assert list(got.index) == list(small.dosages.index)
    assert np.allclose(got.to_numpy(), small.dosages.to_numpy())
    assert got.to_numpy().min() >= 0 and got.to_numpy().max() <= 2
    # some variants are imputed (decimal DS), GT agrees with DS everywhere
    assert (got.to_numpy() % 1 != 0).any()
    assert np.array_equal(np.rint(got.to_numpy()), small.genotypes.to_numpy())


def test_vcf_header_and_gt(small, tmp_path):
    path = write(small, tmp_path, genotype_format="vcf")["genotypes"]
    lines = path.read_text().splitlines()
    assert lines[0] == "##fileformat=VCFv4.2"
    row = next(line.split("\t") for line in lines if "\trs3135388\t" in line)
    assert row[:2] == ["6", "32413051"] and row[8] == "GT:DS"
    assert {cell.split(":")[0] for cell in row[9:]} <= {"0/0", "0/1", "1/1"}
    variants = read_tsv(write(small, tmp_path)["variants"]).set_index("variant_id")
    assert variants.loc["rs3135388", "label"] == "HLA-DRB1*15:01 tag"
    assert variants.loc["rs3135388", "gene_or_locus"] == "HLA-DRB1"
    assert (variants["label"] == "").mean() > 0.9


def test_bgzf_is_plain_gzip_with_zero_mtime():
    data = ("x" * 70_000 + "y" * 70_000).encode()
    packed = bgzf_compress(data)
    assert gzip.decompress(packed) == data
    assert packed[4:8] == b"\0\0\0\0" and packed[12:14] == b"BC"
    assert packed.endswith(bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000"))


def test_unknown_format_is_refused(small, tmp_path):
    with pytest.raises(ValueError, match="abundance_format"):
        write(small, tmp_path, abundance_format="xlsx")
    with pytest.raises(ValueError, match="genotype_format"):
        write(small, tmp_path, genotype_format="bed")


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("abundance_format,genotype_format",
                         list(zip(ABUNDANCE_FORMATS, GENOTYPE_FORMATS * 2)))
def test_same_arguments_give_identical_bytes(tmp_path, abundance_format, genotype_format):
    kwargs = dict(n_households=6, n_unpaired=2, n_species=20, n_variants=8, edge_cases=True)
    a = write(generate(seed=5, **kwargs), tmp_path / "a", abundance_format, genotype_format)
    b = write(generate(seed=5, **kwargs), tmp_path / "b", abundance_format, genotype_format)
    c = write(generate(seed=6, **kwargs), tmp_path / "c", abundance_format, genotype_format)
    assert set(a) == set(b)
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes(), name
    assert a["abundance"].read_bytes() != c["abundance"].read_bytes()
    assert a["genotypes"].read_bytes() != c["genotypes"].read_bytes()


# --------------------------------------------------------------------------- planted truth


def test_truth_species_table(small):
    t = small.truth_species
    assert set(t["class"]) == set(CLASSES)
    assert t["feature"].is_unique and set(t["feature"]) == set(small.lineage.index)
    assert (t["feature"].str[3:].str.split("_").str[0] == t["genus"].str[3:]).all()
    by = t.set_index("feature")
    assert by.loc["s__Akkermansia_muciniphila", "class"] == "high-risk"
    assert by.loc["s__Faecalibacterium_prausnitzii", "class"] == "protective"
    assert by.loc["s__Blautia_wexlerae", "class"] == "protective"
    planted = t[t["class"].isin(["high-risk", "protective"])]
    assert len(planted) == 2 * round(0.05 * len(t))
    assert (planted["prevalence"] >= 0.5).all()
    assert (t.loc[t["class"] == "high-risk", "log_fold_change"] == 1.0).all()
    assert (t.loc[t["class"] == "protective", "log_fold_change"] == -1.0).all()
    assert (t.loc[t["class"].isin(["neutral", "treatment-only"]), "log_fold_change"] == 0).all()
    trt = t[t["class"] == "treatment-only"]
    assert trt["dmt"].notna().all() and (trt["dmt_log_fold_change"].abs() == 1.5).all()
    assert t.loc[t["class"] != "treatment-only", "dmt"].isna().all()
    assert t["prevalence"].between(0.3, 1.0).all()
    assert np.isclose(t["mean_relative_abundance"].sum(), 1.0)


def test_truth_associations_table(small):
    a = small.truth_associations
    assert set(a["effect"]) == {"main", "interaction"}
    assert (a["effect"] == "main").sum() == 3 and (a["effect"] == "interaction").sum() == 3
    hla = a[a["variant_id"] == "rs3135388"]
    assert len(hla) == 1 and hla["effect"].item() == "interaction" and hla["beta"].item() == 1.0
    classes = small.truth_species.set_index("feature")["class"]
    assert classes[hla["feature"].item()] == "high-risk"
    assert (a.loc[a["effect"] == "main", "beta"].abs() == 0.8).all()
    assert set(a["variant_id"]) <= set(small.variants["variant_id"])
    assert set(a["feature"]) <= set(small.lineage.index)


def test_planted_disease_effect_is_visible(large):
    diff = household_clr_diff(large)
    cls = large.truth_species.set_index("feature")["class"].loc[diff.index]
    assert diff[cls == "high-risk"].mean() > 0.5
    assert diff[cls == "protective"].mean() < -0.5
    assert (diff[cls == "high-risk"] > 0).all() and (diff[cls == "protective"] < 0).all()
    neutral = diff[cls == "neutral"]
    # Neutral species: no shift on average; single species only scatter (SE ≈ 0.18 here).
    assert abs(neutral.mean()) < 0.1 and neutral.abs().median() < 0.25


def test_null_cohort_has_no_disease_signal(large, large_null):
    t = household_clr_diff(large_null, t_statistic=True)
    # Species with a planted sex effect stay confounded (MS are mostly women, HHC mostly men).
    t = t.drop([d["feature"] for d in large_null.notes["covariate_effects"] if d["covariate"] == "sex_male"])
    assert t.abs().max() < 3.5  # Bonferroni bound for ~60 tests at 5 %
    assert (t.abs() > 1.96).mean() < 0.15
    # Same seed, same noise: planted minus null isolates the planted effect (≈ effect × prevalence).
    effect = household_clr_diff(large) - household_clr_diff(large_null)
    cls = large.truth_species.set_index("feature")["class"].loc[effect.index]
    assert (effect[cls == "high-risk"] > 0.5).all() and (effect[cls == "protective"] < -0.5).all()
    # Rare species differ only by multinomial sampling noise.
    assert effect[cls == "neutral"].abs().median() < 0.15 and effect[cls == "neutral"].abs().max() < 0.5
    assert (large_null.truth_species["class"] == "neutral").all()
    assert (large_null.truth_species[["log_fold_change", "dmt_log_fold_change", "severity_effect"]] == 0).all().all()
    assert large_null.truth_associations.empty
    # everything but the effects is shared with the planted cohort
    pd.testing.assert_frame_equal(large.participants, large_null.participants)
    pd.testing.assert_frame_equal(large.stool_manifest, large_null.stool_manifest)
    assert (large.counts.sum(axis=0) == large_null.counts.sum(axis=0)).all()


def test_hla_tag_enriched_in_ms_only_when_planted(large, large_null):
    ms, hhc = hla_frequencies(large)
    # ~400 alleles per group: SE of a frequency ≈ 0.02, of a difference ≈ 0.03.
    assert 0.18 < ms < 0.32 and 0.05 < hhc < 0.19 and ms - hhc > 0.06
    ms0, hhc0 = hla_frequencies(large_null)
    assert abs(ms0 - hhc0) < 0.08


def test_other_variants_in_hardy_weinberg(large):
    calls = large.genotypes.drop(index="rs3135388").to_numpy()
    p = calls.mean(axis=1) / 2
    het = (calls == 1).mean(axis=1)
    assert np.abs(het - 2 * p * (1 - p)).max() < 0.1  # SE of a heterozygote share ≈ 0.025
    assert p.min() > 0.02 and p.max() < 0.56


def test_genotype_interaction_with_hla_is_visible(large, large_null):
    """Planted minus null CLR of the HLA-paired species: +1 per allele above the MS mean, in MS only."""
    a = large.truth_associations.set_index("variant_id").loc["rs3135388"]
    first = large.stool_manifest.drop_duplicates("participant_id").set_index("participant_id")["sample_id"]

    def clr(cohort):
        x = np.log(cohort.species_counts().loc[:, first.to_numpy()] + 0.5)
        return (x - x.mean(axis=0)).loc[a["feature"]].set_axis(first.index)

    shift = clr(large) - clr(large_null)
    blood = large.blood_manifest.set_index("participant_id")["sample_id"]
    g = large.genotypes.loc["rs3135388", blood.loc[first.index]].set_axis(first.index)
    ms = large.participants.set_index("participant_id").loc[first.index, "status"] == "MS"
    gap_ms = shift[ms & (g > 0)].mean() - shift[ms & (g == 0)].mean()
    gap_hhc = shift[~ms & (g > 0)].mean() - shift[~ms & (g == 0)].mean()
    assert gap_ms > 0.5 and abs(gap_hhc) < 0.2


# --------------------------------------------------------------------------- edge cases


def _exclusions(paths) -> set[tuple[str, str, str]]:
    """Recompute every exclusion from the written files alone (what ingest must find)."""
    participants = read_tsv(paths["participants"])
    stool = read_tsv(paths["stool_manifest"])
    blood = read_tsv(paths["blood_manifest"])
    table = read_abundance(paths["abundance"], "biom")
    genotype_cols = list(read_vcf_ds(paths["genotypes"]).columns)
    found = set()
    depth = table.sum(axis=0)
    for sid in stool["sample_id"]:
        if sid not in table.columns:
            found.add(("stool_sample", sid, "not_in_abundance_table"))
        elif depth[sid] == 0:
            found.add(("stool_sample", sid, "zero_reads"))
        elif depth[sid] < MIN_DEPTH:
            found.add(("stool_sample", sid, "below_min_depth"))
    found |= {("table_column", c, "not_in_stool_manifest") for c in table.columns if c not in set(stool["sample_id"])}
    usable = stool[stool["sample_id"].isin(depth[depth >= MIN_DEPTH].index)]
    found |= {("participant", p, "no_stool_sample")
              for p in participants["participant_id"] if p not in set(usable["participant_id"])}
    found |= {("blood_sample", b, "not_in_genotypes") for b in blood["sample_id"] if b not in genotype_cols}
    found |= {("genotype_column", c, "not_in_blood_manifest") for c in genotype_cols
              if c not in set(blood["sample_id"])}
    return found


def test_edge_case_ledger_matches_the_files(small, small_dir):
    ledger = read_tsv(small_dir["truth_ledger"])
    assert [tuple(r) for r in ledger[["entity", "reason"]].to_numpy()] == list(LEDGER_REASONS)
    assert set(map(tuple, ledger.to_numpy())) == _exclusions(small_dir)
    depth = small.counts.sum(axis=0)
    by_reason = ledger.set_index("reason")["id"]
    assert depth[by_reason["below_min_depth"]] == 500
    assert depth[by_reason["zero_reads"]] == 0


def test_edge_case_blood_oddities(small, small_dir):
    blood = read_tsv(small_dir["blood_manifest"])
    participants = read_tsv(small_dir["participants"])
    without = set(participants["participant_id"]) - set(blood["participant_id"])
    assert without == {small.notes["edge_cases"]["participant_without_blood_sample"]}
    dosages = read_vcf_ds(small_dir["genotypes"])
    genotyped = blood[blood["sample_id"].isin(dosages.columns)]
    twice = genotyped.groupby("participant_id")["sample_id"].agg(list)
    twice = twice[twice.map(len) > 1]
    assert len(twice) == 1
    a, b = twice.iloc[0]
    assert [a, b] == small.notes["edge_cases"]["concordant_duplicate_blood_samples"]
    assert dosages[a].equals(dosages[b])
    assert (blood["gfap"] == "NA").sum() == 1
    assert small_dir["participants"].read_text().startswith("# ")


def test_without_edge_cases_nothing_is_excluded(tmp_path):
    paths = write(generate(n_households=6, n_unpaired=2, n_species=20, n_variants=8), tmp_path)
    assert "truth_ledger" not in paths and not (tmp_path / "truth_ledger.tsv").exists()
    assert _exclusions(paths) == set()
    assert not paths["participants"].read_text().startswith("#")


# --------------------------------------------------------------------------- API and CLI


def test_truth_json_records_parameters(small_dir):
    doc = json.loads(small_dir["truth"].read_text())
    assert doc["seed"] == 1 and doc["parameters"]["edge_cases"] is True
    assert {k: doc["parameters"][k] for k in BUNDLED} == BUNDLED
    assert doc["formats"] == {"abundance": "biom", "genotypes": "vcf.gz"}


def test_bundled_matches_cli_and_resources(tmp_path):
    cli_dir = tmp_path / "cli"
    assert main(["--outdir", str(cli_dir), "--households", "24", "--unpaired", "4", "--sites", "3",
                 "--species", "60", "--variants", "40", "--seed", "1", "--edge-cases",
                 "--abundance-format", "biom", "--genotype-format", "vcf.gz"]) == 0
    paths = bundled(tmp_path / "api")
    for name, path in paths.items():
        assert path.read_bytes() == (cli_dir / path.name).read_bytes(), name
    shipped = Path(__file__).resolve().parents[1] / "resources" / "synthetic"
    if shipped.exists():  # the committed copy must be what the generator makes today
        for path in paths.values():
            assert (shipped / path.name).read_bytes() == path.read_bytes(), path.name


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="n_species"):
        generate(n_species=5)
    with pytest.raises(ValueError, match="edge_cases"):
        generate(n_households=2, edge_cases=True)
    with pytest.raises(SystemExit):
        main(["--outdir", "x", "--abundance-format", "xlsx"])
