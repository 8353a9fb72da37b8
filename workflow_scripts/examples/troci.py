"""Convert the Kiel MS cohort (``shared/data/real/troci_ms_bcell/ms_vs_hc_stool``) to the input contract.

Troci et al. (Sci Rep 2022): 36 MS patients sampled at up to four time points
around the start of ocrelizumab, and 54 healthy controls sampled once; 16S
stool ASVs. The authors' ``metadata.tsv`` has one row per stool sample. This
writes ``participants.tsv``, ``stool_manifest.tsv`` and ``taxonomy.tsv`` plus a
``config.yaml`` that points at them and at the authors' count table in place
(it is never copied). Run::

    python -m workflow_scripts.examples.troci \\
        --source ../shared/data/real/troci_ms_bcell/ms_vs_hc_stool --out results/troci_example
    snakemake --cores 2 --configfile results/troci_example/config.yaml

Mapping (documented, nothing else changes):

- participant_id = ``SampleNr`` for patients (``P01``), ``SampleID`` for controls
  (``ITM00002``), as the source README says;
- household_id empty for everyone: the controls are unrelated to the patients,
  so the design is unpaired;
- site = ``Kiel`` (one recruitment site);
- status = ``MS`` / ``HC`` from ``Status`` (``Healthy`` -> ``HC``); the config sets
  ``control_label: HC`` since these are not household controls;
- sex = ``Sex`` upper-cased; age = ``Age``;
- dmt = ``ocrelizumab`` where ``Ocrevus`` is ``yes``, empty (unknown) where it is
  ``no``: the source does not say what the other patients took. TP1 is the
  baseline at (or before) the start of ocrelizumab, so the therapy is the one
  the patient was started on during the study;
- disease_course and edss are not in the source and stay empty;
- stool manifest: sample_id = ``sample_id``; sequencing_batch = ``Run`` (empty for
  the controls, whose run the source does not give, so it is not a default
  covariate); visit = the number of ``TimePoint`` (``TP2`` -> 2; empty for
  controls). No collection dates are in the source; rows are written in
  participant and visit order;
- taxonomy = ``Kingdom`` ... ``Species`` as a Greengenes-style lineage, with the
  authors' placeholders ``<taxon> (unc.)`` (unclassified at that rank) left empty.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

RANK_COLUMNS = dict(zip(("Kingdom", "Phylum", "Class", "Order", "Family", "Genus", "Species"), "kpcofgs"))
UNCLASSIFIED = " (unc.)"


def subject(meta: pd.DataFrame) -> pd.Series:
    """One subject id per sample: ``SampleNr`` for patients, ``SampleID`` for controls."""
    return meta["SampleNr"].where(meta["Status"] == "MS", meta["SampleID"])


def participants_table(meta: pd.DataFrame) -> pd.DataFrame:
    meta = meta.assign(participant_id=subject(meta)).drop_duplicates("participant_id")
    case = meta["Status"] == "MS"
    return pd.DataFrame({
        "participant_id": meta["participant_id"],
        "household_id": "",
        "site": "Kiel",
        "status": case.map({True: "MS", False: "HC"}),
        "sex": meta["Sex"].str.upper(),
        "age": meta["Age"],
        "disease_course": "",
        "dmt": meta["Ocrevus"].map({"yes": "ocrelizumab"}).fillna("").where(case, ""),
        "edss": "",
    }).sort_values("participant_id", kind="stable")


def stool_manifest(meta: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "sample_id": meta["sample_id"],
        "participant_id": subject(meta),
        "sequencing_batch": meta["Run"],
        "visit": meta["TimePoint"].str.removeprefix("TP"),
    })
    order = pd.to_numeric(out["visit"], errors="coerce")
    return out.assign(_order=order).sort_values(["participant_id", "_order"], kind="stable") \
        .drop(columns="_order")


def lineages(taxonomy: pd.DataFrame) -> pd.DataFrame:
    """``feature_id``, ``taxonomy`` with ranks named ``k__ ... s__`` (placeholders empty)."""
    def name(value: str) -> str:
        return "" if value.endswith(UNCLASSIFIED) or value == "NA" else value

    parts = [f"{prefix}__" + taxonomy[column].map(name) for column, prefix in RANK_COLUMNS.items()]
    text = parts[0]
    for part in parts[1:]:
        text = text + "; " + part
    return pd.DataFrame({"feature_id": taxonomy["feature_id"], "taxonomy": text})


def convert(source: Path, out: Path, outdir: str | None = None) -> Path:
    """Write the contract files and a config; return the config path."""
    source, out = Path(source).resolve(), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = pd.read_csv(source / "metadata.tsv", sep="\t", dtype=str, keep_default_na=False)
    taxonomy = pd.read_csv(source / "asv_taxonomy.tsv", sep="\t", dtype=str, keep_default_na=False)
    write = dict(sep="\t", index=False, lineterminator="\n")
    participants_table(meta).to_csv(out / "participants.tsv", **write)
    stool_manifest(meta).to_csv(out / "stool_manifest.tsv", **write)
    lineages(taxonomy).to_csv(out / "taxonomy.tsv", **write)
    config = {
        "inputs": {
            "participants": str((out / "participants.tsv").resolve()),
            "stool_manifest": str((out / "stool_manifest.tsv").resolve()),
            "abundance": str(source / "asv_counts.tsv.gz"),
            "abundance_kind": "counts",
            "taxonomy": str((out / "taxonomy.tsv").resolve()),
        },
        "rank": "genus",
        "case_label": "MS",
        "control_label": "HC",
        "covariates": ["sex", "age"],
        "outdir": outdir or str((out / "results").resolve()),
    }
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="../shared/data/real/troci_ms_bcell/ms_vs_hc_stool")
    parser.add_argument("--out", default="results/troci_example")
    parser.add_argument("--outdir", help="results directory written into the config")
    args = parser.parse_args(argv)
    missing = [n for n in ("metadata.tsv", "asv_taxonomy.tsv", "asv_counts.tsv.gz")
               if not (Path(args.source) / n).is_file()]
    if missing:
        print(f"{args.source}: {', '.join(missing)} not found. Fix: give --source the ms_vs_hc_stool folder "
              "of troci_ms_bcell (see its README)", file=sys.stderr)
        return 1
    print(convert(Path(args.source), Path(args.out), args.outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
