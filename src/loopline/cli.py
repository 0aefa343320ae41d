"""The `loopline` command (also `python -m loopline`): a thin argparse layer over the demo.

`main(argv)` parses, runs the subcommand and returns the exit status: 0 on success, 2
for a usage or input error, reported as one line on stderr without a traceback, 130
when interrupted. The demo itself lives in `loopline.demo` and is imported only when
the subcommand runs, so `loopline --help` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PROG = "loopline"


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= `minimum`, else a message saying which."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    return parse


_positive, _seed = _int_at_least(1), _int_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    """The `loopline` argument parser, with its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="loopline: PyTorch data that does not flow in a straight line."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="train a forecaster three ways on Lorenz-63 (or your CSV) and compare",
        description=(
            "Stream Lorenz-63 trajectories (or windows of a CSV series) through "
            "from_generator, DataLoader workers and forever; train one small forecaster "
            "three ways (teacher forcing, unroll, pushforward); roll each out from "
            "held-out states beside baselines (persistence, a linear AR model, and with "
            "--season a seasonal naive forecast); print a table of errors, valid times and "
            "throughput with a closing verdict; and save a figure."
        ),
    )
    data = demo.add_argument_group("data (default: Lorenz-63, integrated on the fly)")
    data.add_argument("--csv", type=Path, metavar="FILE", help="a CSV file with a header row")
    data.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="NAME",
        help="a column of FILE to forecast; repeat it (or use a,b,c) for a multivariate series",
    )
    data.add_argument(
        "--time-column", metavar="NAME", help="increasing numbers or ISO dates: the time axis"
    )
    data.add_argument(
        "--noise", metavar="F",
        help="Lorenz-63 observed with Gaussian noise of F times each coordinate's spread "
        "(0.02); 0: clean. Scored against the clean truth",
    )  # fmt: skip
    data.add_argument(
        "--season", metavar="N",
        help="with --csv: the series' period in rows, for a seasonal naive baseline",
    )  # fmt: skip
    train = demo.add_argument_group("training")
    train.add_argument(
        "--steps", type=_positive, default=3000, metavar="N",
        help="Adam steps per method (3000), the first 3/4 one-step and shared",
    )  # fmt: skip
    train.add_argument(
        "--batch-size", type=_positive, default=256, metavar="N", help="windows per batch (256)"
    )
    train.add_argument(
        "--window", type=_positive, default=8, metavar="N", help="steps per training window (8)"
    )
    train.add_argument(
        "--horizon",
        type=_positive,
        metavar="N",
        help="steps rolled out to test (1656, 15 Lyapunov times; 100 for a CSV)",
    )
    train.add_argument(
        "--workers", type=_positive, default=2, metavar="N", help="DataLoader workers (2)"
    )
    train.add_argument(
        "--seed", type=_seed, default=0, metavar="N", help="makes the run reproducible (0)"
    )
    train.add_argument(
        "--model", metavar="NAME",
        help="the forecaster: quadratic (an RK4 step of a learned linear + quadratic field; "
        "Lorenz-63's default) or mlp (x + 0.1 f(x), f a GELU MLP; a CSV's default)",
    )  # fmt: skip
    train.add_argument("--device", help="cpu, cuda, cuda:1... (cuda when available)")
    output = demo.add_argument_group("output and checkpoints")
    output.add_argument(
        "--out", type=Path, default=Path("loopline-demo"), metavar="DIR",
        help="where the figure goes (./loopline-demo)",
    )  # fmt: skip
    output.add_argument("--quiet", action="store_true", help="no progress bars")
    output.add_argument(
        "--checkpoint", type=Path, metavar="DIR",
        help="save progress in DIR; rerunning with the same DIR resumes exactly",
    )  # fmt: skip
    output.add_argument(
        "--checkpoint-every", type=_positive, default=200, metavar="N",
        help="steps between checkpoints (200)",
    )  # fmt: skip
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `loopline` command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version and usage errors
        return exit.code if isinstance(exit.code, int) else 2
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        resume = getattr(args, "checkpoint", None)
        hint = f"; rerun with --checkpoint {resume} to resume" if resume is not None else ""
        print(f"{PROG} {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


def _demo(args: argparse.Namespace) -> int:
    from loopline.demo.run import DemoError, Options, run

    names = [name.strip() for entry in args.column for name in entry.split(",")]
    columns = list(dict.fromkeys(name for name in names if name))  # in order, once each
    try:
        # Parsed here, not by argparse, so that a bad value is one line (checked by run).
        noise = _number(DemoError, "--noise", args.noise, float)
        season = _number(DemoError, "--season", args.season, int)
        run(
            Options(
                steps=args.steps,
                batch_size=args.batch_size,
                window=args.window,
                horizon=args.horizon,
                seed=args.seed,
                device=args.device,
                workers=args.workers,
                out=args.out,
                quiet=args.quiet,
                checkpoint=args.checkpoint,
                checkpoint_every=args.checkpoint_every,
                csv=args.csv,
                columns=columns,
                time_column=args.time_column,
                noise=noise,
                season=season,
                model=args.model,
            )
        )
    except DemoError as error:
        print(f"{PROG} demo: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a disk that fills up, a path that vanishes mid-run
        where = f": {error.filename}" if error.filename else ""
        print(f"{PROG} demo: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    return 0


def _number(error: type[Exception], flag: str, text: str | None, kind: type) -> Any:
    """`text` as a `kind` (int or float), None for None; else `error` naming `flag`."""
    try:
        return None if text is None else kind(text)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise error(f"{flag} {text}: expected {expected}") from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("loopline")
    except PackageNotFoundError:
        return "unknown"
