"""Interrupt a real job, often: `featvis run JOB` killed with SIGKILL at random moments (and stopped with
SIGTERM / SIGINT at a few more), rerun each time, then left to finish; the store is checked after every run.

    python -m bench.interrupt --flows FLOWS.yaml --job efficientnet_lite0 --kills 20 --signals 4 --finish

The checks, after every run (tests/test_faults_kill.py does the same on a 12-unit job):
* nothing finished before is rendered again (each meta.json keeps its inode and mtime);
* every unit folder a reader can see is complete and verifies (only the new ones are re-read each time);
* no process of the run's session survives it (the temporary Prefect server dies with its run);
and at the end: `featvis verify` passes and the manifest lists exactly the plan's units, all done.

Each run's peak memory (the `featvis` process and its whole session) is sampled every 0.5 s. One JSON line
per run goes to --log, so the figures survive this script being stopped itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

FEATVIS = [str(Path(sys.executable).with_name("featvis"))]
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}


def unit_folders(root: Path) -> list[Path]:
    """Unit folders a reader can see (hidden or .tmp names are partial writes)."""
    return [unit for layer in root.iterdir() if layer.is_dir() and not layer.name.startswith(".")
            for unit in layer.iterdir() if not unit.name.startswith(".") and not unit.name.endswith(".tmp")]


def finished(store: Path, model_dir: str) -> dict[str, tuple[int, int]]:
    root = store / model_dir
    found = {}
    for unit in unit_folders(root) if root.exists() else []:
        stat = (unit / "meta.json").stat()
        found[str(unit.relative_to(store))] = (stat.st_ino, stat.st_mtime_ns)
    return found


def session_processes(sid: int) -> list[str]:
    """Processes still in the run's session (it was started as a session leader)."""
    left = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            if os.getsid(proc.pid) == sid:
                left.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [proc.info['name']])[:120]}")
        except (ProcessLookupError, psutil.Error, PermissionError):
            continue
    return left


def memory(sid: int, main: psutil.Process) -> tuple[int, int]:
    """RSS of the main process and of every process of its session, in bytes."""
    mine = total = 0
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) != sid:
                continue
            rss = proc.memory_info().rss
        except (ProcessLookupError, psutil.Error, PermissionError):
            continue
        total += rss
        mine += rss if proc.pid == main.pid else 0
    return mine, total


def flow_began(log: Path, process: subprocess.Popen) -> float | None:
    """Wait until the run has planned its job (the plan line in its log); None if it exited first."""
    while process.poll() is None:
        if log.exists() and " to render (" in log.read_text(errors="replace"):
            return time.time()
        time.sleep(0.2)
    return None


class Chain:
    """Runs of the job on one store, each checked against what was finished before it."""

    def __init__(self, flows: Path, job: str, out: Path):
        from featvis_pipeline.jobs import load_job
        from featvis_pipeline.plan import model_dir
        from featvis_pipeline.store import Store

        self.flows, self.job, self.out = flows, job, out
        spec = load_job(flows, job)
        self.store_path, self.model_dir = Path(spec.store), model_dir(spec.model)
        if not self.store_path.is_absolute():
            self.store_path = flows.parent / self.store_path
        self.store = Store(self.store_path)
        self.done = finished(self.store_path, self.model_dir)
        self.runs = sum(1 for _ in (out / "runs.jsonl").open()) if (out / "runs.jsonl").exists() else 0

    def run(self, sig: str | None = None, delay: float = 0.0) -> dict:
        """One run; `sig` sent `delay` s after it has planned (None: let it finish)."""
        self.runs += 1
        log = self.out / f"run-{self.runs:03d}.log"
        with log.open("w") as sink:
            process = subprocess.Popen([*FEATVIS, "run", self.job, "--flows", str(self.flows)], stdout=sink,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        started, main, peak = time.time(), psutil.Process(process.pid), [0, 0]
        began = flow_began(log, process)
        deadline = (began or started) + delay if sig else float("inf")
        while process.poll() is None:
            peak = [max(a, b) for a, b in zip(peak, memory(process.pid, main))]
            if time.time() >= deadline:
                os.kill(process.pid, SIGNALS[sig])
                deadline = float("inf")
            time.sleep(0.5)
        code, ended = process.wait(), time.time()
        time.sleep(2.0)  # a killed run's server gets PR_SET_PDEATHSIG; give it a moment
        left = session_processes(process.pid)
        record = {"run": self.runs, "signal": sig, "delay_s": round(delay, 1), "exit": code,
                  "wall_s": round(ended - started, 1), "startup_s": round((began or ended) - started, 1),
                  "peak_rss_gb": round(peak[0] / 2**30, 2), "peak_session_rss_gb": round(peak[1] / 2**30, 2),
                  "leftover_processes": left, **self.check()}
        with (self.out / "runs.jsonl").open("a") as sink:
            sink.write(json.dumps(record) + "\n")
        print(json.dumps({k: v for k, v in record.items() if k != "new_units"}), flush=True)
        return record

    def check(self) -> dict:
        now = finished(self.store_path, self.model_dir)
        redone = [k for k, v in self.done.items() if now.get(k) != v]
        new = sorted(set(now) - set(self.done))
        broken = [k for k in new if self.store.problems(k)]
        self.done = now
        return {"finished_before": len(now) - len(new), "finished_after": len(now), "rendered_again": redone,
                "broken_visible": broken, "new_units": len(new)}


def final_checks(chain: Chain) -> dict:
    """`featvis verify`, and the manifest against the plan of an uninterrupted run (made afresh here)."""
    from featvis_core import load_model
    from featvis_pipeline.jobs import load_job
    from featvis_pipeline.plan import make_plan

    spec = load_job(chain.flows, chain.job)
    plan = make_plan(chain.job, spec, load_model(spec.model))
    manifest = json.loads((chain.store_path / "manifests" / f"{chain.job}.json").read_text())
    listed = [(u["unit"], u["key"], u["path"], u["state"]) for u in manifest["units"]]
    planned = [(u.spec, u.key, u.path, "done") for u in plan.units]
    verify = subprocess.run([*FEATVIS, "verify", chain.job, "--flows", str(chain.flows)], capture_output=True,
                            text=True)
    temporaries = [str(p) for p in chain.store_path.rglob("*") if p.name.endswith(".tmp")]
    return {"manifest_equals_plan": listed == planned, "planned_units": len(planned), "manifest_units": len(listed),
            "counts": manifest.get("counts"), "verify_exit": verify.returncode,
            "verify_tail": (verify.stdout + verify.stderr).strip().splitlines()[-3:], "temporaries": temporaries}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=Path, required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs at random moments")
    parser.add_argument("--signals", type=int, default=4, help="SIGTERM / SIGINT stops, alternately")
    parser.add_argument("--delay", type=float, nargs=2, default=(5.0, 180.0), help="seconds after planning")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--finish", action="store_true", help="then let the job run to its end and check it")
    parser.add_argument("--out", type=Path, default=Path("interrupt"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    chain, rng = Chain(args.flows.resolve(), args.job, args.out), random.Random(args.seed)
    plan = ["KILL"] * args.kills + [("TERM", "INT")[i % 2] for i in range(args.signals)]
    rng.shuffle(plan)
    for sig in plan:
        chain.run(sig, rng.uniform(*args.delay))
    if args.finish:
        chain.run()
        result = final_checks(chain)
        (args.out / "final.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result), flush=True)
        return 0 if result["manifest_equals_plan"] and result["verify_exit"] == 0 else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
