"""Account for a real run of a job: where its wall time went, per layer and as a whole.

    python -m bench.run_report --store /work/full/store --model efficientnet_lite0 --logs /work/full/interrupt

Sources, all written by the run itself: each unit's meta.json (`timings.render_s`: its share of the batched
optimisation; `created`), the run logs' one line per finished tile ("... in 63.5 s (render 60.1 s on cpu)":
the task's wall and its optimisation plus scoring), and bench/interrupt.py's runs.jsonl (wall, peak memory
and how each run ended). Overhead is everything in a tile task that is not the optimisation (model copy,
scoring, writing media and meta, locks), and at the flow level everything outside tile tasks (start-up,
planning, manifests, extras).
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from collections import defaultdict
from pathlib import Path

TILE = re.compile(r"Task run '(?P<layer>[^']+) tile \d+' - [^:]+: (?P<rendered>\d+) rendered, (?P<cached>\d+) cached, "
                  r"(?P<failed>\d+) failed(?:, \d+ stopped)? in (?P<total>[\d.]+) s \(render (?P<render>[\d.]+) s")
DONE = re.compile(r": (?P<rendered>\d+) rendered, (?P<cached>\d+) cached, (?P<failed>\d+) failed in (?P<wall>[\d.]+) s "
                  r"\((?P<rate>[\d.]+) units/s\)")


def units(store: Path, model: str) -> list[dict]:
    found = []
    for meta in (store / model).glob("*/*/meta.json"):
        data = json.loads(meta.read_text())
        seconds = (data.get("timings") or {}).get("render_s")
        if data.get("status") == "done" and isinstance(seconds, (int, float)):
            found.append({"layer": data["layer"], "render_s": float(seconds), "created": data.get("created", "")})
    return found


def tiles(logs: list[Path]) -> list[dict]:
    rows = []
    for log in logs:
        for match in TILE.finditer(log.read_text(errors="replace")):
            if int(match["rendered"]):
                rows.append({"layer": match["layer"].split()[0], "rendered": int(match["rendered"]),
                             "total_s": float(match["total"]), "render_s": float(match["render"])})
    return rows


def folder_bytes(root: Path) -> dict[str, int]:
    sizes: dict[str, int] = defaultdict(int)
    for path in root.rglob("*"):
        if path.is_file():
            sizes[path.suffix or path.name] += path.stat().st_size
    return dict(sizes)


def report(store: Path, model: str, logs: Path) -> dict:
    done = units(store, model)
    runs = [json.loads(line) for line in (logs / "runs.jsonl").read_text().splitlines() if line.strip()] \
        if (logs / "runs.jsonl").exists() else []
    run_logs = sorted(logs.glob("run-*.log"))
    finished = tiles(run_logs)
    by_layer: dict[str, dict] = {}
    for unit in done:
        row = by_layer.setdefault(unit["layer"], {"units": 0, "optimisation_s": 0.0, "tile_s": 0.0, "tiles": 0,
                                                  "render_and_scores_s": 0.0})
        row["units"] += 1
        row["optimisation_s"] += unit["render_s"]
    for tile in finished:
        row = by_layer.get(tile["layer"])
        if row is not None:
            row["tile_s"] += tile["total_s"]
            row["render_and_scores_s"] += tile["render_s"]
            row["tiles"] += 1
    for row in by_layer.values():
        row["s_per_unit"] = round(row["tile_s"] / row["units"], 3) if row["units"] else None
        row["units_per_s"] = round(row["units"] / row["tile_s"], 3) if row["tile_s"] else None
        row["overhead_share_in_tiles"] = round(1 - row["optimisation_s"] / row["tile_s"], 4) if row["tile_s"] else None
        for key in ("optimisation_s", "tile_s", "render_and_scores_s"):
            row[key] = round(row[key], 1)
    last = runs[-1] if runs and runs[-1].get("signal") is None else None
    whole = {
        "units_done": len(done),
        "optimisation_s": round(sum(u["render_s"] for u in done), 1),
        "tile_tasks_s": round(sum(t["total_s"] for t in finished), 1),
        "runs": len(runs),
        "wall_all_runs_s": round(sum(r.get("wall_s", 0) for r in runs if isinstance(r.get("wall_s"), (int, float))), 1),
        "wall_interrupted_runs_s": round(sum(r.get("wall_s", 0) for r in runs
                                             if r.get("signal") and isinstance(r.get("wall_s"), (int, float))), 1),
        "peak_rss_gb": max((r.get("peak_rss_gb", 0) for r in runs), default=None),
        "peak_session_rss_gb": max((r.get("peak_session_rss_gb", 0) for r in runs), default=None),
        "store_bytes": folder_bytes(store),
    }
    if last is not None:
        log = logs / f"run-{last['run']:03d}.log"
        text = log.read_text(errors="replace")
        mine = tiles([log])
        match = DONE.search(text)
        began = log.stat().st_mtime - last["wall_s"]  # the log's last write is the run's end
        optimisation = sum(u["render_s"] for u in done if u["created"] and
                           datetime.fromisoformat(u["created"]).timestamp() >= began)
        whole["last_run"] = {
            "wall_s": last["wall_s"], "rendered": int(match["rendered"]) if match else None,
            "flow_wall_s": float(match["wall"]) if match else None,
            "tile_tasks_s": round(sum(t["total_s"] for t in mine), 1),
            "render_and_scores_s": round(sum(t["render_s"] for t in mine), 1),
            "units_rendered": sum(t["rendered"] for t in mine), "optimisation_s": round(optimisation, 1),
            "overhead_share": round(1 - optimisation / last["wall_s"], 4) if last["wall_s"] else None,
            "peak_rss_gb": last.get("peak_rss_gb"), "peak_session_rss_gb": last.get("peak_session_rss_gb"),
        }
    return {"layers": by_layer, "whole": whole}


def layer_order(name: str) -> tuple:
    """blocks.2 before blocks.10, the logits last."""
    return (name == "logits", [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--model", default="efficientnet_lite0", help="the model's store folder")
    parser.add_argument("--logs", type=Path, required=True, help="bench/interrupt.py's --out folder")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = report(args.store, args.model, args.logs)
    print(f"{'layer':<10} {'units':>5} {'tiles':>5} {'s/unit':>7} {'units/s':>7} {'overhead':>8}")
    for layer, row in sorted(result["layers"].items(), key=lambda item: layer_order(item[0])):
        share = row["overhead_share_in_tiles"]
        print(f"{layer:<10} {row['units']:>5} {row['tiles']:>5} {row['s_per_unit'] or 0:>7.3f} "
              f"{row['units_per_s'] or 0:>7.3f} {'' if share is None else f'{share:.1%}':>8}")
    print(json.dumps(result["whole"], indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
