"""Command line of the differential-abundance stage (what ``rules/differential.smk`` runs).

    python -m workflow_scripts.differential.cli prepare --cohort DIR --settings JSON \\
        --ledger differential/ledger.tsv --features differential/features.tsv
    python -m workflow_scripts.differential.cli method --cohort DIR --settings JSON \\
        --features differential/features.tsv --method linda --output differential/linda.tsv
    python -m workflow_scripts.differential.cli treatment --cohort DIR --settings JSON \\
        --features differential/features.tsv --output differential/treatment_effects.tsv
    python -m workflow_scripts.differential.cli sensitivity --cohort DIR --settings JSON \\
        --features differential/features.tsv --output differential/sensitivity.tsv
    python -m workflow_scripts.differential.cli sites --cohort DIR --settings JSON \\
        --features differential/features.tsv --effects differential/site_effects.tsv \\
        --meta differential/site_meta.tsv
    python -m workflow_scripts.differential.cli primary --cohort DIR --settings JSON \\
        --features differential/features.tsv --output differential/primary.tsv
    python -m workflow_scripts.differential.cli method-null --cohort DIR --settings JSON \\
        --features differential/features.tsv --method linda --output null/linda.tsv
    python -m workflow_scripts.differential.cli calibration --cohort DIR --settings JSON \\
        --features differential/features.tsv --method-nulls null/linda.tsv ... \\
        --output differential/calibration.tsv
    python -m workflow_scripts.differential.cli consensus --settings JSON --methods A.tsv B.tsv \\
        --primary differential/primary.tsv --calibration differential/calibration.tsv \\
        --sensitivity differential/sensitivity.tsv --site-meta differential/site_meta.tsv \\
        --output differential/consensus.tsv
    python -m workflow_scripts.differential.cli volcano --settings JSON --table linda.tsv --output linda.png
    python -m workflow_scripts.differential.cli agreement --settings JSON --consensus consensus.tsv \\
        --methods A.tsv B.tsv --output agreement.png

``--settings`` is the ``differential`` config section with the top-level
``covariates`` and ``seed`` as JSON (or ``@file.json``). Every table is a
UTF-8 TSV sorted by feature (:func:`workflow_scripts.runner.write_table`), so
the same cohort and settings give byte-identical files. All statistics live
in the other modules of :mod:`workflow_scripts.differential`; this module only
reads and writes.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd

from .. import runner
from ..cohort import read_cohort
from ..errors import InputError, Problem
from . import calibration, figures, linda, meta, primary, sensitivity
from .consensus import ConsensusRule, add_primary, add_site_meta, apply_robustness, consensus
from .methods import read_method_table, run_method
from .prepare import STAGE, DifferentialSettings, StageData, describe, prepare

log = logging.getLogger(STAGE)


def read_tsv(path) -> pd.DataFrame:
    return runner.read_table(path, dtype={"feature": str})


def load_settings(text: str) -> DifferentialSettings:
    return DifferentialSettings.from_config(runner.json_argument(text))


def stage_data(cohort_dir, settings: DifferentialSettings, features_path=None) -> StageData:
    """Prepare the stage data; check the tested features against ``features.tsv`` if given."""
    data = prepare(read_cohort(cohort_dir, mmap_genotypes=True), settings)
    if features_path is not None:
        expected = list(read_tsv(features_path)["feature"])
        if sorted(expected) != sorted(data.features):
            raise InputError([Problem(str(features_path), "lists other features than this run selects",
                                      "rerun the differential_prepare rule (the cohort or the settings "
                                      "changed since it ran)")])
    return data


def features_table(data: StageData) -> pd.DataFrame:
    """The tested features with overall prevalence and per-group descriptives."""
    stats = describe(data.profiles, data.status, data.features)
    stats.insert(2, "prevalence", (data.profiles[list(data.features)] > 0).mean(axis=0).to_numpy())
    return stats.reset_index().sort_values("feature", kind="stable", ignore_index=True)


def cmd_prepare(args) -> None:
    settings = load_settings(args.settings)
    data = stage_data(args.cohort, settings)
    ledger = pd.concat([data.ledger, meta.site_exclusions(data)], ignore_index=True)
    runner.write_table(ledger, args.ledger)
    runner.write_table(features_table(data), args.features)
    log.info("%d participants (%d households with a case and a control), %d features tested, "
             "%d ledger rows", len(data.design.frame), len(data.pairs.households), len(data.features),
             len(ledger))


def cmd_method(args) -> None:
    settings = load_settings(args.settings)
    data = stage_data(args.cohort, settings, args.features)
    table = run_method(args.method, data)
    runner.write_table(table, args.output)
    log.info("%s: %d features, %d with q < %g", args.method, len(table),
             int((table["qvalue"] < settings.q_threshold).sum()), settings.q_threshold)


def cmd_primary(args) -> None:
    settings = load_settings(args.settings)
    data = stage_data(args.cohort, settings, args.features)
    table = primary.run(data)
    runner.write_table(table, args.output)
    log.info("primary test (%s design, %d units): %d features with q < %g", table["design"].iloc[0]
             if len(table) else "no", int(table["n_units"].iloc[0]) if len(table) else 0,
             int((table["qvalue"] < settings.fdr_level / 2).sum()), settings.fdr_level / 2)


def cmd_method_null(args) -> None:
    settings = load_settings(args.settings)
    data = stage_data(args.cohort, settings, args.features)
    runner.write_table(calibration.method_null_pvalues(args.method, data), args.output)


def cmd_calibration(args) -> None:
    settings = load_settings(args.settings)
    data = stage_data(args.cohort, settings, args.features)
    nulls = {}
    for path in args.method_nulls:
        table = runner.read_table(path, dtype={"feature": str, "method": str})
        if len(table):
            nulls[str(table["method"].iloc[0])] = table
    table = calibration.calibrate(data, nulls)
    runner.write_table(table, args.output)
    for _, r in table[table["status"].isin(["flagged", "tightened"])].iterrows():
        log.warning("calibration: %s %s %s = %.3g (%s)", r["scope"], r["metric"], r["effect"], r["value"],
                    r["status"])


def cmd_treatment(args) -> None:
    settings = load_settings(args.settings)
    data = stage_data(args.cohort, settings, args.features)
    runner.write_table(linda.treatment_effects(data), args.output)


def cmd_sensitivity(args) -> None:
    settings = load_settings(args.settings)
    data = stage_data(args.cohort, settings, args.features)
    runner.write_table(sensitivity.rerun(data), args.output)


def cmd_sites(args) -> None:
    settings = load_settings(args.settings)
    data = stage_data(args.cohort, settings, args.features)
    effects, _ = meta.per_site(data)
    runner.write_table(effects, args.effects)
    runner.write_table(meta.meta_analysis(effects, data.features), args.meta)


def _method_tables(paths) -> dict[str, pd.DataFrame]:
    tables = {}
    for path in paths:
        table = read_method_table(path)
        name = str(table["method"].iloc[0]) if len(table) else Path(path).stem
        tables[name] = table
    return tables


def cmd_consensus(args) -> None:
    settings = load_settings(args.settings)
    tables = _method_tables(args.methods)
    rule = ConsensusRule.from_settings(settings)
    table = consensus(tables, rule)
    alternatives = read_tsv(args.sensitivity)
    table = apply_robustness(table, sensitivity.alternative_calls(tables, alternatives, rule),
                             bool(settings.consensus["require_pseudocount_robust"]))
    table = add_site_meta(table, read_tsv(args.site_meta))
    level = calibration.level_in_force(read_tsv(args.calibration), settings.fdr_level)
    table = add_primary(table, read_method_table(args.primary), level)
    runner.write_table(table, args.output)
    log.info("calls at q < %g: %d up, %d down of %d features", level, int((table["call"] == "up").sum()),
             int((table["call"] == "down").sum()), len(table))


def cmd_volcano(args) -> None:
    settings = load_settings(args.settings)
    figures.volcano(read_method_table(args.table), args.output, settings.q_threshold)


def cmd_agreement(args) -> None:
    settings = load_settings(args.settings)
    figures.agreement(read_tsv(args.consensus), _method_tables(args.methods), args.output,
                      settings.q_threshold)


def parser():
    parser = runner.parser(__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, function, *options):
        p = runner.command(sub.add_parser(name), function)
        runner.required(p, "settings")  # differential settings as JSON, or @file.json
        for option in options:
            runner.required(p, option, nargs={"methods": "+", "method-nulls": "*"}.get(option))
        return p

    command("prepare", cmd_prepare, "cohort", "ledger", "features")
    command("method", cmd_method, "cohort", "features", "method", "output")
    command("primary", cmd_primary, "cohort", "features", "output")
    command("method-null", cmd_method_null, "cohort", "features", "method", "output")
    command("calibration", cmd_calibration, "cohort", "features", "method-nulls", "output")
    command("treatment", cmd_treatment, "cohort", "features", "output")
    command("sensitivity", cmd_sensitivity, "cohort", "features", "output")
    command("sites", cmd_sites, "cohort", "features", "effects", "meta")
    command("consensus", cmd_consensus, "methods", "primary", "calibration", "sensitivity", "site-meta", "output")
    command("volcano", cmd_volcano, "table", "output")
    command("agreement", cmd_agreement, "consensus", "methods", "output")
    return parser


main = runner.entry_point(parser, STAGE)


if __name__ == "__main__":
    sys.exit(main())
