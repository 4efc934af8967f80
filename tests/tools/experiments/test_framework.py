"""The experiment runner (tools/experiments/base.py) with an experiment defined here: the files it
writes, seed reproducibility, --replot, the fan-out's order, and the command's parser."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memsim.tools.cli import build_parser
from memsim.tools.experiments import experiments
from memsim.tools.experiments.base import Check, Context, Experiment, Figure, run_experiment


def _square(x: int) -> int:
    return x * x


def _run(ctx: Context) -> dict:
    n = 50 if ctx.quick else 5000
    draws = ctx.rng().integers(0, 100, size=n)
    return {"n": n, "mean": float(draws.mean()), "squares": ctx.map(_square, range(5))}


def _plot(data: dict, fig: Figure) -> None:
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(range(5), data["squares"], marker="o")
    ax.set_title("squares")


EXP = Experiment(name="toy", help="a toy", run=_run, plot=_plot,
                 summary=lambda d: [f"mean {d['mean']:.2f}"],
                 checks=lambda d: [Check("the squares come back in order", d["squares"] == [0, 1, 4, 9, 16])])


def _args(out: Path, **kw: object) -> argparse.Namespace:
    base = dict(seed=3, quick=True, out=str(out), no_png=False, replot=None, quiet=True, scheduler=None, workers=2)
    base.update(kw)
    return argparse.Namespace(**base)


def test_run_writes_json_and_png_and_the_seed_fixes_the_figures(tmp_path: Path) -> None:
    assert run_experiment(EXP, _args(tmp_path / "a")) == 0
    assert run_experiment(EXP, _args(tmp_path / "b")) == 0
    assert run_experiment(EXP, _args(tmp_path / "c", seed=4)) == 0
    docs = [json.loads((tmp_path / d / "toy.json").read_text()) for d in "abc"]
    assert docs[0]["data"] == docs[1]["data"] and docs[0]["data"]["mean"] != docs[2]["data"]["mean"]
    assert docs[0]["checks"] == [{"claim": "the squares come back in order", "held": True}]
    assert docs[0]["seed"] == 3 and docs[0]["quick"] is True and docs[0]["args"]["workers"] == 2
    png = (tmp_path / "a" / "toy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_replot_draws_from_the_json_alone(tmp_path: Path) -> None:
    assert run_experiment(EXP, _args(tmp_path, no_png=True)) == 0
    assert not (tmp_path / "toy.png").exists()
    assert run_experiment(EXP, _args(tmp_path, replot=str(tmp_path / "toy.json"))) == 0
    assert (tmp_path / "toy.png").read_bytes()[:4] == b"\x89PNG"
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"experiment": "belady", "data": {}}))
    assert run_experiment(EXP, _args(tmp_path, replot=str(other))) == 2


def test_every_registered_experiment_is_a_subcommand_with_the_common_flags() -> None:
    parser = build_parser()
    for name in experiments():
        args = parser.parse_args(["experiment", name, "--quick", "--seed", "7", "--out", "x"])
        assert args.experiment.name == name and args.seed == 7 and args.quick and args.out == "x"


def test_a_bad_replot_file_or_out_dir_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    bad = {"missing.json": None, "corrupt.json": "{not json", "list.json": "[1, 2]",
           "nodata.json": json.dumps({"experiment": "toy"})}
    for name, text in bad.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        assert run_experiment(EXP, _args(tmp_path / "out", replot=str(tmp_path / name))) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("memsim experiment toy: ") and err.count("\n") == 1 and name in err, err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert run_experiment(EXP, _args(blocker / "sub")) == 2
    err = capsys.readouterr().err
    assert err.startswith("memsim experiment toy: --out ") and err.count("\n") == 1, err


BAD_EXPERIMENT_FLAGS = [("belady", "--length", "0"), ("belady", "--pages", "-1"), ("belady", "--search", "-1"),
                        ("page-tables", "--spaces", "0"), ("page-tables", "--grow", "0"),
                        ("thp", "--region-mib", "0"), ("thp", "--loads", "0"), ("thp", "--huge-pages", "0"),
                        ("thrashing", "--frames", "0"), ("thrashing", "--policy", "x"),
                        ("thrashing", "--seconds", "nan"), ("thrashing", "--processes", "0"),
                        ("eviction", "--alpha", "nan"), ("eviction", "--seconds-per-size", "-1"),
                        ("gc", "--semi-space", "0")]


def test_an_experiments_bad_flag_is_refused_while_parsing(capsys) -> None:
    """Each was a traceback from inside the run (or, --alpha nan, a run that never ended)."""
    import pytest

    parser = build_parser()
    for name, flag, value in BAD_EXPERIMENT_FLAGS:
        with pytest.raises(SystemExit) as e:
            parser.parse_args(["experiment", name, flag, value])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and flag in err, (name, flag, err)
