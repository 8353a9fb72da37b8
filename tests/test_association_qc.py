"""Variant QC of the association stage: the Hardy-Weinberg exact test and the QC table.

The references are a brute-force enumeration and a transcription of Wigginton
et al.'s recurrence for the Hardy-Weinberg test.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from math import comb

import numpy as np
import pytest

from workflow_scripts.association.qc import hwe_exact, variant_qc


def hwe_brute_force(het, hom1, hom2):
    """Enumerate every placement of the rare alleles on 2N chromosomes."""
    n = het + hom1 + hom2
    n_a = 2 * hom1 + het
    counts = {}
    for chosen in itertools.combinations(range(2 * n), n_a):
        alleles = set(chosen)
        h = sum((2 * i in alleles) != (2 * i + 1 in alleles) for i in range(n))
        counts[h] = counts.get(h, 0) + 1
    total = comb(2 * n, n_a)
    prob = {h: Fraction(c, total) for h, c in counts.items()}
    return float(sum(pr for pr in prob.values() if pr <= prob[het]))


def hwe_wigginton(obs_hets, obs_hom1, obs_hom2):
    """Line-by-line transcription of the SNPHWE recurrence (Wigginton et al. 2005)."""
    obs_homc = max(obs_hom1, obs_hom2)
    obs_homr = min(obs_hom1, obs_hom2)
    rare = 2 * obs_homr + obs_hets
    genotypes = obs_hets + obs_homc + obs_homr
    probs = [0.0] * (rare + 1)
    mid = rare * (2 * genotypes - rare) // (2 * genotypes)
    if (rare & 1) ^ (mid & 1):
        mid += 1
    curr_hets, curr_homr = mid, (rare - mid) // 2
    curr_homc = genotypes - curr_hets - curr_homr
    probs[mid] = 1.0
    total = 1.0
    while curr_hets >= 2:
        probs[curr_hets - 2] = (probs[curr_hets] * curr_hets * (curr_hets - 1.0)
                                / (4.0 * (curr_homr + 1.0) * (curr_homc + 1.0)))
        total += probs[curr_hets - 2]
        curr_hets -= 2
        curr_homr += 1
        curr_homc += 1
    curr_hets, curr_homr = mid, (rare - mid) // 2
    curr_homc = genotypes - curr_hets - curr_homr
    while curr_hets <= rare - 2:
        probs[curr_hets + 2] = (probs[curr_hets] * 4.0 * curr_homr * curr_homc
                                / ((curr_hets + 2.0) * (curr_hets + 1.0)))
        total += probs[curr_hets + 2]
        curr_hets += 2
        curr_homr -= 1
        curr_homc -= 1
    target = probs[obs_hets]
    return min(1.0, sum(p for p in probs if p <= target * (1 + 1e-7)) / total)


def test_hwe_exact_equals_brute_force_enumeration():
    cases = [(het, hom1, n - het - hom1)
             for n in range(1, 7) for het in range(n + 1) for hom1 in range(n - het + 1)]
    het, hom1, hom2 = map(np.array, zip(*cases))
    got = hwe_exact(het, hom1, hom2)
    want = np.array([hwe_brute_force(*c) for c in cases])
    assert len(cases) == 83
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert got.min() < 0.1                      # the enumeration reaches small p-values
    assert hwe_exact(0, 1, 1)[0] == pytest.approx(1 / 3, rel=1e-12)   # P(AA,BB) = 1/3


def test_hwe_exact_equals_wigginton_recurrence_at_cohort_size():
    rng = np.random.default_rng(17)
    n = rng.integers(50, 700, 300)
    het = rng.binomial(n, rng.uniform(0.0, 0.7, 300))
    hom1 = rng.binomial(n - het, rng.uniform(0.0, 1.0, 300))
    hom2 = n - het - hom1
    got = hwe_exact(het, hom1, hom2, chunk_size=64)
    want = np.array([hwe_wigginton(*c) for c in zip(het, hom1, hom2)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300)
    assert (got < 1e-6).sum() > 20 and (got > 0.05).sum() > 20


def test_variant_qc_flags_each_reason_and_tests_hwe_in_controls_only():
    rng = np.random.default_rng(18)
    n = 400
    status = np.repeat([1, 0], n // 2)
    good = rng.binomial(2, 0.3, n).astype(float)
    rare = np.zeros(n)
    rare[:6] = 1.0                              # maf 6/800
    holes = good.copy()
    holes[:30] = np.nan                         # call rate 370/400
    het_controls = good.copy()
    het_controls[status == 0] = 1.0             # all controls heterozygous
    het_cases = good.copy()
    het_cases[status == 1] = 1.0                # disequilibrium in cases only: kept
    dosage = good + rng.uniform(-0.2, 0.2, n) * (good < 2) * (good > 0)   # imputed-like
    G = np.vstack([good, rare, holes, het_controls, het_cases, dosage, np.full(n, np.nan)])
    qc = variant_qc(G, status, variant_ids=[f"v{i}" for i in range(7)])
    assert list(qc.columns[:5]) == ["maf", "call_rate", "hwe_p", "keep", "reason"]
    assert qc["reason"].tolist() == ["", "low_maf", "low_call_rate", "hwe", "", "",
                                     "low_maf;low_call_rate"]
    assert qc["keep"].tolist() == [True, False, False, False, True, True, False]
    assert qc.loc["v1", "maf"] == pytest.approx(6 / 800)
    assert qc.loc["v2", "call_rate"] == pytest.approx(370 / 400)
    assert qc.loc["v3", ["n_hom_ref", "n_het", "n_hom_alt"]].tolist() == [0, 200, 0]
    assert qc.loc["v3", "hwe_p"] < 1e-50
    controls = good[status == 0]
    counts = [(controls == 1).sum(), (controls == 0).sum(), (controls == 2).sum()]
    assert qc.loc["v0", "hwe_p"] == pytest.approx(hwe_wigginton(*map(int, counts)), rel=1e-9)
    assert qc.loc["v5", ["n_hom_ref", "n_het", "n_hom_alt"]].tolist() == \
        qc.loc["v0", ["n_hom_ref", "n_het", "n_hom_alt"]].tolist()
    x = np.nanmean(G[4]) / 2
    assert qc.loc["v4", "maf"] == pytest.approx(min(x, 1 - x), rel=1e-12)
