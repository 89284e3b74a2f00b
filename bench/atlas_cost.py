"""What a whole atlas costs, in FLOPs counted on the real render, and what that means on a GPU.

    python -m bench.atlas_cost efficientnet_lite0 resnet50 [--store /path/to/store]

For each job of flows.yaml: one unit of every layer is rendered with the job's own settings under torch's
FlopCounterMode (fp32, the plain network: the FLOPs the render asks for, whatever kernels run them), times
the layer's unit count. Torchvision models are planned without their weights (nothing is downloaded): FLOPs
do not depend on weights. With --store, the seconds per unit measured by a real run (each unit's
meta.json `timings.render_s`) turn the count into this machine's achieved FLOP/s. The GPU line is an
estimate: the FLOPs divided by a stated share of a GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from featvis_core import load_model, render
from featvis_pipeline.jobs import load_job
from featvis_pipeline.plan import make_plan

ROOT = Path(__file__).resolve().parent.parent
GPUS = {"A100": 312e12, "H100": 989e12, "L4": 121e12}  # dense bf16 tensor-core peak, FLOP/s (vendor sheets)


def _counted(model, unit, config, steps: int) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        render(model, [unit], config.replace(precision="fp32", frames=1, steps=steps))
    return float(counter.get_total_flops())


def unit_flops(model, unit, config, shrink: int = 1) -> float:
    """FLOPs of rendering one unit, counted on the real optimisation (all stages, crops, copies). With
    `shrink`, counted on runs of 1/shrink and 2/shrink of the steps and extrapolated along the line
    through them (every stage and the crop phase keep their share of the steps; a render's fixed work,
    such as scoring the start and final images, is counted once). A first short run fills the per-process
    caches (the fused network copy and its agreement check), which a real run pays once per layer."""
    _counted(model, unit, config, max(1, config.steps // 64))
    if shrink <= 1:
        return _counted(model, unit, config, config.steps)
    short = config.steps // shrink
    one, two = _counted(model, unit, config, short), _counted(model, unit, config, 2 * short)
    per_step = (two - one) / short
    return one + per_step * (config.steps - short)


def measured_seconds(store: Path, model_dir: str) -> dict[str, list[float]]:
    """Seconds of optimisation per unit by layer, from a real run's meta.json files."""
    by_layer: dict[str, list[float]] = {}
    for meta in (store / model_dir).glob("*/*/meta.json"):
        data = json.loads(meta.read_text())
        seconds = (data.get("timings") or {}).get("render_s")
        if isinstance(seconds, (int, float)) and data.get("status") == "done":
            by_layer.setdefault(data["layer"], []).append(float(seconds))
    return by_layer


def job_cost(job: str, flows: Path, store: Path | None, utilisation: float, shrink: int = 1) -> dict:
    spec = load_job(flows, job)
    model = load_model(spec.model, pretrained=False)
    plan = make_plan(job, spec, model)
    layers: dict[str, list] = {}
    for planned in plan.units:
        layers.setdefault(planned.unit.layer, []).append(planned.unit)
    seconds = measured_seconds(store, plan.model_dir) if store else {}
    rows, total, measured_flops, measured_s = [], 0.0, 0.0, 0.0
    torch.manual_seed(0)
    for layer, units in layers.items():
        flops = unit_flops(model, units[0], plan.config, shrink)
        total += flops * len(units)
        row = {"layer": layer, "units": len(units), "gflop_per_unit": round(flops / 1e9, 1)}
        if layer in seconds:
            s = statistics.median(seconds[layer])
            row.update(s_per_unit=round(s, 3), gflops_here=round(flops / s / 1e9, 1))
            measured_flops += flops * len(seconds[layer])
            measured_s += sum(seconds[layer])
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"job": job, "model": spec.model, "units": len(plan.units), "pflop": round(total / 1e15, 2), "layers": rows,
              "gpu_minutes_estimate": {gpu: round(total / (peak * utilisation) / 60, 1) for gpu, peak in GPUS.items()},
              "utilisation_assumed": utilisation}
    if measured_s:
        rate = measured_flops / measured_s
        result.update(measured_tflops_here=round(rate / 1e12, 3), cpu_hours_here=round(total / rate / 3600, 2))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", nargs="+")
    parser.add_argument("--flows", type=Path, default=ROOT / "flows.yaml")
    parser.add_argument("--store", type=Path, help="a store with a real run of the job (measured seconds)")
    parser.add_argument("--utilisation", type=float, default=0.1,
                        help="share of the GPU's bf16 peak assumed (estimate): ResNet-50 training reaches about "
                             "a tenth of an A100's peak (~2,700 images/s x 12.3 GFLOP)")
    parser.add_argument("--shrink", type=int, default=8, help="count on 1/N of the steps, scaled back (1: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "atlas_cost.json")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = [job_cost(job, args.flows, args.store, args.utilisation, args.shrink) for job in args.jobs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for r in results:
        print(f"{r['job']}: {r['units']} units, {r['pflop']} PFLOP; estimated minutes on one GPU at "
              f"{r['utilisation_assumed']:.0%} of its bf16 peak: {r['gpu_minutes_estimate']}"
              + (f"; measured here {r['measured_tflops_here']} TFLOP/s -> {r['cpu_hours_here']} h" if "cpu_hours_here" in r else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
