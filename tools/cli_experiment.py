"""`memsim experiment NAME`: the parsers (the experiments are tools/experiments/)."""

from __future__ import annotations

import argparse
import sys

from memsim.tools.executor import ExecutorUnavailable
from memsim.tools.experiments import experiments
from memsim.tools.experiments.base import DEFAULT_OUT, run_experiment
from memsim.tools.flags import Parser, whole


def cmd_experiment(args: argparse.Namespace) -> int:
    try:
        return run_experiment(args.experiment, args)
    except ExecutorUnavailable as e:  # --scheduler without Dask, or a scheduler not reachable
        print(f"memsim experiment {args.name}: {e}", file=sys.stderr)
        return 1


def add_experiment_parsers(sub: argparse._SubParsersAction[Parser]) -> argparse.ArgumentParser:
    p = sub.add_parser("experiment", help="run one experiment (a phenomenon of memory systems): "
                                          "a table, JSON and a PNG")
    esub = p.add_subparsers(dest="name", required=True, metavar="NAME")
    for name, exp in experiments().items():
        s = esub.add_parser(name, help=exp.help, description=exp.help)
        exp.add_arguments(s)
        s.add_argument("--seed", type=whole(0), default=1, help="seed of every random choice (default 1)")
        s.add_argument("--quick", action="store_true", help="a small size that runs in seconds (the tests use it)")
        s.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                       help=f"write {name}.json and {name}.png here (default ./{DEFAULT_OUT})")
        s.add_argument("--no-png", action="store_true", help="do not draw the figure")
        s.add_argument("--replot", metavar="JSON", help="draw the figure again from a run's JSON, run nothing")
        s.add_argument("--quiet", action="store_true", help="print nothing")
        s.add_argument("--scheduler", metavar="ADDR",
                       help="run a sweep's configurations on this Dask scheduler (tcp://host:8786) "
                            "instead of local processes")
        s.add_argument("--workers", type=whole(1), help="local processes of a sweep (default: the CPUs)")
        s.set_defaults(func=cmd_experiment, experiment=exp)
    return p
