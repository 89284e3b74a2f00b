"""What each `featvis` command does (argument parsing lives in cli.py)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from featvis_core import FeatvisError

from . import stopping
from .jobs import one_line
from .terminal import echo, printable, short
from .storeformat import LOCKS, MANIFESTS, StoreFormatError


def render(args: Namespace) -> int:
    """Render units now, without the pipeline. Every setting goes through the same schema as flows.yaml's
    overrides, the device is checked against this machine and each batch against its memory, all before the
    model is loaded."""
    from featvis_core import load_model, media
    from featvis_core.models import check_model_name
    from featvis_core.units import group_by_layer

    from . import devices
    from .budget import check_tile
    from .plan import model_dir

    clock = Phases()
    check_model_name(args.model)
    if not 1 <= args.batch <= 4096:
        raise FeatvisError(f"--batch must be between 1 and 4096, got {args.batch}")
    config = _render_config(args)
    device = devices.resolve(args.device)
    with clock("model load"):
        model = load_model(args.model, device)
    if model.fixed_size:
        from featvis_core.probe import size_note

        echo(size_note(model))
    units = [unit for selector in args.units for unit in model.units(selector)]
    batches = [group[i:i + args.batch] for group in group_by_layer(units).values() for i in range(0, len(group), args.batch)]
    for batch in batches:
        check_tile(model, batch[0].layer, len(batch), config, str(device), batch_name="--batch")
    folder = args.out / model_dir(args.model)
    began = time.perf_counter()
    images, labels = _render_batches(model, batches, config, folder, args.scores, clock)
    with clock("contact sheet"):
        media.contact_sheet(images, labels=labels).save(folder / "contact.png")
    elapsed = time.perf_counter() - began
    echo(f"{len(units)} units in {elapsed:.1f} s ({len(units) * config.total_steps / elapsed:.0f} image-steps/s) "
          f"-> {folder}/ (contact sheet: {folder / 'contact.png'})")
    if args.timings:
        for line in clock.report().splitlines():
            echo(line)
    return 0


def _render_config(args: Namespace):
    """The preset with --set, --steps and --size, through the same schema as flows.yaml's overrides."""
    from .settings import check_settings, render_config

    changes = check_settings(_settings(args.set), "--set")
    for option in ("steps", "size"):
        if getattr(args, option) is not None:
            changes.update(check_settings({option: getattr(args, option)}, f"--{option}"))
    return render_config(args.preset, changes, "render settings")


def _render_batches(model, batches, config, folder, scores: bool, clock: "Phases"):
    """Render batch after batch; each unit's media are encoded on two threads while the next batch renders
    (the encoders release the GIL). Returns the images and their labels, for the contact sheet."""
    from featvis_core import media
    from featvis_core import render as render_units
    from featvis_core.units import LOGITS
    from tqdm import tqdm

    images, labels, written = [], [], []
    with ThreadPoolExecutor(max_workers=2) as writers, stopping.on_signals(), \
            tqdm(total=sum(len(b) for b in batches) * config.total_steps, unit="img-step", desc="render") as bar:
        for batch in batches:
            with clock("render"):
                results = render_units(model, batch, config,
                                       on_step=lambda step, steps, n=len(batch): (stopping.check(), bar.update(n)))
            clock.add("  of which network copy and set-up", results[0].timings["prepare_s"])
            clock.add("  of which optimisation steps", results[0].timings["steps_s"])
            for result in results:
                stem = output_stem(folder, result.unit.layer, result.unit.slug)
                stem.parent.mkdir(parents=True, exist_ok=True)
                written.append(writers.submit(_write_unit_media, media, stem, result))
                images.append(result.image)
                labels.append(result.unit.spec if result.unit.layer != LOGITS else model.classes[result.unit.index])
                if result.error:
                    echo(f"{result.unit}: failed: {result.error}", file=sys.stderr)
                else:
                    bar.write(printable(f"{result.unit}: activation {result.start:.4g} -> {result.final:.4g}"))
            if scores and batch[0].layer == LOGITS:
                with clock("scores"):
                    _print_scores(model, results, config)
        with clock("media (waiting for the encoders)"):
            encoding = sum(future.result() for future in written)
    clock.add("  media encoding, all threads", encoding)
    return images, labels


def output_stem(folder, layer: str, slug: str):
    """Where a unit's files go under --out: a layer's name comes from the model (a factory's module may be
    named '/etc/x' or 'a/b'), so it becomes one plain folder name, and the result is checked to stay inside
    `folder` (FeatvisError otherwise)."""
    from .storeformat import model_dir

    stem = folder / model_dir(layer) / model_dir(slug)
    base = folder.resolve()
    if stem.resolve() != base / stem.relative_to(folder) or base not in stem.resolve().parents:
        raise FeatvisError(one_line(f"layer {short(layer)}: its files would not stay inside {folder}"))
    return stem


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
    """--set FIELD=VALUE pairs, values parsed as YAML (so 0.05, true and [1, 2] mean what they say); a dotted
    FIELD (augment.pad=4) sets one field of a nested setting."""
    import yaml

    from . import yamlfile

    overrides: dict = {}
    for item in values:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise FeatvisError(one_line(f"--set expects FIELD=VALUE, got {short(item)}"))
        try:
            parsed = yamlfile.loads(value)
        except yamlfile.TooLarge as error:
            raise FeatvisError(one_line(f"--set {field.strip()[:100]}: {error}")) from None
        except (yaml.YAMLError, RecursionError) as error:
            problem = getattr(error, "problem", None)
            raise FeatvisError(one_line(f"--set {field.strip()[:100]}: {short(value)} is not a value (YAML"
                                        f"{': ' + problem if problem else ''})")) from None
        *parents, name = field.strip().split(".")
        target = overrides
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise FeatvisError(one_line(f"--set {field.strip()}: {parent} is set to a value, not a mapping"))
        target[name] = parsed
    return overrides


def _print_scores(model, results, config) -> None:
    """Recognition of logit images on hard views, by this model and by efficientnet_lite1."""
    import torch

    from featvis_core import load_model
    from featvis_core.scores import seen_size, unit_quality

    judge = load_model("efficientnet_lite1", model.device) if model.channels == 3 and len(model.classes) == 1000 else None
    images = torch.stack([r.image for r in results])
    scores = unit_quality(images, [r.unit.index for r in results], seen_size(config), model, judge)
    for result, score in zip(results, scores):
        echo(f"{model.classes[result.unit.index]:>20}: " + "  ".join(f"{k} {v:.2f}" for k, v in score.items()))


def layers(args: Namespace) -> int:
    from featvis_core import load_model
    from featvis_core.models import check_model_name
    from featvis_core.probe import size_note
    from featvis_core.schedules import MAX_SIZE

    check_model_name(args.model)
    if args.size is not None and not 8 <= args.size <= MAX_SIZE:
        raise FeatvisError(f"--size must be between 8 and {MAX_SIZE} px, got {args.size}")
    if args.depth is not None and not 1 <= args.depth <= 64:
        raise FeatvisError(f"--depth must be between 1 and 64, got {args.depth}")
    model = load_model(args.model, pretrained=False)
    size = args.size or model.input_size
    if model.fixed_size and size != model.input_size:
        raise FeatvisError(f"{size_note(model)}; --size {size} cannot be listed")
    listed = model.layers(size, depth=args.depth)
    echo(f"{model.name}: input {size} px, {model.channels} channel(s) shown as {model.display}, "
          f"{len(model.classes)} classes (select them as logits:NAME or logits:INDEX); {len(listed)} layers")
    echo(size_note(model))
    width = max([28] + [len(layer.name) + 2 for layer in listed])
    echo(f"{'layer':<{width}}{'channels':>9}  {'size':<9}layout")
    for layer in listed:
        echo(f"{layer.name:<{width}}{layer.channels:>9}  {f'{layer.height}x{layer.width}':<9}{layer.layout.describe}")
    return 0


def explain(args: Namespace) -> int:
    """Seed 004 for one image: predictions, saliency maps, the most active channels' activation maps."""
    from featvis_core import load_model, media
    from featvis_core.examples import open_rgb
    from featvis_core.explain import explain as explain_image, heat_overlay
    from featvis_core.models import check_model_name

    check_model_name(args.model)
    if not args.image.exists():
        raise FeatvisError(one_line(f"{args.image}: no such image file"))
    if not 1 <= args.channels <= 64:
        raise FeatvisError(f"--channels must be 1-64, got {args.channels}")
    try:
        image = open_rgb(args.image, follow=True)  # a path the user typed: a link is theirs to give
    except OSError as error:  # a folder, a FIFO, a device: never read
        raise FeatvisError(one_line(f"{args.image}: cannot be read ({error.strerror or error})")) from None
    except ValueError as error:  # not an image, a broken one, a decompression bomb: never decoded
        raise FeatvisError(one_line(f"{args.image}: {error}")) from None
    model = load_model(args.model)
    listed = model.layers() if not args.layer else []
    if not args.layer and not listed:
        raise FeatvisError(f"model {model.name!r} has no layer that outputs a feature map to explain")
    layer = args.layer or listed[-1].name
    found = explain_image(model, image, layer, args.channels)
    args.out.mkdir(parents=True, exist_ok=True)
    media.write_png(args.out / "view.png", found.view)
    media.write_png(args.out / "saliency.png", heat_overlay(found.view, found.saliency))
    media.write_png(args.out / "smoothgrad.png", heat_overlay(found.view, found.smoothgrad))
    for (channel, _), heat in zip(found.channels, found.maps):
        media.write_png(args.out / f"{layer}-c{channel:04d}.png", heat_overlay(found.view, heat))
    echo(f"{args.image.name} on {model.name}: top-{len(found.top5)}")
    for index, name, p in found.top5:
        echo(f"  {p:6.1%}  {name} ({index})")
    echo(f"most active channels of {layer} (mean activation): "
          + ", ".join(f"{c} ({m:.2f})" for c, m in found.channels))
    echo(f"-> {args.out}/ (view.png, saliency.png, smoothgrad.png, {layer}-cNNNN.png)")
    return 0


def examples(args: Namespace) -> int:
    from .examples import peak_rss_mb
    from .extras import extras_flow
    from .flows import make_runner
    from .jobs import load_job
    from .server import prefect_api

    from . import extras, preflight

    job = load_job(args.flows, args.job)
    if not extras.wanted(job):  # before a Prefect server is started, not inside the flow
        raise FeatvisError(f"{args.flows}: job {args.job!r} has neither examples: nor zoom:, so it has no extras")
    preflight.check_runner(job.runner)
    preflight.check_writable(job.store)
    runner = make_runner(job.runner)
    with stopping.on_signals(), prefect_api():
        summary = extras_flow.with_options(task_runner=runner.task_runner)(job=args.job, flows=str(args.flows))
    stats = summary.get("examples") or {}
    if stats:
        rate = f"{stats['views_per_s']} images/s" if stats.get("views_per_s") else "all cached"
        echo(f"{args.job}: examples over {stats['images']} images ({stats['views']} views with crops): "
              f"{stats['shards_computed']} of {stats['shards']} shards computed, {stats['views_computed']} views in "
              f"{stats['seconds']} s ({rate})")
    echo(f"{args.job}: extras {summary}; peak memory {peak_rss_mb():.0f} MB")
    return 0


def _plan(args: Namespace):
    from .flows import plan_job
    from .jobs import load_job

    job = load_job(args.flows, args.job)
    return job, plan_job(args.job, job)


def run(args: Namespace) -> int:
    """Plan, check every tile against the device, then run the flow on the job's task runner. Ctrl-C and
    SIGTERM stop it within a step (exit 130, 143); its temporary Prefect server never outlives it."""
    from .budget import check_plan
    from .manifest import Manifest, write_model_card
    from .store import Store

    from . import preflight
    from .flows import plan_job
    from .jobs import load_job

    job = load_job(args.flows, args.job)
    site = args.site or job.site
    if not args.dry_run:  # what would fail later, found before the model is loaded or a server started
        preflight.check_runner(job.runner)
        if site:
            preflight.check_site_out(site, job.store)
    plan = plan_job(args.job, job)
    costs = check_plan(plan)
    store = Store(job.store)
    if not args.dry_run:
        preflight.check_writable(job.store)
        store.check_folders(plan.folders)
    pending = plan.pending(store, verify=True)
    tiles = plan.tiles(pending)
    cached = len(plan.units) - len(pending)
    if args.dry_run:
        _print_plan(plan, pending, tiles, cached, costs)
        return 0
    from . import extras

    extras_pending = extras.pending(args.job, job, plan, store)  # also checks folder, layer and classes first
    if not pending and not extras_pending:
        # nothing to render or compute: no flow run, no Prefect server to start
        store.sweep()
        write_model_card(store, plan)
        Manifest(plan, store, pending).save()
        echo(f"{args.job}: all {len(plan.units)} units are cached in {job.store}; nothing to render")
        failed = 0
        if site:
            from .flows import build_site

            build_site(job.store, site)
    else:
        failed, stopped = _run_flow(args.job, args.flows, site)
        if stopped:
            return stopped
    if site:
        echo(f"site: {site}/index.html (or: featvis site serve --store {job.store})")
    return 1 if failed else 0


def _print_plan(plan, pending, tiles, cached, costs) -> None:
    by_layer: dict[str, list[int]] = {}
    waiting = {u.spec for u in pending}
    for unit in plan.units:
        counts = by_layer.setdefault(unit.unit.layer, [0, 0])
        counts[0] += 1
        counts[1] += unit.spec in waiting
    echo(f"job {plan.job_name}: model {plan.job.model}, preset {plan.job.preset}, store {plan.job.store}")
    echo(f"{'layer':<24}{'units':>7}{'pending':>9}  largest tile (estimate)")
    for layer, (total, todo) in by_layer.items():
        echo(f"{layer:<24}{total:>7}{todo:>9}  {costs[layer].describe()}")
    config = plan.config
    echo(f"{len(plan.units)} units, {cached} cached, {len(pending)} to render in {len(tiles)} tiles of <= "
          f"{plan.job.batch} images; {plan.image_steps(pending):,} image-steps at "
          f"{config.final_size} px ({config.total_steps} steps each)")


def _run_flow(name: str, flows, site) -> tuple[int, int | None]:
    """Run the job's flow with a temporary Prefect server: (failed units, the exit code of the signal
    when Ctrl-C or SIGTERM stopped it)."""
    from prefect.exceptions import TerminationSignal

    from .flows import run_job
    from .server import prefect_api

    try:
        with stopping.on_signals(), prefect_api():
            summary = run_job(name, str(flows), str(site) if site else None)
    except TerminationSignal:  # SIGTERM outside the flow's tile loop (Prefect's own handler raised it)
        echo(f"{name}: stopped by SIGTERM; unfinished units stay pending", file=sys.stderr)
        return 0, stopping.exit_code(signal.SIGTERM)
    if summary["stopped"]:
        echo(f"{name}: stopped by {stopping.NAMES.get(summary['stopped'], summary['stopped'])}: "
              f"{summary['rendered']} rendered, {summary['pending']} left pending (run it again to go on); "
              f"manifest {summary['manifest']}")
        return 0, stopping.exit_code(summary["stopped"])
    echo(f"{name}: {summary['rendered']} rendered, {summary['cached']} cached, {summary['failed']} failed "
          f"in {summary['wall_s']:.1f} s ({summary['units_per_s']:.2f} units/s); manifest {summary['manifest']}")
    failed = summary["failed"]
    for problem in (summary.get("manifest_error"), summary.get("site_error")):
        if problem:
            echo(f"featvis: error: {name}: {problem}" + ("; featvis status reads the store itself"
                                                          if problem is summary.get("manifest_error") else ""),
                 file=sys.stderr)
            failed = failed or 1
    if isinstance(summary.get("extras"), dict) and summary["extras"].get("error"):
        echo(f"{name}: extras failed ({summary['extras']['error']}); the next run retries them", file=sys.stderr)
        failed = failed or 1
    return failed, None


def status(args: Namespace) -> int:
    from .store import Store

    job, plan = _plan(args)
    store = Store(job.store)
    try:
        manifest = store.load_manifest(args.job)
    except StoreFormatError as error:
        echo(f"{args.job}: {error} (featvis verify --repair removes it)", file=sys.stderr)
        manifest = None
    errors = {u.unit: u.error for u in manifest.units if u.error} if manifest else {}
    done: set[str] = set()
    layers: dict[str, LayerProgress] = {}
    for unit in plan.units:
        check = store.check(unit.path, unit.key, verify=False)
        progress = layers.setdefault(unit.unit.layer, LayerProgress())
        progress.total += 1
        if check.done:
            done.add(unit.spec)
            progress.add(_render_seconds(check.meta))
    echo(f"{args.job}: {len(done)}/{len(plan.units)} units done ({job.store})")
    for layer, progress in layers.items():
        echo(f"  {layer:<24} {progress.bar()} {progress.finished}/{progress.total}{progress.rate()}")
    eta = _eta(layers)
    if eta:
        echo(eta)
    for unit, error in errors.items():
        if unit not in done:
            echo(f"  failed {unit}: {error}")
    if manifest and manifest.updated:
        echo(f"manifest updated {manifest.updated}")
    return 0


class LayerProgress:
    """One layer's line in `featvis status`: units finished, and their optimisation seconds as stored."""

    def __init__(self) -> None:
        self.total = self.finished = self.timed = 0
        self.seconds = 0.0

    def add(self, seconds: float | None) -> None:
        self.finished += 1
        if seconds is not None:
            self.timed += 1
            self.seconds += seconds

    def per_unit(self) -> float | None:
        return self.seconds / self.timed if self.timed else None

    def bar(self) -> str:
        filled = round(20 * self.finished / self.total)
        return "#" * filled + "." * (20 - filled)

    def rate(self) -> str:
        per_unit = self.per_unit()
        return f"  {per_unit:.2f} s/unit" if per_unit is not None else ""


def _render_seconds(meta) -> float | None:
    """A done unit's optimisation seconds from its (untrusted) meta.json: a finite, sane number or None."""
    value = meta.timings.get("render_s") if meta is not None else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e6:
        return None
    return float(value)


def _eta(layers: dict[str, "LayerProgress"]) -> str:
    """What is left, priced at each layer's measured seconds per unit (the job's mean where a layer has
    none yet): optimisation time on one worker, the pipeline's media and scores not included."""
    timed = [p for p in layers.values() if p.timed]
    if not timed:
        return ""
    mean = sum(p.seconds for p in timed) / sum(p.timed for p in timed)
    left = sum((p.total - p.finished) * (p.per_unit() or mean) for p in layers.values())
    if not left:
        return ""
    hours, rest = divmod(round(left), 3600)
    return f"about {hours} h {rest // 60:02d} min of optimisation left on one worker, at the measured s/unit"


def _verify_store_folders(store, label: str, repair: bool) -> int:
    """The store's manifests and locks folders: a symbolic link there is one problem (removed with repair)."""
    bad = 0
    for folder in (MANIFESTS, LOCKS):
        if store.first_link(folder) == folder:
            bad += 1
            echo(f"{label}: {folder} is a symbolic link, not a folder of the store; "
                  f"{'removed' if repair else '--repair removes it'}")
            if repair:
                store.remove_link(folder)
    return bad


EXTRAS_FOLDERS = ("examples", "circuits", "zoom")  # what a job's extras write (pipeline/extras.py)


def _verify_extras(store, label: str, repair: bool) -> int:
    """The extras' folders (dataset examples, explain pages, circuits, dives): a symbolic link or a special
    file anywhere in them is one problem each (never followed; removed with --repair), and an extras
    manifest that is not a JSON object of the allowed size is one too (removed with --repair: the next run
    writes it anew)."""
    import json
    import stat as stat_

    from .extras import MANIFESTS as EXTRAS_MANIFESTS
    from .storeformat import read_capped

    bad = 0

    def report(relative: str, what: str, path) -> None:
        nonlocal bad
        bad += 1
        echo(f"{label}: {relative} {what}; {'removed' if repair else '--repair removes it'}")
        if repair:
            path.unlink() if path.is_symlink() or not path.is_dir() else shutil.rmtree(path)

    for top in EXTRAS_FOLDERS:
        root = store.root / top
        entries = [root] if root.is_symlink() or root.exists() else []
        while entries:
            path = entries.pop()
            relative = path.relative_to(store.root).as_posix()
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue
            if stat_.S_ISLNK(mode):
                report(relative, "is a symbolic link (never followed)", path)
            elif stat_.S_ISDIR(mode):
                entries += sorted(path.iterdir(), reverse=True)
            elif not stat_.S_ISREG(mode):
                report(relative, "is not a regular file", path)
            elif relative.startswith(EXTRAS_MANIFESTS + "/") and relative.endswith(".json"):
                try:
                    ok = isinstance(json.loads(read_capped(path, 64 << 20)), dict)
                except (OSError, ValueError, RecursionError):
                    ok = False
                if not ok:
                    report(relative, "is not a readable extras manifest (a JSON object)", path)
    return bad


def _verify_job(store, name: str, label: str, repair: bool) -> tuple[int, int]:
    """Check one job's units against their checksums; (corrupt, checked). With repair, a corrupt unit is
    removed and marked pending, a manifest that does not fit the format is removed as a whole."""
    try:
        manifest = store.load_manifest(name)
    except StoreFormatError as error:
        echo(f"{name}: manifest {error}; {'removed' if repair else '--repair removes it'} "
             "(the next run writes it anew)")
        if repair:
            _remove(store, f"{MANIFESTS}/{name}.json", file=True)
        return 1, 0
    if manifest is None:
        echo(f"{name}: no manifest in {label} (never run)")
        return 0, 0
    bad = checked = 0
    repaired = []
    for entry in manifest.units:
        if entry.state != "done" and not store.check(entry.path, verify=False).meta:
            continue
        checked += 1
        problems = store.check(entry.path, entry.key).problems
        if problems:
            bad += 1
            echo(f"{name}: {entry.unit} ({entry.path}): {'; '.join(problems)}")
            if repair:
                _remove(store, entry.path)
                repaired.append(entry.key)
    if repaired:
        _mark_pending(store, name, manifest, repaired)
    return bad, checked


def _mark_pending(store, name: str, manifest, keys: list[str]) -> None:
    """Rewrite a job's manifest with the units of `keys` pending again, counts updated."""
    from .store import now

    units = [u.model_dump(by_alias=True) for u in manifest.units]
    for entry in units:
        if entry["key"] in keys:
            entry["state"], entry["error"] = "pending", None
    states = [entry["state"] for entry in units]
    store.write_manifest(name, {**manifest.model_dump(by_alias=True), "units": units, "updated": now(),
                                "counts": {state: states.count(state) for state in ("done", "pending", "failed")}})


def verify(args: Namespace) -> int:
    """Check every unit a job's manifest lists (done, or with a meta.json on disk) against the checksums
    in its meta.json; print one line per corrupt unit. --repair removes those units and marks them
    pending in the manifest, so the site shows them as pending and the next run renders them again.
    Every path comes from a manifest that was checked against the store's layout first: a manifest that
    does not fit the format is reported (and with --repair removed) as a whole, never followed."""
    from .jobs import load_jobs
    from .store import Store

    jobs = load_jobs(args.flows)
    names = [args.job] if args.job is not None else list(jobs)
    if args.job is not None and args.job not in jobs:
        raise FeatvisError(f"{args.flows}: no job {args.job!r}; jobs: {', '.join(jobs)}")
    bad = checked = 0
    stores: set[str] = set()
    for name in names:
        store = Store(jobs[name].store)
        if str(store.root) not in stores:  # the store's own folders: a link there leads writes elsewhere
            stores.add(str(store.root))
            bad += _verify_store_folders(store, jobs[name].store, args.repair)
            bad += _verify_extras(store, jobs[name].store, args.repair)
        job_bad, job_checked = _verify_job(store, name, jobs[name].store, args.repair)
        bad, checked = bad + job_bad, checked + job_checked
    action = "removed (run the job again to re-render them)" if args.repair else "found (--repair removes them)"
    echo(f"checked {checked} units: {bad} corrupt {action if bad else ''}".rstrip())
    return 1 if bad and not args.repair else 0


def _remove(store, relative: str, file: bool = False) -> None:
    """--repair: remove a corrupt unit folder or manifest; when the way to it goes through a symbolic link
    (planted or copied into the store), remove that link instead, never what it points to."""
    link = store.first_link(relative)
    if link:
        store.remove_link(link)
        echo(f"  removed the symbolic link {link} from the store")
    elif file:
        path = store.root.joinpath(*relative.split("/"))
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    else:
        store.remove_unit(relative)


def deploy(args: Namespace) -> int:
    from .deploy import serve_jobs

    return serve_jobs(args.flows, args.job)

