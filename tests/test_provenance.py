"""Provenance: inputs and outputs by checksum, versions, config; deterministic."""

from __future__ import annotations

import hashlib
import json

from workflow_scripts import provenance


def test_provenance_records_inputs_outputs_and_versions(tmp_path):
    data = tmp_path / "participants.tsv"
    data.write_text("participant_id\nP1\n")
    result = tmp_path / "out" / "ingest" / "ledger.tsv"
    result.parent.mkdir(parents=True)
    result.write_text("entity\tid\n")
    config = {"inputs": {"participants": str(data), "abundance_kind": "counts", "tree": None}, "seed": 7,
              "outdir": str(tmp_path / "out")}
    target = tmp_path / "out" / "provenance.json"
    args = ["--config", json.dumps(config), "--outdir", str(tmp_path / "out"), "--out", str(target), str(result)]
    assert provenance.main(args) == 0
    first = target.read_bytes()
    record = json.loads(first)
    assert record["inputs"] == {"participants": {"path": str(data),
                                                 "sha256": hashlib.sha256(data.read_bytes()).hexdigest()}}
    assert record["outputs"] == {"ingest/ledger.tsv": hashlib.sha256(result.read_bytes()).hexdigest()}
    assert record["seed"] == 7 and record["config"] == {k: v for k, v in config.items() if k != "outdir"}
    assert record["packages"]["scikit-bio"][0].isdigit() and record["packages"]["python"].startswith("3.")
    provenance.main(args)
    assert target.read_bytes() == first
