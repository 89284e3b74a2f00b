"""Renderer benchmark: speed and image quality of featvis next to Lucent and seed 000's plain loop.

Every method runs in this one process on the same model (embedded efficientnet_lite0) and the same units,
and every final image is judged by one shared evaluator (bench/common.py). Timings on a shared CPU are
noisy, so speed ratios come from an interleaved probe (methods take turns, several rounds, median).

    .venv/bin/python -m bench.bench_render all --quick        # ~10 min: 4 units per set, 64 steps
    .venv/bin/python -m bench.bench_render all                # full: 16 units per set, 512 steps (hours)
    .venv/bin/python -m bench.bench_render quality --sets blocks.10 --methods lucent,featvis-lucid
    .venv/bin/python -m bench.bench_render speed              # interleaved speed probe + FLOP/s
    .venv/bin/python -m bench.bench_render scaling            # cost vs batch size and image size

Results go to bench/results/<quick|full>/: results.json, table.md, and a contact sheet per method and set.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from featvis_core import preset, render
from featvis_core.fastnet import fast_bfloat16
from featvis_core.media import contact_sheet
from featvis_core.scores import class_rates
from featvis_core.units import LOGITS

from .common import Machine, activation, matmul_peak, model as load_bench_model, step_flops, transfer_model, unit_sets
from .peers import Run, run_featvis, run_lucent, run_seed000

warnings.filterwarnings("ignore")
RESULTS = Path(__file__).parent / "results"

# name -> (runner, uses the benchmark's size/steps). featvis-fast keeps its own settings: it is the trade-off.
METHODS = {
    "lucent": (lambda m, u, size, steps: run_lucent(m, u, size, steps), True),
    "seed000": (lambda m, u, size, steps: run_seed000(m, u, size, steps), True),
    "featvis-lucid": (lambda m, u, size, steps: run_featvis(m, u, "lucid", size, steps), True),
    # Lucent's settings, but the model sees the padded 152 px canvas as is instead of upsampled to 224.
    "featvis-lucid-native": (lambda m, u, size, steps: run_featvis(m, u, "lucid", size, steps, augment={"output": None}), True),
    # Lucent's settings; the first 7/8 of the steps see a random 128 px window of the 224 px view.
    "featvis-lucid-crop": (lambda m, u, size, steps: run_featvis(m, u, "lucid-crop", size, steps), True),
    "featvis-fast": (lambda m, u, size, steps: run_featvis(m, u, "fast", None, None), False),
}


def settings(args) -> dict:
    quick = args.quick
    return {
        "mode": "quick" if quick else "full",
        "units": args.units or (4 if quick else 16),
        "steps": args.steps or (64 if quick else 512),
        "size": args.size,
    }


# -- quality (and wall-clock of whole runs) ----------------------------------------------------------------
def quality(args, out: Path) -> dict:
    model = load_bench_model()
    transfer = transfer_model() if LOGITS in args.sets.split(",") else None
    conf = settings(args)
    sets = unit_sets(conf["units"])
    table = _load(out).get("quality", {})  # runs of other sets or methods in the same folder are kept
    for set_name in args.sets.split(","):
        units = sets[set_name]
        rows = table.setdefault(set_name, {"units": [u.spec for u in units], "methods": {}})
        for method in args.methods.split(","):
            runner, equal = METHODS[method]
            mine = units if method.startswith("featvis") else units[: args.peer_units or len(units)]
            load = Machine.now().load
            began_cpu = time.process_time()
            run: Run = runner(model, mine, conf["size"], conf["steps"])
            cpu = time.process_time() - began_cpu
            row = describe(run, mine, model, transfer, equal, cpu, load)
            rows["methods"][method] = row
            sheet = contact_sheet(list(run.images), columns=8, size=96,
                                  labels=[_label(model, u) for u in mine])
            (out / "sheets").mkdir(parents=True, exist_ok=True)
            sheet.save(out / "sheets" / f"{set_name}_{method}.png")
            print(f"{set_name:9s} {method:14s} {json.dumps(row)}", flush=True)
            _save(out, "quality", table, conf, (set_name,))
    return table


def _label(model, unit) -> str:
    return f"{unit.index} {model.classes[unit.index]}" if unit.layer == LOGITS else f"ch {unit.index}"


def describe(run: Run, units, model, transfer, equal: bool, cpu: float, load) -> dict:
    """Speed and quality numbers of one method's run on one unit set."""
    scores = activation(model, run.images, units)
    row = {
        "equal_settings": equal, "steps": run.steps, "size": run.images.shape[-1], "seconds": round(run.seconds, 2),
        "cpu_seconds": round(cpu, 2), "load": [round(x, 2) for x in load],
        "units_per_min": round(60 * len(units) / run.seconds, 3),
        "image_steps_per_s": round(len(units) * run.steps / run.seconds, 3),
        "activation_mean": round(float(scores.mean()), 3),
        "activation_median": round(float(scores.median()), 3),
        "activation": [round(float(s), 3) for s in scores],
    }
    if units[0].layer == LOGITS:
        classes = [u.index for u in units]
        self1, _ = class_rates(model, run.images, classes, views=16)
        top1, top5 = class_rates(transfer, run.images, classes, views=16)
        row.update(self_top1=round(float(self1.mean()), 3), lite1_top1=round(float(top1.mean()), 3),
                   lite1_top5=round(float(top5.mean()), 3))
    return row


# -- interleaved speed probe, FLOP/s and machine limit --------------------------------------------------
def probe_seconds(method: str, model, batch, conf: dict, probe: int) -> float:
    """Seconds per unit-step of one short burst. A run with a crop phase is two kinds of step, so both
    are timed and weighted by their share of a full run (a short burst would be all crop steps)."""
    if method == "featvis-fast":
        return run_featvis(model, batch, "fast", None, probe).unit_step_seconds()
    if method == "featvis-lucid-crop":
        share = preset("lucid-crop").crop_share
        crop, whole = (run_featvis(model, batch, "lucid-crop", conf["size"], probe, crop_share=s).unit_step_seconds()
                       for s in (1.0, 0.0))
        return share * crop + (1 - share) * whole
    runner, _equal = METHODS[method]
    return runner(model, batch, conf["size"], probe).unit_step_seconds()


def speed(args, out: Path) -> dict:
    """Seconds per unit-step of each method at equal size, each method in turn for several rounds.
    Per-unit figures for a full run follow as steps x seconds per unit-step."""
    model = load_bench_model()
    conf = settings(args)
    probe = args.probe_steps
    results: dict = {"probe_steps": probe, "rounds": args.rounds, "sets": {}}
    for set_name in args.sets.split(","):
        units = unit_sets(16)[set_name]
        timings: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for method in args.methods.split(","):
                batch = units if method.startswith("featvis") else units[:1]
                timings.setdefault(method, []).append(probe_seconds(method, model, batch, conf, probe))
        per = {m: statistics.median(t) for m, t in timings.items()}
        steps = {m: (preset("fast").total_steps if m == "featvis-fast" else conf["steps"]) for m in per}
        rows = {}
        for m, s in per.items():
            unit_seconds = s * steps[m]
            rows[m] = {"unit_step_ms": round(1000 * s, 2), "unit_step_ms_all": [round(1000 * t, 1) for t in timings[m]],
                       "steps": steps[m], "seconds_per_unit": round(unit_seconds, 2),
                       "units_per_min": round(60 / unit_seconds, 3), "image_steps_per_s": round(1 / s, 2)}
        for m, row in rows.items():
            for peer in ("lucent", "seed000"):
                if peer in rows and m != peer:
                    row[f"x_{peer}"] = round(row["units_per_min"] / rows[peer]["units_per_min"], 2)
        results["sets"][set_name] = rows
        print(set_name, json.dumps(rows), flush=True)
    results["limit"] = machine_limit(model, conf, results)
    _save(out, "speed", results, conf)
    return results


def machine_limit(model, conf, results) -> dict:
    """Useful FLOP/s of featvis-lucid (counted FLOPs of one step / measured step time) over this process's
    matmul FLOP/s, fp32 and bf16."""
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    limit = {"matmul_fp32_gflops": round(peak32 / 1e9, 1), "matmul_bf16_gflops": round(peak16 / 1e9, 1),
             "renderer_bf16": fast_bfloat16(model.device)}
    model_input = preset("lucid").augment.output or conf["size"]
    for set_name, rows in results["sets"].items():
        if "featvis-lucid" not in rows:
            continue
        flops = step_flops(model, unit_sets(1)[set_name][0].layer, 1, model_input)
        useful = flops / (rows["featvis-lucid"]["unit_step_ms"] / 1000)
        limit[set_name] = {"gflop_per_image_step": round(flops / 1e9, 3), "useful_gflops": round(useful / 1e9, 1),
                           "of_fp32_matmul": round(useful / peak32, 3), "of_bf16_matmul": round(useful / peak16, 3)}
    print("limit", json.dumps(limit), flush=True)
    return limit


# -- how cost grows with batch size and image size -----------------------------------------------------------
def scaling(args, out: Path) -> dict:
    """Median seconds per optimiser step of featvis on blocks.10 for growing batches (128 px image, model
    input 224 as Lucent) and growing image sizes (batch 16, the model sees the image at its own size)."""
    model = load_bench_model()
    units = unit_sets(64)["blocks.10"]
    result: dict = {"batch": {}, "size": {}}
    base = preset("lucid", frames=2)
    for batch in args.batches:
        s = _step_seconds(model, units[:batch], base.replace(steps=args.probe_steps))
        result["batch"][batch] = {"step_ms": round(1000 * s, 1), "image_step_ms": round(1000 * s / batch, 2)}
        print("batch", batch, result["batch"][batch], flush=True)
    for size in args.sizes:
        config = base.replace(size=size, steps=args.probe_steps, augment={"output": None})
        s = _step_seconds(model, units[:16], config)
        result["size"][size] = {"step_ms": round(1000 * s, 1), "image_step_ms": round(1000 * s / 16, 2)}
        print("size", size, result["size"][size], flush=True)
    _save(out, "scaling", result, settings(args))
    return result


def _step_seconds(model, units, config) -> float:
    ticks: list[float] = []
    render(model, units, config, on_step=lambda *_: ticks.append(time.perf_counter()))
    return statistics.median(b - a for a, b in zip(ticks[1:], ticks[2:]))


# -- output ---------------------------------------------------------------------------------------------------
def _load(out: Path) -> dict:
    path = out / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save(out: Path, part: str, data, conf, sets: tuple[str, ...] = ()) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    everything = _load(out)
    everything[part] = data
    command = "python -m bench.bench_render " + " ".join(map(shlex.quote, sys.argv[1:]))
    commands = everything.setdefault("commands", {})
    for set_name in sets:  # quality: a set's rows may come from several runs, each command is kept
        runs = commands.setdefault(f"quality {set_name}", [])
        if command not in runs:
            runs.append(command)
    commands[part] = command
    everything["machine"] = Machine.now().__dict__
    everything["settings"] = conf
    path.write_text(json.dumps(everything, indent=1))
    (out / "table.md").write_text(markdown(everything))


def markdown(data: dict) -> str:
    """The README's tables from results.json."""
    lines = [f"Machine: {data['machine']['cpu']}, {data['machine']['cores']} cores, torch {data['machine']['torch']}; "
             f"settings: {data['settings']}", ""]
    if "speed" in data:
        speed = data["speed"]
        lines += [f"### Speed (interleaved probe: {speed['rounds']} rounds of {speed['probe_steps']} steps, median)",
                  f"`{data['commands']['speed']}`", "",
                  "| set | method | steps | ms / unit-step | image-steps/s | s / unit | units/min | x Lucent | x seed000 |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for set_name, rows in speed["sets"].items():
            for m, r in rows.items():
                lines.append(f"| {set_name} | {m} | {r['steps']} | {r['unit_step_ms']} | {r['image_steps_per_s']} | "
                             f"{r['seconds_per_unit']} | {r['units_per_min']} | {r.get('x_lucent', '')} | {r.get('x_seed000', '')} |")
        if "limit" in speed:
            limit = speed["limit"]
            lines += ["", f"Machine limit: matmul {limit['matmul_fp32_gflops']} GFLOP/s fp32, "
                      f"{limit['matmul_bf16_gflops']} GFLOP/s bf16 (renderer in bf16: {limit['renderer_bf16']}).", "",
                      "| set | GFLOP / image-step (fwd + input bwd, counted) | useful GFLOP/s | of fp32 matmul | of bf16 matmul |",
                      "|---|---:|---:|---:|---:|"]
            for set_name, r in limit.items():
                if isinstance(r, dict):
                    lines.append(f"| {set_name} | {r['gflop_per_image_step']} | {r['useful_gflops']} | "
                                 f"{r['of_fp32_matmul']} | {r['of_bf16_matmul']} |")
        lines.append("")
    if "quality" in data:
        lines += ["### Whole runs: quality at equal budget, and wall clock", ""]
        lines += [f"- {key}: " + ", ".join(f"`{c}`" for c in runs)
                  for key, runs in data["commands"].items() if key.startswith("quality ")]
        lines += ["",
                  "| set | method | units | steps | s / unit | units/min | act. mean | act. median | mean / Lucent (same units) | self top-1 | lite1 top-1 | lite1 top-5 |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for set_name, block in data["quality"].items():
            rows = block["methods"]
            ref = rows.get("lucent", {}).get("activation")
            for m, r in rows.items():
                n = len(r["activation"])
                common = min(n, len(ref or []))  # peers may render only the first units (--peer-units)
                ratio = f"{statistics.mean(r['activation'][:common]) / statistics.mean(ref[:common]):.2f}" if ref else ""
                lines.append(f"| {set_name} | {m} | {n} | {r['steps']} | {r['seconds'] / n:.2f} | {r['units_per_min']} | "
                             f"{r['activation_mean']} | {r['activation_median']} | {ratio} | {r.get('self_top1', '')} | "
                             f"{r.get('lite1_top1', '')} | {r.get('lite1_top5', '')} |")
        lines += ["", "Units: " + "; ".join(f"{k}: {', '.join(v['units'])}" for k, v in data["quality"].items()), ""]
    if "scaling" in data:
        sc = data["scaling"]
        lines += ["### Cost vs batch size and image size (featvis, blocks.10)", f"`{data['commands']['scaling']}`", "",
                  "| batch (128 px, model sees 224) | ms / step | ms / image-step |", "|---:|---:|---:|"]
        lines += [f"| {b} | {r['step_ms']} | {r['image_step_ms']} |" for b, r in sc["batch"].items()]
        lines += ["", "| image size (batch 16, model sees it as is) | ms / step | ms / image-step |", "|---:|---:|---:|"]
        lines += [f"| {s} | {r['step_ms']} | {r['image_step_ms']} |" for s, r in sc["size"].items()]
        lines.append("")
    return "\n".join(lines)


def merge(out: Path, sources: list[Path]) -> None:
    """Fold the quality rows and commands of other result folders (runs done in parallel) into `out`."""
    everything = _load(out)
    for source in sources:
        other = _load(source)
        for set_name, block in other.get("quality", {}).items():
            mine = everything.setdefault("quality", {}).setdefault(set_name, {"units": block["units"], "methods": {}})
            mine["methods"].update(block["methods"])
        for key, runs in other.get("commands", {}).items():
            if key.startswith("quality "):
                everything.setdefault("commands", {}).setdefault(key, []).extend(
                    f"{c} (results merged from {source.name})" for c in runs)
    (out / "results.json").write_text(json.dumps(everything, indent=1))
    (out / "table.md").write_text(markdown(everything))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["quality", "speed", "scaling", "all", "merge"])
    parser.add_argument("sources", nargs="*", type=Path, help="merge: result folders to fold into --out")
    parser.add_argument("--quick", action="store_true", help="4 units per set, 64 steps")
    parser.add_argument("--units", type=int, help="units per set (default 16, quick 4)")
    parser.add_argument("--steps", type=int, help="steps for equal-settings methods (default 512, quick 64)")
    parser.add_argument("--size", type=int, default=128, help="image size in px (Lucent's 128)")
    parser.add_argument("--peer-units", type=int, help="peers (one call per unit) render only the first N units")
    parser.add_argument("--sets", default="blocks.10,blocks.4,logits")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--probe-steps", type=int, default=12, help="steps per speed-probe run")
    parser.add_argument("--rounds", type=int, default=3, help="speed-probe rounds")
    parser.add_argument("--batches", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2, 4, 8, 16, 32],
                        help="scaling: batch sizes")
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[64, 96, 128, 160, 224],
                        help="scaling: image sizes")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/<quick|full>)")
    args = parser.parse_args(argv)
    out = args.out or RESULTS / settings(args)["mode"]
    if args.what == "merge":
        merge(out, args.sources)
        print((out / "table.md").read_text())
        return
    parts = ["speed", "scaling", "quality"] if args.what == "all" else [args.what]
    for part in parts:
        {"quality": quality, "speed": speed, "scaling": scaling}[part](args, out)
    print((out / "table.md").read_text())


if __name__ == "__main__":
    main()
