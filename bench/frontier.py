"""The quality/compute frontier: every preset and variant, timed as a user runs it, judged on hard views.

Each method renders the same units from the shell, as a whole process (`featvis render ...`, or
`python -m bench.lucent_render ...` for Lucent): start-up, model load, optimisation, media files. Its PNGs
(the 8-bit files a gallery shows) are then judged by one evaluator for everyone:

- activation: each channel's activation on its image resized to 224 px, original fp32 network, as a
  ratio to Lucent's on the same units (bench/common.py);
- lite1 top-5 / top-1 on hard views: the independently trained efficientnet_lite1 shown each class image
  at 0.5x-1.5x the size the renderer's model saw it, at 224 px, at the PNG's own size, cropped, flipped,
  turned (featvis_core/scores.py: `hard_view_rates`);
- colourfulness (Hasler-Suesstrunk) and RMS contrast, so "washed out" is a number.

    .venv/bin/python -m bench.frontier                                # every method (hours: Lucent, seed-003)
    .venv/bin/python -m bench.frontier --methods coarse-to-fine,fast,lucid-crop --peer-units 4
    .venv/bin/python -m bench.frontier --plot-only                    # redraw table and plot from results.json

Results: bench/results/frontier/{results.json, table.md, frontier.png, sheets/} (JPEG contact sheets; the
variants' in sheets/variants/, not kept in git). Methods already in
results.json are kept unless named again, so a variant can be added without re-running everything.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from featvis_core import load_model, preset
from featvis_core.media import contact_sheet
from featvis_core.scores import colourfulness, contrast, hard_view_rates, seen_size
from featvis_core.units import LOGITS, Kind, Unit

from .common import MODEL, TRANSFER, Machine, activation, spread

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "frontier"
FEATVIS = [str(Path(sys.executable).with_name("featvis"))]
# The eight seed classes and eight more across ImageNet (animals, objects, vehicles, scenes).
CLASSES = ["hen", "pelican", "leopard", "hammer", "iPod", "slot", "potpie", "scuba diver",
           "tree frog", "hornbill", "tabby", "cab", "digital watch", "minivan", "scoreboard", "cup"]
CHANNELS = spread(16, 112)  # blocks.10: 3, 10, ..., 108 (bench_render's set)


@dataclass(frozen=True)
class Method:
    """A way to render: a featvis preset with optional `--set` overrides, or a peer's command."""

    name: str
    preset: str | None = None  # featvis preset (None: a peer)
    sets: dict = field(default_factory=dict)  # featvis --set FIELD=VALUE overrides
    peer: tuple[str, ...] = ()  # the peer's command (before the units)
    seen: int | None = None  # peer: side of the image in its model's input, px
    note: str = ""
    slow: bool = False  # renders only --peer-units units (seed-003 and graetz: over a minute per unit)

    def command(self, units: list[str], out: Path, scale: dict | None = None) -> list[str]:
        """The command line; `scale` ({"steps": .., "size": ..}) shrinks a run for smoke tests."""
        sizing = [arg for key, value in (scale or {}).items() for arg in (f"--{key}", str(value))]
        if self.peer:
            return [*self.peer, *units, "--out", str(out), *sizing]
        overrides = [arg for key, value in self.sets.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
        return [*FEATVIS, "render", MODEL, *units, "--preset", self.preset, "--out", str(out), *overrides, *sizing,
                "--timings"]

    def seen_px(self) -> int:
        """Side, in pixels, of the image in the model input at the end of the render (the hard views' 1x)."""
        return self.seen or seen_size(preset(self.preset, **self.sets))


LUCENT = Method("lucent", peer=(sys.executable, "-m", "bench.lucent_render"), seen=round(224 * 128 / 152),
                note="Lucent render_vis, defaults: 128 px, 512 steps, model sees 224 px")

def grow(start: int, every: int, **sets) -> dict:
    """A variant's settings: an upscaling schedule from `start` to 224 px (x1.25 per stage), the model seeing
    the image at its own size, 128 px windows for the first 90 % of the steps unless `sets` says otherwise."""
    return {"schedule": {"start": start, "every": every, "factor": 1.25, "until": 224}, "augment": {"zoom": 1.0},
            "crop": 128, "crop_share": 0.9, **sets}


def budget(steps: int, **sets) -> dict:
    """A variant of the `grow` schedule (112 -> 224 px in 5 stages) with `steps` in all."""
    return {"schedule": "grow", "size": 224, "steps": steps, "augment": {"zoom": 1.0, "scale": [0.9, 1.1]},
            "crop": 128, "crop_share": 0.9, **sets}


# Every variant tried on the way to the default, in the order they were tried (bench/README.md tells why).
VARIANTS = [
    ("lucid-crop-256", "lucid-crop", {"steps": 256}, "lucid-crop, half the steps"),
    ("lucid-crop-256-lr0.1", "lucid-crop", {"steps": 256, "lr": 0.1}, "... lr 0.1"),
    ("lucid-crop-192-lr0.1", "lucid-crop", {"steps": 192, "lr": 0.1}, "... 192 steps, lr 0.1"),
    ("lucid-crop-256-zoom0.7-1.3", "lucid-crop", {"steps": 256, "augment": {"scale": [0.7, 1.3]}}, "... zoom 0.7-1.3"),
    ("lucid-crop-256-zoom0.6-1.4", "lucid-crop", {"steps": 256, "augment": {"scale": [0.6, 1.4]}}, "... zoom 0.6-1.4"),
    ("grow64", "fast", grow(64, 32), "64 -> 224 px, 7 stages of 32 steps"),
    ("grow96", "fast", grow(96, 40), "96 -> 224 px, 5 x 40 steps"),
    ("grow112", "fast", grow(112, 48), "112 -> 224 px, 5 x 48 steps"),
    ("grow96-zoom0.6-1.4", "fast", grow(96, 40, augment={"zoom": 1.0, "scale": [0.6, 1.4]}), "... zoom 0.6-1.4"),
    ("grow128-zoom0.6-1.4", "fast", grow(128, 48, augment={"zoom": 1.0, "scale": [0.6, 1.4]}), "128 -> 224 px, 4 x 48"),
    ("grow112-zoom0.7-1.35", "fast", grow(112, 48, augment={"zoom": 1.0, "scale": [0.7, 1.35]}), "112 -> 224, zoom 0.7-1.35"),
    ("grow112-zoom0.7-1.35-lr0.08", "fast", grow(112, 48, augment={"zoom": 1.0, "scale": [0.7, 1.35]}, lr=0.08), "... lr 0.08"),
    ("grow112-320-zoom0.6-1.4", "fast", grow(112, 64, augment={"zoom": 1.0, "scale": [0.6, 1.4]}), "5 x 64 steps, zoom 0.6-1.4"),
    ("grow112-320-zoom0.6-1.4-share0.95", "fast", grow(112, 64, augment={"zoom": 1.0, "scale": [0.6, 1.4]}, crop_share=0.95),
     "... whole view only the last 5 %"),
    ("grow112-320-window112", "fast", grow(112, 64, augment={"zoom": 1.0, "scale": [0.6, 1.4]}, crop=112, crop_share=0.95),
     "... 112 px windows"),
    ("grow112-280-window112", "fast", grow(112, 56, augment={"zoom": 1.0, "scale": [0.6, 1.4]}, crop=112, crop_share=0.95),
     "... 280 steps"),
    ("grow-320-windows0.6-1.4", "fast", budget(320, crop_scale=[0.6, 1.4]), "windows zoom 0.6-1.4, whole view 0.9-1.1"),
    ("grow-320-windows0.6-1.4-share0.95", "fast", budget(320, crop_scale=[0.6, 1.4], crop_share=0.95), "... last 5 % whole"),
    ("grow-320-windows0.5-1.6", "fast", budget(320, crop_scale=[0.5, 1.6]), "windows zoom 0.5-1.6"),
    ("grow-288-windows0.6-1.4", "fast", budget(288, crop_scale=[0.6, 1.4]), "288 steps"),
    ("grow-320-windows0.5-1.6-lr0.065", "fast", budget(320, crop_scale=[0.5, 1.6], lr=0.065), "... lr 0.065"),
    ("grow-288-windows0.5-1.6-lr0.065", "fast", budget(288, crop_scale=[0.5, 1.6], lr=0.065), "... 288 steps, lr 0.065"),
    ("grow-320-windows0.5-1.6-lr0.057", "fast", budget(320, crop_scale=[0.5, 1.6], lr=0.057), "... lr 0.057"),
    ("c2f-pad12", "coarse-to-fine", {"augment": {"pad": 12}}, "coarse-to-fine padded by 12 px (whole view 248 px)"),
    ("c2f-pad0-share0.9", "coarse-to-fine", {"crop_share": 0.9}, "coarse-to-fine, windows for 90 % of the steps"),
    ("c2f-pad0-288", "coarse-to-fine", {"steps": 288}, "coarse-to-fine, 288 steps"),
]

METHODS = {m.name: m for m in [
    Method("coarse-to-fine", "coarse-to-fine",
           note="the default: 112 -> 224 px, 0.5-1.6x windows for 85 % of 320 steps, lr 0.057, no padding"),
    Method("fast", "fast", note="previous default: 128 px, 64 steps"),
    Method("lucid", "lucid", note="Lucent's recipe, batched"),
    Method("lucid-crop", "lucid-crop", note="Lucent's recipe, 7/8 of steps on 128 px windows"),
    Method("maco", "maco", note="phase-only spectrum, NAdam, 4 zoomed crops per step"),
    Method("seed-003", "seed-003", note="64 -> 400 px by x1.1 every 50 steps (1050 steps)", slow=True),
    Method("graetz", "graetz", note="pixels, 56 -> 408 px in 12 stages", slow=True),
    LUCENT,
    *[Method(name, base, sets, note=note) for name, base, sets, note in VARIANTS],
]}
PRESETS_AND_PEERS = [name for name in METHODS if name not in dict((v[0], v) for v in VARIANTS)]


def unit_args(set_name: str, units: int) -> list[str]:
    if set_name == "logits":
        return ["logits:" + ",".join(CLASSES[:units])]
    return ["blocks.10:" + ",".join(map(str, CHANNELS[:units]))]


def bench_units(model, set_name: str, units: int) -> list[Unit]:
    if set_name == "logits":
        return [Unit(LOGITS, Kind.LOGIT, model.class_index(c)) for c in CLASSES[:units]]
    return [Unit("blocks.10", Kind.CHANNEL, c) for c in CHANNELS[:units]]


def run_whole(method: Method, set_name: str, units: int, out: Path, scale: dict | None = None) -> dict:
    """Run the method's command from the shell once; wall clock and CPU seconds of the whole process."""
    command = method.command(unit_args(set_name, units), out, scale)
    load = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{method.name} failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"command": " ".join(map(shlex.quote, command)), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "s_per_unit": round(wall / units, 3), "load": [round(x, 2) for x in load],
            "timings": _timings(done.stdout)}


def _timings(stdout: str) -> dict[str, float]:
    """The phases `featvis render --timings` accounted for (seconds by name); {} for peers."""
    phases = {}
    for line in stdout.splitlines():
        name, _, value = line.strip().rpartition(" ")
        if value == "s" and name:
            label, _, seconds = name.rpartition(" ")
            try:
                phases[label.strip()] = float(seconds)
            except ValueError:
                continue
    return phases


def load_pngs(out: Path, units: list[Unit]) -> torch.Tensor:
    images = []
    for unit in units:
        picture = Image.open(out / MODEL / unit.layer / f"{unit.slug}.png").convert("RGB")
        images.append(torch.from_numpy(__import__("numpy").asarray(picture).copy()).permute(2, 0, 1).float() / 255)
    sizes = {tuple(i.shape) for i in images}
    if len(sizes) > 1:
        raise SystemExit(f"images of one method differ in size: {sizes}")
    return torch.stack(images)


def judge(images: torch.Tensor, units: list[Unit], method: Method, model, transfer) -> dict:
    """The shared evaluator's numbers for one method's images of one unit set."""
    row = {"size": images.shape[-1], "seen": method.seen_px(),
           "colourfulness": round(float(colourfulness(images).mean()), 1),
           "contrast": round(float(contrast(images).mean()), 3)}
    scores = activation(model, images, units)
    row["activation"] = [round(float(s), 3) for s in scores]
    row["activation_mean"] = round(float(scores.mean()), 3)
    if units[0].layer == LOGITS:
        classes = [u.index for u in units]
        rates = hard_view_rates(transfer, images, classes, row["seen"])
        mine = hard_view_rates(model, images, classes, row["seen"])
        row.update(lite1_top5=round(float(rates["top5"].mean()), 3), lite1_top1=round(float(rates["top1"].mean()), 3),
                   self_top5=round(float(mine["top5"].mean()), 3),
                   lite1_top5_per_unit=[round(float(v), 3) for v in rates["top5"]],
                   lite1_top5_by_view={k[5:]: round(float(v.mean()), 3) for k, v in rates.items() if k.startswith("top5_")})
    return row


def evaluate(args) -> dict:
    results = _load(args.out)
    model = load_model(MODEL)
    transfer = load_model(TRANSFER)
    for set_name in args.sets:
        block = results.setdefault("sets", {}).setdefault(set_name, {})
        for name in args.methods:
            method = METHODS[name]
            count = min(args.units, args.peer_units or args.units) if method.slow else args.units
            out = args.work / name / set_name
            scale = {k: v for k, v in (("steps", args.steps), ("size", args.size)) if v}
            row = run_whole(method, set_name, count, out, scale)
            units = bench_units(model, set_name, count)
            images = load_pngs(out, units)
            row.update(judge(images, units, method, model, transfer), units=count, note=method.note)
            block[name] = row
            labels = [CLASSES[i] if set_name == "logits" else f"ch {u.index}" for i, u in enumerate(units)]
            sheet = sheet_path(args.out, set_name, name)
            sheet.parent.mkdir(parents=True, exist_ok=True)
            contact_sheet(list(images), columns=8, size=160, labels=labels).save(sheet, quality=88)
            print(f"{set_name:9s} {name:12s} " + json.dumps({k: v for k, v in row.items() if not isinstance(v, list)}),
                  flush=True)
            results["machine"] = Machine.now().__dict__
            _save(args.out, results)
    return results


# -- output ---------------------------------------------------------------------------------------------
def _load(out: Path) -> dict:
    path = out / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "table.md").write_text(table(results))
    plot(results, out / "frontier.png")
    for set_name in results.get("sets", {}):
        side_by_side(out, set_name)


SIDE_BY_SIDE = ["coarse-to-fine", "fast", "lucid-crop", "seed-003", "lucent"]


def sheet_path(out: Path, set_name: str, method: str) -> Path:
    """A method's contact sheet (JPEG); the variants' go to sheets/variants/, which git ignores."""
    folder = out / "sheets" / ("" if method in PRESETS_AND_PEERS else "variants")
    return folder / f"{set_name}_{method}.jpg"


def side_by_side(out: Path, set_name: str, methods: list[str] = SIDE_BY_SIDE) -> None:
    """One sheet, a row per method (its first 8 units, from its own contact sheet), to compare by eye."""
    from PIL import ImageDraw

    tile, caption, label = 160, 14, 110
    rows = []
    for name in methods:
        path = sheet_path(out, set_name, name)
        if path.exists():
            rows.append((name, Image.open(path).convert("RGB").crop((0, 0, 8 * tile, tile + caption))))
    if not rows:
        return
    sheet = Image.new("RGB", (label + 8 * tile, len(rows) * (tile + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, row) in enumerate(rows):
        sheet.paste(row, (label, i * (tile + caption)))
        draw.text((4, i * (tile + caption) + tile // 2), name, fill="black")
    sheet.save(out / "sheets" / f"side_by_side_{set_name}.jpg", quality=88)


def rows(results: dict) -> list[dict]:
    """One row per method: speed from blocks.10 (s per unit, whole process), quality from both sets."""
    sets = results.get("sets", {})
    channels, logits = sets.get("blocks.10", {}), sets.get("logits", {})
    lucent = channels.get("lucent")
    table = []
    for name in dict.fromkeys([*channels, *logits]):
        c, k = channels.get(name, {}), logits.get(name, {})
        row = {"method": name, "note": c.get("note") or k.get("note", "")}
        if c:
            row.update(s_per_unit=c["s_per_unit"], size=c["size"], colour_ch=c["colourfulness"], contrast_ch=c["contrast"])
            if lucent and name != "lucent":
                n = min(len(c["activation"]), len(lucent["activation"]))
                row["activation_ratio"] = round(statistics.mean(c["activation"][:n]) / statistics.mean(lucent["activation"][:n]), 3)
                row["x_lucent"] = round(lucent["s_per_unit"] / c["s_per_unit"], 1)
            elif name == "lucent":
                row.update(activation_ratio=1.0, x_lucent=1.0)
        if k:
            row.update(logit_s_per_unit=k["s_per_unit"], lite1_top5=k["lite1_top5"], lite1_top1=k["lite1_top1"],
                       self_top5=k["self_top5"], colour_logits=k["colourfulness"], contrast_logits=k["contrast"],
                       top5_224=k["lite1_top5_by_view"].get("judge"), top5_native=k["lite1_top5_by_view"].get("native"),
                       top5_half=k["lite1_top5_by_view"].get("x0.5"))
        table.append(row)
    return table


def table(results: dict) -> str:
    columns = [("method", "method"), ("s_per_unit", "s/unit (blocks.10, whole process)"), ("x_lucent", "x Lucent units/min"),
               ("activation_ratio", "activation / Lucent"), ("lite1_top5", "lite1 top-5 (hard views)"),
               ("top5_224", "@224"), ("top5_native", "@PNG size"), ("top5_half", "@0.5x"),
               ("lite1_top1", "lite1 top-1"), ("self_top5", "self top-5"),
               ("colour_ch", "colourfulness (channels)"), ("colour_logits", "colourfulness (logits)"),
               ("contrast_logits", "RMS contrast (logits)"), ("logit_s_per_unit", "s/unit (logits)"), ("size", "PNG px"),
               ("note", "what it is")]
    lines = ["| " + " | ".join(title for _, title in columns) + " |",
             "|" + "|".join("---" if key in ("method", "note") else "---:" for key, _ in columns) + "|"]
    for row in rows(results):
        lines.append("| " + " | ".join(str(row.get(key, "")) for key, _ in columns) + " |")
    machine = results.get("machine", {})
    return "\n".join([f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, torch {machine.get('torch')}", "", *lines, ""])


def plot(results: dict, path: Path) -> None:
    """Three panels, quality against whole-process seconds per unit (log scale): the frontier."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the bench extra brings matplotlib; without it, the table is still written
        return
    data = rows(results)
    panels = [("lite1_top5", "lite1 top-5, hard views (logits)"), ("activation_ratio", "activation / Lucent (blocks.10)"),
              ("colour_logits", "colourfulness (logits)")]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for axis, (key, title) in zip(axes, panels):
        for row in data:
            if key in row and "s_per_unit" in row:
                variant = row["method"] not in PRESETS_AND_PEERS
                colour = "tab:red" if row["method"] == "coarse-to-fine" else "tab:grey" if variant else "tab:blue"
                axis.scatter(row["s_per_unit"], row[key], s=18 if variant else 40, color=colour, zorder=2 + (not variant))
                if not variant:
                    axis.annotate(row["method"], (row["s_per_unit"], row[key]), fontsize=8, xytext=(4, 3),
                                  textcoords="offset points")
        axis.set_xscale("log")
        axis.set_xlabel("seconds per unit, whole `featvis render` process (log)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", type=lambda v: v.split(","), default=list(METHODS))
    parser.add_argument("--sets", type=lambda v: v.split(","), default=["blocks.10", "logits"])
    parser.add_argument("--units", type=int, default=16, help="units per set (default 16)")
    parser.add_argument("--peer-units", type=int, help="Lucent, seed-003 and graetz render only the first N units")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=Path("/tmp/featvis-frontier"), help="where renders land")
    parser.add_argument("--plot-only", action="store_true", help="redraw table.md and frontier.png")
    parser.add_argument("--steps", type=int, help="smoke tests only: every method's steps")
    parser.add_argument("--size", type=int, help="smoke tests only: every method's image size")
    args = parser.parse_args(argv)
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown method(s) {', '.join(sorted(unknown))}: expected {', '.join(METHODS)}")
    if args.plot_only:
        _save(args.out, _load(args.out))
    else:
        evaluate(args)
    print((args.out / "table.md").read_text())


if __name__ == "__main__":
    main()
