"""Command line of the example: configure faultlens (unless ``faultlens run`` already did),
run the pipeline, print the summary."""

from __future__ import annotations

import argparse

import faultlens

from .pipeline import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scoring_pipeline", description=__doc__)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not faultlens.is_configured():  # under `faultlens run` the bootstrap configured it
        faultlens.configure(service_name="scoring-pipeline")
    summary = run(jobs=args.jobs, seed=args.seed)
    print("\n".join(summary.lines()))
    return 0
