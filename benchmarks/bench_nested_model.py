"""Speed of the household-within-site model (imsms_lmm) against statsmodels' nested MixedLM.

    python benchmarks/bench_nested_model.py [--households 300 --features 200 --statsmodels 3]

Prints seconds per feature for each and the ratio; checks the optimum is no worse first.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_models_nested_model import simulate  # noqa: E402

from workflow_scripts.models.nested_model import fit_nested_random_intercepts  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=300)
    parser.add_argument("--features", type=int, default=200)
    parser.add_argument("--statsmodels", type=int, default=3, help="features fitted by statsmodels")
    args = parser.parse_args(argv)
    Y, X, hh, site = simulate(seed=5, n_households=args.households, n_sites=3, p=args.features)
    start = time.perf_counter()
    fit = fit_nested_random_intercepts(Y, X, hh, site)
    ours = (time.perf_counter() - start) / Y.shape[1]
    frame = pd.DataFrame({"status": X[:, 1], "age": X[:, 2], "hh": hh.astype(str), "site": site.astype(str)})
    times = []
    for j in range(args.statsmodels):
        frame["y"] = Y[:, j]
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sm = smf.mixedlm("y ~ status + age", frame, groups="site", vc_formula={"hh": "0 + C(hh)"}).fit(reml=True)
        times.append(time.perf_counter() - start)
        assert fit.loglik[j] >= sm.llf - 1e-6, "statsmodels found a better optimum"
    print(f"ours {ours * 1e3:.2f} ms/feature; statsmodels {np.mean(times):.2f} s/feature; "
          f"ratio {np.mean(times) / ours:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
