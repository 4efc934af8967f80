"""What an experiment is, and the one runner every `memsim experiment NAME` goes through.

An experiment is a module of this package with a module-level `EXPERIMENT = Experiment(...)`:

    name, help          the subcommand and its one-line help
    add_arguments(p)    its own flags (sizes, counts), each defaulting to the full size; read
                        `ctx.quick` in `run` to shrink them for `--quick`
    run(ctx) -> dict    does the work (on its own server, in processes, offline), returns the
                        figures as plain JSON data: numbers, strings, lists, dicts
    plot(data, fig)     draws those figures on a matplotlib Figure (one picture: several axes
                        are fine, one file)
    summary(data)       what to print: rich renderables (Tables) or strings
    checks(data)        the qualitative result in words, each (claim, held): "FIFO faults 9 with 3
                        frames and 10 with 4" — printed, kept in the JSON, and what its test asserts

Plotting is apart from running so that a figure can be redrawn from the JSON alone
(`memsim experiment NAME --replot FILE.json`) and a test can check the data without pixels.

The runner owns everything else, so every experiment behaves alike: `--seed` (all randomness from
`ctx.rng()` / `ctx.seed`: same seed, same JSON figures but wall-clock ones), `--quick` (the
small size the tests use), `--out DIR` (NAME.json and NAME.png, plus NAME-VIEW.png per comparison, default
./memsim-experiments), a rich progress bar when stdout is a terminal, `--quiet`, and `ctx.map`
to fan configurations out over processes (the executor: the standard library's process pool,
or a Dask cluster with `--scheduler`).

matplotlib is imported only when a figure is drawn, with the Agg backend (no display).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from memsim.tools.executor import executor

T = TypeVar("T")
R = TypeVar("R")

JSON = dict[str, Any]
DEFAULT_OUT = "memsim-experiments"


class Figure(Protocol):
    """The part of matplotlib's Figure an experiment's plot uses (typed here so that this module
    imports no matplotlib)."""

    def add_subplot(self, *args: Any, **kwargs: Any) -> Any: ...
    def subplots(self, *args: Any, **kwargs: Any) -> Any: ...
    def suptitle(self, t: str, **kwargs: Any) -> Any: ...
    def set_size_inches(self, w: float, h: float) -> None: ...


@dataclass(frozen=True)
class Check:
    """One qualitative claim of an experiment's result, and whether this run bore it out."""

    claim: str
    held: bool


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """An experiment with no flags of its own."""


@dataclass(frozen=True)
class Experiment:
    name: str
    help: str
    run: Callable[[Context], JSON]
    plot: Callable[[JSON, Figure], None]
    summary: Callable[[JSON], Sequence[Any]]
    checks: Callable[[JSON], Sequence[Check]]
    add_arguments: Callable[[argparse.ArgumentParser], None] = no_arguments
    figsize: tuple[float, float] = (10.0, 6.0)
    # one more picture per comparison the data holds: (suffix, the data cut down to that comparison),
    # drawn by `plot` as NAME-suffix.png beside NAME.png
    views: Callable[[JSON], Sequence[tuple[str, JSON]]] = lambda data: ()


class Step(Protocol):
    def advance(self, n: int = 1) -> None: ...


@dataclass
class Context:
    """What `run` is given: its flags, the seed, the size, where to write, progress and fan-out."""

    name: str
    args: argparse.Namespace
    seed: int = 0
    quick: bool = False
    out_dir: Path = Path(DEFAULT_OUT)
    show_progress: bool = False
    scheduler: str | None = None
    workers: int | None = None
    log: list[str] = field(default_factory=list)

    def rng(self, stream: int = 0) -> np.random.Generator:
        """A generator for this run's `stream`-th independent use: same seed, same numbers."""
        return np.random.default_rng([self.seed, stream])

    @contextmanager
    def progress(self, total: int, description: str) -> Iterator[Step]:
        """A progress bar of `total` steps (a silent counter when stdout is not a terminal)."""
        if not self.show_progress:
            yield _Silent()
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task(f"{self.name}: {description}", total=total)
            yield _Bar(lambda n: bar.advance(task, n))

    def map(self, fn: Callable[[T], R], items: Iterable[T], description: str = "configurations") -> list[R]:
        """fn over items in other processes (fn and items must pickle), results in items' order,
        the progress bar advancing as each finishes."""
        todo = list(items)
        with self.progress(len(todo), description) as step, self.executor() as pool:
            futures = [pool.submit(fn, item) for item in todo]
            out: list[R] = []
            for f in futures:
                out.append(f.result())
                step.advance()
            return out

    @contextmanager
    def executor(self) -> Iterator[Executor]:
        """The executor the configurations of a sweep run on (tools/executor.py): a process pool of
        `--workers` (default: the CPUs), or the Dask cluster at `--scheduler`."""
        with executor(self.scheduler, self.workers) as pool:
            yield pool


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass


@dataclass
class _Bar:
    fn: Callable[[int], None]

    def advance(self, n: int = 1) -> None:
        self.fn(n)


def draw(exp: Experiment, data: JSON, path: Path) -> None:
    """Draw `data` with the experiment's plot and save it as a PNG at path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=exp.figsize, layout="constrained")
    try:
        exp.plot(data, fig)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    from PIL import Image  # (matplotlib's own dependency)

    # 256 colours: a chart has few, and its anti-aliased text is most of a full-colour PNG's bytes
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(256)
    small.save(path, optimize=True)


def report(exp: Experiment, ctx: Context, data: JSON, seconds: float) -> JSON:
    """The JSON document of one run: what ran, with which seed and size, the figures, the checks."""
    return {"experiment": exp.name, "seed": ctx.seed, "quick": ctx.quick, "seconds": round(seconds, 3),
            "args": {k: v for k, v in vars(ctx.args).items() if _plain(v)},
            "host": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()},
            "checks": [{"claim": c.claim, "held": c.held} for c in exp.checks(data)],
            "data": data}


def _plain(v: object) -> bool:
    return v is None or isinstance(v, (bool, int, float, str)) or (
        isinstance(v, (list, tuple)) and all(isinstance(x, (bool, int, float, str)) for x in v))


def run_experiment(exp: Experiment, args: argparse.Namespace) -> int:
    """`memsim experiment NAME ...`: run (or --replot), write NAME.json and NAME.png, print the summary."""
    from rich.console import Console

    console = Console()
    out_dir = Path(args.out)
    try:  # before the run: a directory that cannot be written is one line, not a traceback after minutes
        out_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(out_dir, os.W_OK):
            raise PermissionError(f"{out_dir} is not writable")
    except OSError as e:
        print(f"memsim experiment {exp.name}: --out {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    ctx = Context(name=exp.name, args=args, seed=args.seed, quick=args.quick, out_dir=out_dir,
                  show_progress=console.is_terminal and not args.quiet, scheduler=args.scheduler,
                  workers=args.workers)
    if args.replot:
        try:
            doc = json.loads(Path(args.replot).read_text())
        except (OSError, ValueError) as e:  # a missing file, not UTF-8, not JSON
            print(f"memsim experiment {exp.name}: --replot {args.replot}: {getattr(e, 'strerror', None) or e}",
                  file=sys.stderr)
            return 2
        if not isinstance(doc, dict) or doc.get("experiment") != exp.name:
            what = f"a {doc.get('experiment')!r} run" if isinstance(doc, dict) else "not an experiment's JSON"
            print(f"memsim experiment {exp.name}: {args.replot} is {what}", file=sys.stderr)
            return 2
        if not isinstance(doc.get("data"), dict) or not isinstance(doc.get("checks"), list):
            print(f"memsim experiment {exp.name}: {args.replot} has no 'data' and 'checks' (written by "
                  f"memsim experiment {exp.name} --out DIR?)", file=sys.stderr)
            return 2
    else:
        t0 = time.perf_counter()
        data = exp.run(ctx)
        doc = report(exp, ctx, data, time.perf_counter() - t0)
        json_path = out_dir / f"{exp.name}.json"
        json_path.write_text(json.dumps(doc, indent=1) + "\n")
    png = out_dir / f"{exp.name}.png"
    pngs = [png]
    if not args.no_png:
        draw(exp, doc["data"], png)
        for suffix, view in exp.views(doc["data"]):
            pngs.append(out_dir / f"{exp.name}-{suffix}.png")
            draw(exp, view, pngs[-1])
    if not args.quiet:
        for item in exp.summary(doc["data"]):
            console.print(item)
        for c in doc["checks"]:
            console.print(f"{'[green]✓' if c['held'] else '[red]✗'}[/] {c['claim']}")
        wrote = [str(out_dir / f"{exp.name}.json")] if not args.replot else []
        console.print(f"wrote {', '.join(wrote + ([] if args.no_png else [str(p) for p in pngs]))}")
    return 0
