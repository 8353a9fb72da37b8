"""The genotype-reading benchmark on a tiny file set: its JSON, its equality gates (not its speed)."""

from __future__ import annotations

import json
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_genotype_reading as bench  # noqa: E402


def test_tiny_run_writes_every_figure(tmp_path):
    out = tmp_path / "g.json"
    assert bench.main(["--variants", "300", "--samples", "40", "--chunk", "20", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["readers"]) == {"vcf", "bcf", "plink", "bgen"}
    for reader in result["readers"].values():
        assert reader["full"]["variants"] == 300 and reader["sites"]["variants"] == 300
        assert 0 < reader["chunk"]["variants"] <= 20
        assert reader["peak_rss_mb"] > 0 and reader["estimate_1M_variants_min"] > 0
    assert result["equality"]["vcf_equals_bcf"] and result["equality"]["bgen_within_8bit"]
    assert "load average" in result["uptime_at_start"]
