"""What each renderer speed-up gives: the same short featvis render with the speed-ups switched on one by one.

Every variant runs in its own fresh process (the allocator setting is process-wide and cannot be undone),
variants take turns for several rounds, and the median step time of each is kept.

    .venv/bin/python -m bench.ablate                      # blocks.10, 16 units, lucid preset, 3 rounds
    .venv/bin/python -m bench.ablate --set logits --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import statistics
import subprocess
import sys
import time
import warnings

# name -> (fold batch norm and padding, precision, strided depthwise convs kept in fp32, keep freed memory)
VARIANTS = {
    "baseline: fp32, no folding": (False, "fp32", False, False),
    "+ folded BN and padding": (True, "fp32", False, False),
    "+ bf16 (every conv)": (True, "bf16", False, False),
    "+ strided depthwise convs in fp32": (True, "bf16", True, False),
    "+ allocator keeps freed memory (renderer default)": (True, "bf16", True, True),
    "the same in fp32 (folded, allocator, no bf16)": (True, "fp32", False, True),
}


@contextlib.contextmanager
def switched(fold: bool, fp32_strided: bool, keep_memory: bool):
    """Switch speed-ups off by patching the renderer's module attributes (restored on exit)."""
    render_module = importlib.import_module("featvis_core.render")
    fastnet = importlib.import_module("featvis_core.fastnet")
    saved = render_module.render_network, render_module.keep_freed_memory, fastnet.strided_depthwise_in_fp32
    if not fold:
        render_module.render_network = lambda owner, module, *_: module
    if not keep_memory:
        render_module.keep_freed_memory = lambda: False
    if not fp32_strided:
        fastnet.strided_depthwise_in_fp32 = lambda *_: None
    try:
        yield
    finally:
        render_module.render_network, render_module.keep_freed_memory, fastnet.strided_depthwise_in_fp32 = saved


def median_step(set_name: str, units: int, steps: int, variant: str) -> float:
    """Run in the child process: one short render, median seconds per step after two warm-up steps."""
    from featvis_core import preset, render

    from .common import model as load_bench_model, unit_sets

    fold, precision, fp32_strided, keep_memory = VARIANTS[variant]
    model = load_bench_model()
    config = preset("lucid", steps=steps, frames=2, precision=precision)
    ticks: list[float] = []
    with switched(fold, fp32_strided, keep_memory):
        render(model, unit_sets(units)[set_name], config, on_step=lambda *_: ticks.append(time.perf_counter()))
    return statistics.median(b - a for a, b in zip(ticks[1:], ticks[2:]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="blocks.10", choices=["blocks.10", "blocks.4", "logits"])
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # child process: time one variant, print JSON
    args = parser.parse_args(argv)
    if args.variant:
        warnings.filterwarnings("ignore")
        print(json.dumps(median_step(args.set, args.units, args.steps, args.variant)))
        return
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name in VARIANTS:
            child = [sys.executable, "-m", "bench.ablate", "--set", args.set, "--units", str(args.units),
                     "--steps", str(args.steps), "--variant", name]
            out = subprocess.run(child, capture_output=True, text=True, check=True).stdout
            times[name].append(json.loads(out.strip().splitlines()[-1]))
    import torch

    first = statistics.median(times[next(iter(VARIANTS))])
    print(f"{args.set}, {args.units} units, lucid preset, {args.steps} steps, torch {torch.__version__}, {args.rounds} rounds")
    print("| variant | ms / step (median) | rounds | speed-up |\n|---|---:|---|---:|")
    for name, values in times.items():
        value = statistics.median(values)
        print(f"| {name} | {1000 * value:.0f} | {', '.join(f'{1000 * v:.0f}' for v in values)} | {first / value:.2f}x |")


if __name__ == "__main__":
    main()
