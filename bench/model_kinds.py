"""Seconds per unit of whole `featvis render` processes on other kinds of model, side by side in one run.

    python -m bench.model_kinds [--units 4] [--steps 64] [--rounds 2] [--out bench/results/model_kinds.json]

Each command is a whole process, as a user runs it (start-up, model load, probe, render, writing files),
timed in turn, round after round, so both see the same machine. The rows:

* `vit_b_16` (torchvision, random weights: speed only) at the MLP hidden units of its block 6, and of
  blocks 2 and 11, which shows that the forward still stops at the target block;
* `efficientnet_lite0` (embedded) at channels of `blocks.10`, the house's reference.

ViT-B/16 accepts only 224 px, so every view it is shown is resampled to 224 px: it gets no cheap crop
windows or small early stages, which the convolutional model does.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACTIVATION = re.compile(r"activation (\S+) -> (\S+)")


def rows(units: int) -> dict[str, tuple[str, str]]:
    last = units - 1
    return {
        "vit_b_16 block 6 MLP": ("bench.random_models:vit_b_16", f"encoder.layers.encoder_layer_6.mlp.1:0-{last}"),
        "vit_b_16 block 2 MLP": ("bench.random_models:vit_b_16", f"encoder.layers.encoder_layer_2.mlp.1:0-{last}"),
        "vit_b_16 block 11 MLP": ("bench.random_models:vit_b_16", f"encoder.layers.encoder_layer_11.mlp.1:0-{last}"),
        "efficientnet_lite0 blocks.10": ("efficientnet_lite0", f"blocks.10:0-{last}"),
    }


def run_once(model: str, selector: str, steps: int, out: Path) -> dict:
    command = [sys.executable, "-m", "featvis_pipeline.cli", "render", model, selector, "--steps", str(steps),
               "--out", str(out)]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - began
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    rises = [(float(a), float(b)) for a, b in ACTIVATION.findall(done.stdout + done.stderr)]
    return {"seconds": round(seconds, 2), "activations": rises}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=4)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    table = rows(args.units)
    times: dict[str, list[float]] = {name: [] for name in table}
    rises: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, (model, selector) in table.items():
                result = run_once(model, selector, args.steps, Path(tmp) / f"r{round_}")
                times[name].append(result["seconds"] / args.units)
                rises[name] = result["activations"]
                print(f"round {round_ + 1}: {name}: {result['seconds']:.1f} s whole, "
                      f"{result['seconds'] / args.units:.2f} s/unit", flush=True)
    best = {name: min(values) for name, values in times.items()}
    reference = best["efficientnet_lite0 blocks.10"]
    summary = {name: {"s_per_unit": round(best[name], 2), "vs_lite0_blocks10": round(best[name] / reference, 2),
                      "all_rounds": [round(v, 2) for v in times[name]],
                      "activation_start_final": rises[name]} for name in table}
    summary["block 11 / block 2"] = round(best["vit_b_16 block 11 MLP"] / best["vit_b_16 block 2 MLP"], 2)
    summary["settings"] = {"units": args.units, "steps": args.steps, "rounds": args.rounds,
                           "preset": "coarse-to-fine (default)"}
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
