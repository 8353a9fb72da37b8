"""Every stage's entry point reports problems the same way (workflow_scripts/runner.py).

Bad input: one line per problem (file or config key, id, the fix) on stderr and in the log,
exit status 1, no traceback. An unexpected error: one line on stderr and in the log, the
traceback in the log only, exit status 1. Also the one TSV and JSON writers.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest

from workflow_scripts import provenance, runner
from workflow_scripts.association import cli as association
from workflow_scripts.classification import cli as classification
from workflow_scripts.cohort import write_cohort
from workflow_scripts.differential import cli as differential
from workflow_scripts.diversity import cli as diversity
from workflow_scripts.ingest.harmonise import ingest
from workflow_scripts.report import build as report


@pytest.fixture
def cohort_dir(mini, tmp_path):
    """The mini cohort without genotypes, ingested and written."""
    cohort, _ = ingest(replace(mini.write(), genotypes=None, blood_manifest=None, variants=None))
    write_cohort(cohort, tmp_path / "cohort")
    return str(tmp_path / "cohort")


def run(main, argv, log, capsys):
    status = main([*map(str, argv), "--log", str(log)])
    return status, capsys.readouterr().err, log.read_text()


def test_bad_settings_are_one_line_per_problem_in_stderr_and_the_log(cohort_dir, tmp_path, capsys):
    settings = json.dumps({"metrix": ["braycurtis"], "permutation": 9, "covariates": ["sex"]})
    out = tmp_path / "out"
    status, err, log = run(diversity.main, ["alpha", "--cohort", cohort_dir, "--settings", settings,
                                            "--alpha", out / "alpha.tsv", "--alpha-tests", out / "t.tsv",
                                            "--ledger", out / "l.tsv", "--figure", out / "a.png"],
                           tmp_path / "alpha.log", capsys)
    assert status == 1 and not out.exists()
    for text in (err, log):
        assert "2 problem(s) in the input:" in text
        assert "  - config diversity.metrix: unknown diversity settings ['metrix']. Fix: use one of [" in text
        assert "  - config diversity.permutation: unknown diversity settings" in text
        assert "Nothing was written" in text and "Traceback" not in text


def test_a_settings_value_the_schema_refuses_names_the_key(tmp_path, capsys):
    status, err, log = run(classification.main, [
        "--consensus", "c", "--primary", "p", "--calibration", "k", "--site-effects", "s", "--treatment", "t",
        "--untested", "u",
        "--associations", "--variants", "--settings", json.dumps({"min_prevalence": 2}), "--out", "o"],
        tmp_path / "classification.log", capsys)
    assert status == 1
    for text in (err, log):
        assert "config classification.min_prevalence: 2 is greater than the maximum of 1" in text
        assert "Traceback" not in text


def test_stage_input_errors_name_the_problem_and_the_fix(cohort_dir, tmp_path, capsys):
    settings = json.dumps({"covariates": ["sex", "smoking"]})
    status, err, log = run(differential.main, ["prepare", "--cohort", cohort_dir, "--settings", settings,
                                               "--ledger", tmp_path / "l.tsv", "--features", tmp_path / "f.tsv"],
                           tmp_path / "prepare.log", capsys)
    assert status == 1
    for text in (err, log):
        assert "config covariates, column 'smoking': covariate 'smoking' is neither a participant nor a " \
               "sample column. Fix: name a column of the participants table or the stool manifest" in text
        assert "Traceback" not in text
    out = tmp_path / "association"
    status, err, log = run(association.main, [
        "prepare", "--cohort", cohort_dir, "--settings", "{}", "--ledger", out / "l.tsv", "--participants",
        out / "p.tsv", "--rows", out / "r.tsv", "--abundance", out / "a.tsv", "--relative", out / "v.tsv",
        "--chunks", out / "c.tsv", "--labelled", out / "b.tsv", "--prepared", out / "s.json"],
        tmp_path / "association.log", capsys)
    assert status == 1 and "the cohort has no genotypes. Fix: give inputs.genotypes" in err + log
    assert "Traceback" not in err + log and not out.exists()


def test_an_internal_error_is_one_line_with_the_traceback_in_the_log(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    status, err, log = run(report.main, ["--results", tmp_path, "--out", blocker / "report.html"],
                           tmp_path / "report.log", capsys)
    assert status == 1 and "Traceback" not in err
    line = f"internal error: FileExistsError: [Errno 17] File exists: '{blocker}' " \
           f"(the full traceback is in {tmp_path / 'report.log'})"
    assert line in err and line in log
    assert "Traceback (most recent call last)" in log
    status, err, log = run(provenance.main, ["--config", "{not json", "--outdir", tmp_path, "--out",
                                             tmp_path / "p.json"], tmp_path / "provenance.log", capsys)
    assert status == 1 and "internal error: JSONDecodeError" in err and "Traceback" not in err


def test_one_table_and_one_json_writer(tmp_path):
    frame = pd.DataFrame({"feature": ["b", "a"], "x": [0.1, float("nan")], "n": [1, 2]})
    runner.write_table(frame, tmp_path / "deep" / "t.tsv")
    assert (tmp_path / "deep" / "t.tsv").read_text() == "feature\tx\tn\nb\t0.1\t1\na\t\t2\n"
    third = pd.DataFrame({"id": ["NA"], "x": [1 / 3]})
    runner.write_table(third, tmp_path / "r.tsv")
    runner.write_table(third, tmp_path / "e.tsv", exact=True)
    assert (tmp_path / "r.tsv").read_text() == "id\tx\nNA\t0.3333333333\n"  # runner.FLOAT_FORMAT
    assert runner.read_table(tmp_path / "e.tsv")["x"].iloc[0] == 1 / 3  # exact: reads back the same float
    assert runner.read_table(tmp_path / "r.tsv")["id"].iloc[0] == "NA"  # only an empty cell is missing
    runner.write_json({"b": 1, "a": {"z": [1, 2]}}, tmp_path / "j.json")
    assert (tmp_path / "j.json").read_text() == '{\n  "a": {\n    "z": [\n      1,\n      2\n    ]\n  },\n  "b": 1\n}\n'


def test_every_command_logs_what_it_read_and_wrote(tmp_path, capsys):
    """No empty logs: runner.run names the files a command read and wrote, from its path arguments."""
    source, target = tmp_path / "in.tsv", tmp_path / "out" / "result.tsv"
    source.write_text("x\n1\n")

    def copy(args):
        runner.write_table(runner.read_table(args.input), args.output)

    parser = runner.parser("copy")
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--settings")
    runner.command(parser, copy)
    status = runner.run(parser, ["--input", str(source), "--output", str(target), "--settings", '{"a": 1}',
                                 "--log", str(tmp_path / "copy.log")], "copy")
    log = (tmp_path / "copy.log").read_text()
    assert status == 0
    assert f"INFO copy: read {source}\n" in log and f"INFO copy: wrote {target}\n" in log
    assert '{"a": 1}' not in log  # settings are not files
    status = runner.run(parser, ["--input", str(source), "--output", str(source), "--log",
                                 str(tmp_path / "same.log")], "copy")
    assert "wrote " + str(source) in (tmp_path / "same.log").read_text()  # changed: written, not read
