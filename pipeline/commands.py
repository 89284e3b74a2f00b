"""What each `featvis` command does (argument parsing lives in cli.py)."""

from __future__ import annotations

import os
import sys
import time
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from featvis_core import FeatvisError


def render(args: Namespace) -> int:
    import torch
    from tqdm import tqdm

    from featvis_core import load_model, media, preset
    from featvis_core import render as render_units
    from featvis_core.models import check_model_name
    from featvis_core.units import LOGITS, group_by_layer

    from .plan import model_dir

    clock = Phases()
    check_model_name(args.model)
    overrides = _settings(args.set)
    overrides.update({k: v for k, v in (("steps", args.steps), ("size", args.size)) if v is not None})
    config = preset(args.preset, **overrides)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with clock("model load"):
        model = load_model(args.model, device)
    units = [unit for selector in args.units for unit in model.units(selector)]
    batches = [group[i:i + args.batch] for group in group_by_layer(units).values() for i in range(0, len(group), args.batch)]
    folder = args.out / model_dir(args.model)
    images, labels, began = [], [], time.perf_counter()
    # Media are encoded on two threads while the next batch renders (the encoders release the GIL).
    with ThreadPoolExecutor(max_workers=2) as writers, \
            tqdm(total=sum(len(b) for b in batches) * config.total_steps, unit="img-step", desc="render") as bar:
        written = []
        for batch in batches:
            with clock("render"):
                results = render_units(model, batch, config, on_step=lambda step, steps, n=len(batch): bar.update(n))
            clock.add("  of which network copy and set-up", results[0].timings["prepare_s"])
            clock.add("  of which optimisation steps", results[0].timings["steps_s"])
            for result in results:
                stem = folder / result.unit.layer / result.unit.slug
                stem.parent.mkdir(parents=True, exist_ok=True)
                written.append(writers.submit(_write_unit_media, media, stem, result))
                images.append(result.image)
                labels.append(result.unit.spec if result.unit.layer != LOGITS else model.classes[result.unit.index])
                if result.error:
                    print(f"{result.unit}: failed: {result.error}", file=sys.stderr)
            if args.scores and batch[0].layer == LOGITS:
                with clock("scores"):
                    _print_scores(model, results)
        with clock("media (waiting for the encoders)"):
            encoding = sum(future.result() for future in written)
    clock.add("  media encoding, all threads", encoding)
    with clock("contact sheet"):
        media.contact_sheet(images, labels=labels).save(folder / "contact.png")
    elapsed = time.perf_counter() - began
    print(f"{len(units)} units in {elapsed:.1f} s ({len(units) * config.total_steps / elapsed:.0f} image-steps/s) "
          f"-> {folder}/ (contact sheet: {folder / 'contact.png'})")
    if args.timings:
        print(clock.report())
    return 0


def _write_unit_media(media, stem, result) -> float:
    """Write one unit's PNG, MP4 and a small animated WebP preview (the MP4 is the full-size animation);
    returns the seconds it took (on a writer thread)."""
    began = time.perf_counter()
    media.write_png(stem.with_suffix(".png"), result.image)
    media.write_mp4(stem.with_suffix(".mp4"), result.frames)
    media.write_animated_webp(stem.with_suffix(".webp"), result.frames, size=128, max_frames=16)
    return time.perf_counter() - began


class Phases:
    """Seconds spent per named phase of a command, plus the process's start-up before `main` ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"start-up (interpreter, imports)": process_age()}
        self.began = time.perf_counter() - self.seconds["start-up (interpreter, imports)"]

    @contextmanager
    def __call__(self, name: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - began)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def report(self) -> str:
        whole = time.perf_counter() - self.began
        lines = [f"whole process {whole:.2f} s:"]
        lines += [f"  {name:<40}{seconds:7.2f} s" for name, seconds in self.seconds.items()]
        top = sum(s for name, s in self.seconds.items() if not name.startswith(" "))
        lines.append(f"  {'other (parsing, planning, exit)':<40}{whole - top:7.2f} s")
        return "\n".join(lines)


def process_age() -> float:
    """Seconds since this process started (Linux: /proc), i.e. interpreter start-up and imports so far."""
    try:
        ticks = int(open("/proc/self/stat").read().rpartition(")")[2].split()[19])
        uptime = float(open("/proc/uptime").read().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def _settings(values: list[str]) -> dict:
    """--set FIELD=VALUE pairs, values parsed as YAML (so 0.05, true and [1, 2] mean what they say)."""
    import yaml

    overrides = {}
    for item in values:
        field, sep, value = item.partition("=")
        if not sep:
            raise FeatvisError(f"--set expects FIELD=VALUE, got {item!r}")
        overrides[field.strip()] = yaml.safe_load(value)
    return overrides


def _print_scores(model, results) -> None:
    import torch

    from featvis_core import load_model
    from featvis_core.scores import logit_scores

    second = load_model("efficientnet_lite1", model.device)
    scores = logit_scores(model, torch.stack([r.image for r in results]), [r.unit.index for r in results], second)
    for result, score in zip(results, scores):
        print(f"{model.classes[result.unit.index]:>20}: " + "  ".join(f"{k} {v:.2f}" for k, v in score.items()))


def layers(args: Namespace) -> int:
    from featvis_core import load_model
    from featvis_core.models import check_model_name

    check_model_name(args.model)
    model = load_model(args.model, pretrained=False)
    size = args.size or model.input_size
    print(f"{model.name}: input {size} px, {len(model.classes)} classes (select them as logits:NAME or logits:INDEX)")
    print(f"{'layer':<28}{'channels':>9}  size")
    for layer in model.layers(size, depth=args.depth):
        print(f"{layer.name:<28}{layer.channels:>9}  {layer.height}x{layer.width}")
    return 0


def explain(args: Namespace) -> int:
    """Seed 004 for one image: predictions, saliency maps, the most active channels' activation maps."""
    from featvis_core import load_model, media
    from featvis_core.examples import open_rgb
    from featvis_core.explain import explain as explain_image, heat_overlay
    from featvis_core.models import check_model_name

    check_model_name(args.model)
    if not args.image.is_file():
        raise FeatvisError(f"{args.image}: no such image file")
    if not 1 <= args.channels <= 64:
        raise FeatvisError(f"--channels must be 1-64, got {args.channels}")
    try:
        image = open_rgb(args.image)
    except (OSError, ValueError) as error:
        raise FeatvisError(f"{args.image}: not a readable image ({error})") from None
    model = load_model(args.model)
    layer = args.layer or model.layers()[-1].name
    found = explain_image(model, image, layer, args.channels)
    args.out.mkdir(parents=True, exist_ok=True)
    media.write_png(args.out / "view.png", found.view)
    media.write_png(args.out / "saliency.png", heat_overlay(found.view, found.saliency))
    media.write_png(args.out / "smoothgrad.png", heat_overlay(found.view, found.smoothgrad))
    for (channel, _), heat in zip(found.channels, found.maps):
        media.write_png(args.out / f"{layer}-c{channel:04d}.png", heat_overlay(found.view, heat))
    print(f"{args.image.name} on {model.name}: top-5")
    for index, name, p in found.top5:
        print(f"  {p:6.1%}  {name} ({index})")
    print(f"most active channels of {layer} (mean activation): "
          + ", ".join(f"{c} ({m:.2f})" for c, m in found.channels))
    print(f"-> {args.out}/ (view.png, saliency.png, smoothgrad.png, {layer}-cNNNN.png)")
    return 0


def examples(args: Namespace) -> int:
    from .examples import peak_rss_mb
    from .extras import extras_flow

    summary = extras_flow(job=args.job, flows=str(args.flows))
    stats = summary.get("examples") or {}
    if stats:
        rate = f"{stats['views_per_s']} images/s" if stats.get("views_per_s") else "all cached"
        print(f"{args.job}: examples over {stats['images']} images ({stats['views']} views with crops): "
              f"{stats['shards_computed']} of {stats['shards']} shards computed, {stats['views_computed']} views in "
              f"{stats['seconds']} s ({rate})")
    print(f"{args.job}: extras {summary}; peak memory {peak_rss_mb():.0f} MB")
    return 0


def _plan(args: Namespace):
    from .flows import plan_job
    from .jobs import load_job

    job = load_job(args.flows, args.job)
    return job, plan_job(args.job, job)


def run(args: Namespace) -> int:
    from .manifest import Manifest, write_model_card
    from .store import Store

    job, plan = _plan(args)
    store = Store(job.store)
    pending = plan.pending(store, verify=True)
    tiles = plan.tiles(pending)
    cached = len(plan.units) - len(pending)
    if args.dry_run:
        _print_plan(plan, pending, tiles, cached)
        return 0
    site = args.site or job.site
    from . import extras

    extras_pending = extras.pending(args.job, job, plan, store)  # also checks folder, layer and classes first
    if not pending and not extras_pending:
        # nothing to render or compute: no flow run, no Prefect server to start
        store.sweep()
        write_model_card(store, plan)
        Manifest(plan, store, pending).save()
        print(f"{args.job}: all {len(plan.units)} units are cached in {job.store}; nothing to render")
        failed = 0
        if site:
            from .flows import build_site

            build_site(job.store, site)
    else:
        from .flows import atlas

        summary = atlas(job=args.job, flows=str(args.flows), site=str(site) if site else None)
        print(f"{args.job}: {summary['rendered']} rendered, {summary['cached']} cached, {summary['failed']} failed "
              f"in {summary['wall_s']:.1f} s ({summary['units_per_s']:.2f} units/s); manifest {summary['manifest']}")
        failed = summary["failed"]
        if isinstance(summary.get("extras"), dict) and summary["extras"].get("error"):
            print(f"{args.job}: extras failed ({summary['extras']['error']}); the next run retries them", file=sys.stderr)
            failed = failed or 1
    if site:
        print(f"site: {site}/index.html (or: featvis site serve --store {job.store})")
    return 1 if failed else 0


def _print_plan(plan, pending, tiles, cached) -> None:
    by_layer: dict[str, list[int]] = {}
    waiting = {u.spec for u in pending}
    for unit in plan.units:
        counts = by_layer.setdefault(unit.unit.layer, [0, 0])
        counts[0] += 1
        counts[1] += unit.spec in waiting
    print(f"job {plan.job_name}: model {plan.job.model}, preset {plan.job.preset}, store {plan.job.store}")
    print(f"{'layer':<24}{'units':>7}{'pending':>9}")
    for layer, (total, todo) in by_layer.items():
        print(f"{layer:<24}{total:>7}{todo:>9}")
    config = plan.config
    print(f"{len(plan.units)} units, {cached} cached, {len(pending)} to render in {len(tiles)} tiles of <= "
          f"{plan.job.batch} images; {plan.image_steps(pending):,} image-steps at "
          f"{config.final_size} px ({config.total_steps} steps each)")


def status(args: Namespace) -> int:
    from .store import Store

    job, plan = _plan(args)
    store = Store(job.store)
    manifest = store.read_manifest(args.job) or {}
    errors = {u["unit"]: u["error"] for u in manifest.get("units", []) if u.get("error")}
    done = {u.spec for u in plan.units if store.is_done(u.path, u.key)}
    print(f"{args.job}: {len(done)}/{len(plan.units)} units done ({job.store})")
    layers: dict[str, list[int]] = {}
    for unit in plan.units:
        counts = layers.setdefault(unit.unit.layer, [0, 0])
        counts[0] += unit.spec in done
        counts[1] += 1
    for layer, (finished, total) in layers.items():
        bar = "#" * round(20 * finished / total) + "." * (20 - round(20 * finished / total))
        print(f"  {layer:<24} {bar} {finished}/{total}")
    for unit, error in errors.items():
        if unit not in done:
            print(f"  failed {unit}: {error}")
    if manifest.get("updated"):
        print(f"manifest updated {manifest['updated']}")
    return 0


def verify(args: Namespace) -> int:
    """Check every unit a job's manifest lists (done, or with a meta.json on disk) against the checksums
    in its meta.json; print one line per corrupt unit. --repair removes those units and marks them
    pending in the manifest, so the site shows them as pending and the next run renders them again."""
    from .jobs import load_jobs
    from .store import Store, now

    jobs = load_jobs(args.flows)
    names = [args.job] if args.job else list(jobs)
    if args.job and args.job not in jobs:
        raise FeatvisError(f"{args.flows}: no job {args.job!r}; jobs: {', '.join(jobs)}")
    bad = checked = 0
    for name in names:
        store = Store(jobs[name].store)
        path = store.manifest_path(name)
        manifest = store.read_manifest(name)
        if manifest is None and not path.exists():
            print(f"{name}: no manifest in {jobs[name].store} (never run)")
            continue
        if not _manifest_is_sound(manifest):
            bad += 1
            print(f"{name}: manifest {path} is not valid JSON or not a featvis manifest; "
                  f"{'removed' if args.repair else '--repair removes it'} (the next run writes it anew)")
            if args.repair:
                path.unlink(missing_ok=True)
            continue
        repaired = []
        for entry in manifest["units"]:
            if entry["state"] != "done" and not (store.unit_dir(entry["path"]) / "meta.json").exists():
                continue
            checked += 1
            problems = store.problems(entry["path"])
            meta = store.read_meta(entry["path"]) or {}
            if not problems and meta.get("key") != entry["key"]:
                problems = ["meta.json belongs to another key"]
            if problems:
                bad += 1
                print(f"{name}: {entry['unit']} ({entry['path']}): {'; '.join(problems)}")
                if args.repair:
                    store.remove_unit(entry["path"])
                    repaired.append(entry)
        if repaired:
            for entry in repaired:
                entry["state"], entry["error"] = "pending", None
            states = [entry["state"] for entry in manifest["units"]]
            manifest["counts"] = {state: states.count(state) for state in ("done", "pending", "failed")}
            manifest["updated"] = now()
            store.write_manifest(name, manifest)
    action = "removed (run the job again to re-render them)" if args.repair else "found (--repair removes them)"
    print(f"checked {checked} units: {bad} corrupt {action if bad else ''}".rstrip())
    return 1 if bad and not args.repair else 0


def _manifest_is_sound(manifest) -> bool:
    fields = ("unit", "state", "path", "key")
    return isinstance(manifest, dict) and isinstance(manifest.get("units"), list) and all(
        isinstance(entry, dict) and all(isinstance(entry.get(f), str) for f in fields) for entry in manifest["units"])


def deploy(args: Namespace) -> int:
    from .deploy import serve_jobs

    return serve_jobs(args.flows, args.job)

