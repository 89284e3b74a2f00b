"""`featvis`: the command line.

    featvis render MODEL UNITS...     ad-hoc renders (no Prefect, no store)
    featvis layers MODEL              a model's layers, channel counts and sizes
    featvis run JOB [--dry-run]       run a flows.yaml job as a Prefect flow into its store
    featvis status JOB                how far a job is
    featvis explain IMAGE [--model M]  top-5, saliency (Captum) and activation maps of one image
    featvis examples JOB              only a job's real-image extras (dataset examples, explain, circuits, zoom)
    featvis verify [JOB] [--repair]   check every stored unit against its checksums
    featvis deploy [--job NAME]       serve jobs as Prefect deployments (their cron schedules)
    featvis site build|serve|publish  the gallery

User errors (unknown model, layer, class, bad flows.yaml...) print one line and exit with status 2,
before any model is loaded where possible; an error of the machine (disk full, permission denied) prints
one line and exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from featvis_core import FeatvisError
from featvis_core.config import DEFAULT_PRESET, PRESETS

from .stopping import Stopped, exit_code
from .storeformat import StoreFormatError

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_ENABLED": "true",
    "NO_MKDOCS_2_WARNING": "true",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), like every other error of featvis."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="featvis", description="Render and publish feature-visualization atlases.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render = commands.add_parser("render", help="render units of a model now, without the pipeline")
    render.add_argument("model", help="efficientnet_lite0, a torchvision name, timm:NAME or package.module:factory")
    render.add_argument("units", nargs="+", help="selectors such as blocks.10:0-7, blocks.10:!3, logits:hen,pelican")
    render.add_argument("--preset", default=DEFAULT_PRESET,
                        help=f"{DEFAULT_PRESET} (default), {', '.join(p for p in PRESETS if p != DEFAULT_PRESET)}")
    render.add_argument("--out", type=Path, default=Path("renders"), help="output folder (default: renders)")
    render.add_argument("--steps", type=int, help="override the preset's steps (in all)")
    render.add_argument("--size", type=int, help="override the preset's image size (the final size)")
    render.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override any render setting, e.g. --set lr=0.05 --set param=pixel")
    render.add_argument("--batch", type=int, default=16, help="images per optimisation (default 16)")
    render.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: first GPU, else cpu)")
    render.add_argument("--scores", action="store_true", help="score logit images (self and lite1 top-1/top-5)")
    render.add_argument("--timings", action="store_true", help="account for every second of the run, phase by phase")

    layers = commands.add_parser("layers", help="list a model's layers with channel counts")
    layers.add_argument("model")
    layers.add_argument("--size", type=int, help="input size for the spatial sizes (default: the model's)")
    layers.add_argument("--depth", type=int, help="list every layer up to this module depth (default: 2, plus the "
                        "blocks and MLP hidden units of token and channels-last models, as deep as they nest)")

    for name, help_text in [("run", "run a job of flows.yaml"), ("status", "show a job's progress")]:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("job")
        command.add_argument("--flows", type=Path, default=Path("flows.yaml"))
        if name == "run":
            command.add_argument("--dry-run", action="store_true", help="print the plan and exit")
            command.add_argument("--site", type=Path, help="build the gallery into this folder afterwards")

    explain = commands.add_parser("explain", help="top-5 predictions, saliency and activation maps of one image")
    explain.add_argument("image", type=Path, help="a JPEG or PNG file")
    explain.add_argument("--model", default="efficientnet_lite0", help="the classifier (default efficientnet_lite0)")
    explain.add_argument("--layer", help="layer for the activation maps (default: the model's last listed layer)")
    explain.add_argument("--channels", type=int, default=8, help="most active channels to map (default 8)")
    explain.add_argument("--out", type=Path, default=Path("explain"), help="output folder (default: explain)")

    examples = commands.add_parser("examples", help="only a job's dataset examples, explain pages, circuits, zoom")
    examples.add_argument("job")
    examples.add_argument("--flows", type=Path, default=Path("flows.yaml"))

    verify = commands.add_parser("verify", help="check stored units against their checksums")
    verify.add_argument("job", nargs="?", help="only this job's units (default: every job of flows.yaml)")
    verify.add_argument("--flows", type=Path, default=Path("flows.yaml"))
    verify.add_argument("--repair", action="store_true", help="remove corrupt units so the next run re-renders them")

    deploy = commands.add_parser("deploy", help="serve jobs as Prefect deployments")
    deploy.add_argument("--flows", type=Path, default=Path("flows.yaml"))
    deploy.add_argument("--job", action="append", default=[], help="serve this job even without a cron (repeatable)")

    site = commands.add_parser("site", help="build, serve or publish the gallery", add_help=False)
    site.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        if argv[:1] == ["site"]:  # the gallery has its own parser: featvis site --help
            from featvis_site.cli import main as site_main

            return site_main(argv[1:])
        from . import commands

        try:
            args = _parser().parse_args(argv)
        except SystemExit as exit_:  # --help (0) or a usage error (2, its one line already printed)
            return int(exit_.code or 0)
        return getattr(commands, args.command)(args)
    except (FeatvisError, StoreFormatError) as error:
        print(f"featvis: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a permission, a path: the machine's state, not a bug
        print(f"featvis: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except Stopped as stop:
        return exit_code(stop.signum)
    except KeyboardInterrupt:
        print("featvis: interrupted", file=sys.stderr)
        return 130


def _one_line(error: BaseException | str) -> str:
    from .terminal import printable

    return printable(error)


if __name__ == "__main__":
    sys.exit(main())
