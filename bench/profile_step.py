"""Where a render step's time goes: torch.profiler over a short featvis render, top operators by self time.

    .venv/bin/python -m bench.profile_step                              # lucid preset, blocks.10, 16 units
    .venv/bin/python -m bench.profile_step --precision fp32 --no-fold   # the renderer before the speed-ups
    .venv/bin/python -m bench.profile_step --set logits --steps 6
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time
import warnings

from torch.profiler import ProfilerActivity, profile

from featvis_core import preset, render

render_module = importlib.import_module("featvis_core.render")  # the package's `render` is the function

from .common import model as load_bench_model, unit_sets  # noqa: E402 - after the module alias above

warnings.filterwarnings("ignore")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="blocks.10", choices=["blocks.10", "blocks.4", "logits"])
    parser.add_argument("--preset", default="lucid")
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--no-fold", action="store_true", help="render on the original network (no BN folding)")
    parser.add_argument("--rows", type=int, default=20)
    args = parser.parse_args(argv)
    if args.no_fold:
        render_module.render_network = lambda owner, module, *_: module
    model = load_bench_model()
    units = unit_sets(args.units)[args.set]
    config = preset(args.preset, steps=args.steps, frames=2, precision=args.precision)
    render(model, units, config.replace(steps=2))  # warm-up: oneDNN primitives, the folded copy
    ticks: list[float] = []
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        render(model, units, config, on_step=lambda *_: ticks.append(time.perf_counter()))
    steps = [b - a for a, b in zip(ticks, ticks[1:])]
    print(f"{args.set}, {args.units} units, preset {args.preset}, precision {args.precision}, "
          f"fold {not args.no_fold}: median step {1000 * statistics.median(steps):.0f} ms")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
