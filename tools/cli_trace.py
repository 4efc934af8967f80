"""`memsim trace ...`: request traces from the command line.

    memsim trace mrc TRACE [--format F] [--csv OPTIONS] [--sizes N ...|--points N]
                           [--shards RATE|--shards-smax S] [--compare] [--json OUT] [--png OUT]
    memsim trace stats TRACE [--format F] [--csv OPTIONS] [--json]
    memsim trace capture (--cache|--space N) --seconds S --out FILE [--format F] [--limit N] [--target HOST:PORT]
    memsim trace replay TRACE [--policies P,...] [--sizes N,...] [--scheduler ADDR] [--json OUT] [--png OUT]
                              (tools/trace_replay.py)

Owns the `trace` group's parsers and commands; the work is sim/trace's (formats, curves, figures)
and tools/capture.py's (a live server's records).
A subcommand is a function `_add_X(tsub)` that adds its parser and sets `func`, plus one call in
`add_trace_parsers`. Like cli.py, this module imports no gRPC: a command that talks to a server
imports the client when it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Literal

from memsim.server.limits import MAX_MONITOR_SECONDS
from memsim.sim.trace.io import FORMATS
from memsim.sim.trace.monitor import DEFAULT_LIMIT, MAX_LIMIT
from memsim.sim.trace.text import CsvColumns, parse_columns
from memsim.tools.flags import (
    COUNT,
    DEFAULT_TARGET,
    SECONDS,
    TARGET_HELP,
    Parser,
    out_file,
    real,
    server_error,
    target,
    whole,
)
from memsim.tools.trace_replay import add_replay

FORMAT_HELP = f"the trace's format: {', '.join(FORMATS)} (default: from the suffix, else the content)"


def _csv_options(text: str) -> CsvColumns:
    try:
        return parse_columns(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _trace_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", help="the trace file")
    p.add_argument("--format", "-f", choices=FORMATS, default=None, help=FORMAT_HELP)
    p.add_argument("--csv", type=_csv_options, default=None, metavar="OPTIONS",
                   help="a CSV's columns as libCacheSim's cachesim takes them (1-based), e.g. "
                        "'time-col=1,obj-id-col=2,obj-size-col=3,op-col=4,delimiter=;,has-header=false' "
                        "(default: by the header's names, else time,key,size,op)")


def _open_error(args: argparse.Namespace, e: Exception) -> int:
    print(f"{args.prog}: {args.trace}: {e}", file=sys.stderr)
    return 2


def _write_json(path: str, doc: dict[str, object]) -> None:
    if path == "-":
        print(json.dumps(doc, indent=2))
        return
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)


def cmd_mrc(args: argparse.Namespace) -> int:
    from memsim.sim.trace.io import open_trace, read_keys
    from memsim.sim.trace.mrc import Curve, exact, mae, shards_rate, shards_size
    from memsim.tools.tracereport import render_curves, write_mrc_png

    try:
        reader = open_trace(args.trace, args.format, columns=args.csv)
        curves: list[Curve] = []
        if args.shards is not None:
            curves.append(shards_rate(reader, args.shards, args.sizes, args.points))
        elif args.shards_smax is not None:
            curves.append(shards_size(reader, args.shards_smax, args.sizes, args.points))
        if not curves or args.compare:
            sizes = curves[0].sizes if curves else args.sizes
            curves.insert(0, exact(read_keys(args.trace, reader.fmt, columns=args.csv), sizes, args.points))
    except (OSError, ValueError) as e:
        return _open_error(args, e)
    error = mae(curves[0], curves[1]) if len(curves) == 2 else None
    if args.json:
        _write_json(args.json, {"trace": args.trace, "format": reader.fmt, "curves": [c.to_dict() for c in curves],
                                "shards_mae": error})
    if args.json != "-":
        render_curves(curves, error)
    if args.png:
        write_mrc_png(args.png, curves, f"LRU miss-ratio curve: {os.path.basename(args.trace)}")
        if args.json != "-":
            print(f"wrote {args.png}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from memsim.sim.trace.io import open_trace
    from memsim.sim.trace.stats import trace_stats
    from memsim.tools.tracereport import render_stats

    try:
        st = trace_stats(open_trace(args.trace, args.format, columns=args.csv))
    except (OSError, ValueError) as e:
        return _open_error(args, e)
    if args.json:
        print(json.dumps(st.to_dict(), indent=2))
    else:
        render_stats(st)
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    from memsim.client import MemsimError
    from memsim.tools.capture import capture

    service: Literal["cache", "vm"] = "cache" if args.cache else "vm"
    what = "the cache's commands" if args.cache else f"space {args.space}'s page accesses"
    print(f"capturing {what} on {args.target} for {args.seconds:g} s ...", file=sys.stderr)
    try:
        summary = capture(args.target, service, args.seconds, args.out, args.format,
                          space=args.space or 0, limit=args.limit, timeout=args.timeout)
    except MemsimError as e:
        return server_error("trace capture", args.target, e, e.code.name)
    except (OSError, ValueError) as e:
        print(f"{args.prog}: {args.out}: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(summary.text())
    return 1 if sum(summary.lost.values()) else 0


def _add_mrc(tsub: argparse._SubParsersAction[Parser]) -> None:
    s = tsub.add_parser("mrc", help="LRU's miss-ratio curve in one pass (stack distances), or by SHARDS sampling")
    _trace_arg(s)
    size = s.add_mutually_exclusive_group()
    size.add_argument("--sizes", type=COUNT, nargs="+", help="cache sizes in objects (default: --points sizes)")
    size.add_argument("--points", type=whole(1, 100_000), default=100,
                      help="that many sizes evenly spaced up to the footprint (default 100)")
    how = s.add_mutually_exclusive_group()
    how.add_argument("--shards", type=real(0, 1, above=True), metavar="RATE",
                     help="fixed-rate SHARDS: sample keys at this rate (e.g. 0.01) instead of the exact pass")
    how.add_argument("--shards-smax", type=COUNT, metavar="S",
                     help="fixed-size SHARDS: track at most S keys, lowering the rate as needed (O(S) memory)")
    s.add_argument("--compare", action="store_true", help="with SHARDS: also the exact curve, and the error between")
    s.add_argument("--json", type=out_file, metavar="OUT",
                   help="write the curve(s) as JSON to OUT ('-': stdout, no table)")
    s.add_argument("--png", type=out_file, metavar="OUT", help="plot the curve(s) to OUT")
    s.set_defaults(func=cmd_mrc, prog=s.prog)


def _add_stats(tsub: argparse._SubParsersAction[Parser]) -> None:
    s = tsub.add_parser("stats", help="requests, footprint, one-hit wonders, reuse distances, op mix")
    _trace_arg(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_stats, prog=s.prog)


def _add_capture(tsub: argparse._SubParsersAction[Parser]) -> None:
    s = tsub.add_parser("capture", help="record a live server's cache commands or a space's page accesses "
                                         "from every core, as a trace file")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--cache", action="store_true", help="the cache's commands, one request per key (MONITOR)")
    what.add_argument("--space", type=whole(0), help="this VM address space's page accesses, one per page")
    s.add_argument("--seconds", type=real(0, MAX_MONITOR_SECONDS, above=True), required=True,
                   help="how long to record")
    s.add_argument("--out", "-o", required=True, help="the trace file to write")
    s.add_argument("--format", "-f", choices=FORMATS, default=None,
                   help=f"{', '.join(FORMATS)} (default: from --out's suffix, else csv)")
    s.add_argument("--limit", type=whole(0, MAX_LIMIT), default=0,
                   help=f"records each core buffers for this capture; past it they are lost and counted "
                        f"(default {DEFAULT_LIMIT})")
    s.add_argument("--target", type=target, default=DEFAULT_TARGET, help=TARGET_HELP)
    s.add_argument("--timeout", type=SECONDS, default=10.0, help="seconds to wait for the server (default 10)")
    s.add_argument("--json", action="store_true", help="the summary as JSON")
    s.set_defaults(func=cmd_capture, prog=s.prog)


def add_trace_parsers(sub: argparse._SubParsersAction[Parser]) -> argparse.ArgumentParser:
    """`memsim trace ...` under the top-level subparsers `sub`; returns the `trace` parser."""
    t = sub.add_parser("trace", help="request traces: miss-ratio curves, figures, capture from a live server")
    tsub = t.add_subparsers(dest="trace_cmd", required=True)
    _add_mrc(tsub)
    _add_stats(tsub)
    _add_capture(tsub)
    add_replay(tsub)
    return t
