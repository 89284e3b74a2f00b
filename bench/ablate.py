"""What each renderer speed-up gives: the same short featvis render with each one switched off.

Variants take turns for several rounds and the median step time of each is kept (the machine is shared).

    .venv/bin/python -m bench.ablate                      # blocks.10, 16 units, lucid preset
    .venv/bin/python -m bench.ablate --set logits --rounds 5
"""

from __future__ import annotations

import argparse
import importlib
import contextlib
import statistics
import time
import warnings

import torch

from featvis_core import preset, render

render_module = importlib.import_module("featvis_core.render")  # the package's `render` is the function

from .common import model as load_bench_model, unit_sets

warnings.filterwarnings("ignore")

# name -> (fold batch norm and padding, precision)
VARIANTS = {
    "baseline: fp32, no folding": (False, "fp32"),
    "+ bf16 autocast": (False, "bf16"),
    "+ folded BN/padding (fp32)": (True, "fp32"),
    "folded + bf16 (renderer default here)": (True, "bf16"),
}


@contextlib.contextmanager
def folding(enabled: bool):
    original = render_module.render_network
    if not enabled:
        render_module.render_network = lambda owner, module, *_: module
    try:
        yield
    finally:
        render_module.render_network = original


def median_step(model, units, config) -> float:
    ticks: list[float] = []
    render(model, units, config, on_step=lambda *_: ticks.append(time.perf_counter()))
    return statistics.median(b - a for a, b in zip(ticks[1:], ticks[2:]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="blocks.10", choices=["blocks.10", "blocks.4", "logits"])
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    model = load_bench_model()
    units = unit_sets(args.units)[args.set]
    base = preset("lucid", steps=args.steps, frames=2)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, (fold, precision) in VARIANTS.items():
            with folding(fold):
                times[name].append(median_step(model, units, base.replace(precision=precision)))
    first = statistics.median(times[next(iter(VARIANTS))])
    print(f"{args.set}, {args.units} units, lucid preset, torch {torch.__version__}, {args.rounds} rounds")
    print("| variant | ms / step (median) | rounds | speed-up |\n|---|---:|---|---:|")
    for name, values in times.items():
        value = statistics.median(values)
        print(f"| {name} | {1000 * value:.0f} | {', '.join(f'{1000 * v:.0f}' for v in values)} | {first / value:.2f}x |")


if __name__ == "__main__":
    main()
