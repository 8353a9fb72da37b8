"""One chunk job: its variants read in blocks from the genotype file, QC, both models, the hurdle model.

A job reads only its own chunk (:func:`chunk_blocks`: the chunk's regions
through the index for VCF/BCF, its record range for the other formats),
:data:`BLOCK_VARIANTS` variants at a time, and for each block

1. maps the file's samples to the participants analysed (merged duplicate
   blood samples averaged, :func:`~workflow_scripts.cohort.participant_dosages`);
2. runs every variant filter on the participants
   (:func:`~workflow_scripts.association.qc.block_qc`: MAF, call rate,
   Hardy-Weinberg in controls, imputation quality, carriers);
3. expands the passing variants to the model rows (a participant's dosage on
   each of their rows) and fits, for every variant x species,

   - the genotype main effect and the genotype x status interaction on the
     CLR abundance, OLS with cluster-robust (CR1) errors
     (:mod:`workflow_scripts.models.cluster_robust`);
   - with ``hurdle``, the MiBioGen-style hurdle model
     (:mod:`workflow_scripts.gwas.hurdle`): presence/absence of the species
     present in ``presence_range`` of the rows (logistic score test,
     cluster-robust), and the log relative abundance among the rows carrying
     the species (OLS, CR1); covariates are status plus those of the main
     models.

Memory is that of one block (``BLOCK_VARIANTS x (participants + rows x
species)``) plus the models' per-species arrays, whatever the number of
variants in the chunk or the file.  The tests of a block are rows
variant-major, species in the prepared order (:data:`TEST_COLUMNS`, no
q-values yet: those need every chunk).  No file is opened here; the CLI
gives the source and takes the frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..cohort import participant_dosages
from ..errors import InputError, Problem
from ..gwas.hurdle import CarrierModel, PresenceModel
from ..models.cluster_robust import clustered_block, prepare_clustered
from .prepare import AssociationSettings, parse_region
from .qc import block_qc

#: Variants read and tested together inside a job.
BLOCK_VARIANTS = 1000

#: Columns of a chunk's tests before the q-values (the sumstats columns without ``q_*``).
TEST_COLUMNS = ["variant_id", "chrom", "pos", "feature", "n", "n_households", "allele_frequency",
                "beta_genotype", "se_genotype", "p_genotype", "beta_interaction", "se_interaction",
                "p_interaction", "beta_genotype_in_controls"]
#: The hurdle model's columns, when it is fitted.
HURDLE_COLUMNS = ["beta_presence", "se_presence", "p_presence", "n_carriers", "beta_carriers", "se_carriers",
                  "p_carriers"]
#: The kinds of test, each with its own Benjamini-Hochberg family: name -> p-value column.
KINDS = {"genotype": "p_genotype", "interaction": "p_interaction", "presence": "p_presence",
         "carriers": "p_carriers"}


def chunk_blocks(source, chunk, region_reads: bool, size: int = BLOCK_VARIANTS) -> Iterator[tuple]:
    """The chunk's (variants, dosages) blocks; checks that the file still holds the planned number.

    ``chunk`` is a row of the plan (``regions``, ``first_index``,
    ``stop_index``, ``n_variants``).
    """
    seen = 0
    if region_reads:
        for region in str(chunk.regions).split(";"):
            chrom, start, end = parse_region(region)
            for block in source.iter_region(chrom, start, end, size):
                seen += len(block[0])
                yield block
    else:
        for block in source.iter_range(int(chunk.first_index), int(chunk.stop_index), size):
            seen += len(block[0])
            yield block
    if seen != int(chunk.n_variants):
        raise InputError([Problem(str(source.path), f"chunk {chunk.chunk} ({chunk.regions}) holds {seen} variants, "
                                  f"ingest counted {chunk.n_variants}", "the genotype file changed after ingest: "
                                  "run the workflow again from ingest")])


@dataclass
class ChunkInputs:
    """What a chunk job reads from the preparation (see :class:`~workflow_scripts.association.prepare.Prepared`)."""

    participants: pd.DataFrame
    rows: pd.DataFrame
    abundance: pd.DataFrame
    relative: pd.DataFrame | None
    covariate_columns: list[str]


class ChunkModels:
    """The models of one job, set up once (projections, clusters, null fits), then any block of variants."""

    def __init__(self, inputs: ChunkInputs, s: AssociationSettings):
        self.s = s
        part, rows = inputs.participants, inputs.rows
        self.columns = [np.array([int(c) for c in str(text).split(";") if c != ""], dtype=np.int64)
                        for text in part["genotype_columns"].astype(str).replace("nan", "")]
        self.status = part["status"].to_numpy(dtype=float)
        self.row_of = part.index.get_indexer(rows["participant_id"])
        self.features = pd.Index(inputs.abundance.columns)
        status = rows["status"].to_numpy(dtype=float)
        covariates = rows[inputs.covariate_columns].to_numpy(dtype=float) if inputs.covariate_columns else None
        clusters = rows["cluster"].astype(str).to_numpy()
        self.design = prepare_clustered(inputs.abundance.to_numpy(dtype=float), status, covariates, clusters,
                                        list(self.features))
        self.presence = self.carriers = None
        if s.hurdle and inputs.relative is not None:
            relative = inputs.relative[self.features].to_numpy(dtype=float)
            present = relative > 0
            hurdle_cov = np.column_stack([status, covariates]) if covariates is not None else status[:, None]
            prevalence = present.mean(axis=0)
            low, high = s.presence_range
            self.binary = np.flatnonzero((prevalence >= low) & (prevalence <= high))
            if self.binary.size:
                self.presence = PresenceModel(present[:, self.binary], hurdle_cov, clusters)
            with np.errstate(divide="ignore"):
                values = np.where(present, np.log(np.where(present, relative, 1.0)), np.nan)
            self.carriers = CarrierModel(values, present, hurdle_cov, clusters, s.hurdle_min_carriers)

    def test_block(self, variants: pd.DataFrame, dosages: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The QC rows of a block's variants and the tests of those that pass (:data:`TEST_COLUMNS`...)."""
        G = participant_dosages(dosages, self.columns)
        qc = block_qc(G, variants, self.status, **self.s.qc())
        keep = qc["keep"].to_numpy()
        G = G[keep]
        m, S = G.shape[0], len(self.features)
        tested = variants[keep]
        G_rows = G[:, self.row_of]
        result = clustered_block(self.design, G_rows)
        skip = ~qc["test_interaction"].to_numpy()[keep]
        with np.errstate(invalid="ignore"):
            af = np.nanmean(G, axis=1) / 2 if m else np.zeros(0)
        frame = {     # variant ids are unique in a genotype file (ingest checks it)
            "variant_id": pd.Categorical.from_codes(np.repeat(np.arange(m), S),
                                                    categories=pd.Index(tested["variant_id"].astype(str))),
            "chrom": np.repeat(tested["chrom"].astype(str).to_numpy(), S),
            "pos": np.repeat(tested["pos"].to_numpy(np.int64), S),
            "feature": pd.Categorical.from_codes(np.tile(np.arange(S), m), categories=self.features),
            "n": np.repeat(result["n"], S).astype(np.int64),
            "n_households": np.repeat(result["n_households"], S).astype(np.int64),
            "allele_frequency": np.repeat(af, S),
        }
        for name in ("beta_genotype", "se_genotype", "p_genotype", "beta_interaction", "se_interaction",
                     "p_interaction"):
            frame[name] = result[name].copy()
        frame["beta_genotype_in_controls"] = result["beta_genotype_interaction_model"].copy()
        for name in ("beta_interaction", "se_interaction", "p_interaction", "beta_genotype_in_controls"):
            frame[name][skip] = np.nan
        if self.carriers is not None:
            presence = {k: np.full((m, S), np.nan) for k in ("beta", "se", "p")}
            if self.presence is not None and m:
                res = self.presence.test(G_rows)
                for k in presence:
                    presence[k][:, self.binary] = res[k]
            carriers = self.carriers.test(G_rows)
            for k in ("beta", "se", "p"):
                frame[f"{k}_presence"] = presence[k]
            frame["n_carriers"] = np.tile(carriers["n"], m).astype(np.int64)
            for k in ("beta", "se", "p"):
                frame[f"{k}_carriers"] = carriers[k]
        tests = pd.DataFrame({k: (v.ravel() if isinstance(v, np.ndarray) and v.ndim == 2 else v)
                              for k, v in frame.items()})
        return tests, qc


def run_chunk(source, chunk, region_reads: bool, inputs: ChunkInputs, s: AssociationSettings,
              size: int = BLOCK_VARIANTS) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """(tests, qc) of every block of one chunk (what the chunk job does between its files)."""
    models = ChunkModels(inputs, s)
    for variants, dosages in chunk_blocks(source, chunk, region_reads, size):
        yield models.test_block(variants, dosages)
