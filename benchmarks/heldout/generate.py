#!/usr/bin/env python
"""Write a held-out cohort (input-contract files + truth) for judging the workflow.

    python benchmarks/heldout/generate.py --scenario realistic --seed 1 --out /tmp/ho
    python benchmarks/heldout/generate.py --scenario hard --households 400 --set fold_range=1.3,1.8 --out DIR
    python benchmarks/heldout/generate.py --implant ../shared/data/real/imsms_16s --seed 1 --out DIR
    python benchmarks/heldout/generate.py --list-knobs

Then ``snakemake --cores 2 --configfile DIR/config.yaml`` from a checkout of the workflow, and
``python benchmarks/heldout/score.py DIR/results DIR/truth.tsv``. See README.md here.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import heldout_implant  # noqa: E402
import heldout_sim  # noqa: E402


def parse_value(text: str, default):
    """Parse ``text`` as the type of the knob's default (tuples are comma-separated)."""
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"expected true/false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, tuple):
        items = [s.strip() for s in text.split(",") if s.strip()]
        kind = type(default[0]) if default else str
        return tuple(kind(s) for s in items)
    return text


def overrides(pairs: list[str], cls) -> dict:
    """``key=value`` pairs checked against the fields of the knob dataclass ``cls``."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set {pair!r}: write key=value")
        key, value = pair.split("=", 1)
        key = key.strip()
        if key not in defaults:
            raise ValueError(f"--set {key}: unknown knob; run --list-knobs")
        try:
            out[key] = parse_value(value.strip(), defaults[key])
        except ValueError as err:
            raise ValueError(f"--set {key}={value}: {err}") from None
    return out


def list_knobs() -> str:
    lines = ["simulate knobs (default; scenario overrides):"]
    for f in dataclasses.fields(heldout_sim.Knobs):
        over = {s: v[f.name] for s, v in heldout_sim.SCENARIOS.items() if f.name in v}
        extra = "  " + ", ".join(f"{s}={v}" for s, v in over.items()) if over else ""
        lines.append(f"  {f.name} = {f.default!r}{extra}")
    lines.append("implant knobs:")
    for f in dataclasses.fields(heldout_implant.ImplantKnobs):
        lines.append(f"  {f.name} = {f.default!r}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="output folder (created)")
    ap.add_argument("--scenario", default="realistic", choices=sorted(heldout_sim.SCENARIOS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--households", type=int, help="shortcut for --set households=N")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KNOB=VALUE",
                    help="override any knob (repeatable); tuples as comma lists")
    ap.add_argument("--implant", type=Path, metavar="IMSMS_DIR",
                    help="real-data implant mode on the iMSMS 16S folder instead of a simulated world")
    ap.add_argument("--allow-low-prevalence", action="store_true",
                    help="implant mode: allow genera below 30%% prevalence (sets min_prevalence=0)")
    ap.add_argument("--results", type=Path, help="outdir written into config.yaml (default OUT/results)")
    ap.add_argument("--list-knobs", action="store_true")
    args = ap.parse_args(argv)
    if args.list_knobs:
        print(list_knobs())
        return 0
    if args.out is None:
        ap.error("--out is required")
    try:
        if args.implant:
            sets = overrides(args.sets, heldout_implant.ImplantKnobs)
            if args.allow_low_prevalence:
                sets["min_prevalence"] = 0.0
            knobs = dataclasses.replace(heldout_implant.ImplantKnobs(), **sets)
            truth = heldout_implant.run_implant(args.implant, args.out, knobs, args.seed, args.results)
        else:
            sets = overrides(args.sets, heldout_sim.Knobs)
            if args.households is not None:
                sets["households"] = args.households
            knobs = heldout_sim.make_knobs(args.scenario, **sets)
            world = heldout_sim.simulate_world(knobs, args.seed)
            truth = heldout_sim.write_world(world, args.out, args.scenario, args.results)
    except (ValueError, FileNotFoundError) as err:
        print(f"generate.py: {err}", file=sys.stderr)
        return 2
    top = truth[truth["rank"] == truth["rank"].iloc[-1]] if args.implant else truth[truth["rank"] == "species"]
    summary = top["class"].value_counts().to_dict()
    prog = top["progression_class"].value_counts().to_dict()
    print(f"wrote {args.out}: {summary} (MS risk), {prog} (progression) at {top['rank'].iloc[0]} rank; "
          f"run: snakemake --cores 2 --configfile {args.out / 'config.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
