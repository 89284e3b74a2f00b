"""Build the gallery: read the store, plan media, write a docs dir and config, run MkDocs.

Nothing is generated inside the source tree: the docs dir, per-unit JSON, media plan and generated
mkdocs.yml go to a work dir (default ``<out>-src``), the site to ``out``. MkDocs empties its site_dir on
every build, so both folders are only ever (re)written when empty or marked as ours.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from featvis_site import examples_pages, hooks, pages
from featvis_site.atlas import Atlas
from featvis_site.data import finite, unit_record
from featvis_site.errors import BuildFailed, SiteError
from featvis_site import layout
from featvis_site.layout import ASSETS
from featvis_site.media import DEFAULT_BUDGET, PAGES_SITE_LIMIT, MediaPlan, plan_media
from featvis_site.store_reader import read_store

PACKAGE = Path(__file__).resolve().parent
BASE_CONFIG = PACKAGE / "mkdocs.yml"
THEME_DIR = PACKAGE / "theme"
ASSETS_DIR = PACKAGE / "assets"
HOOKS_FILE = PACKAGE / "hooks.py"
MARKER = ".featvis-site"
DEFAULT_STORE = Path("store")
DEFAULT_OUT = Path("out/site")
log = logging.getLogger("featvis_site")


@dataclass
class BuildReport:
    """What a build produced, for the CLI summary and the bench."""

    site_dir: Path
    config_file: Path
    models: int
    units: int
    published: int
    pages: int
    files: int = 0
    bytes: int = 0
    media_bytes: int = 0
    dropped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def bytes_per_unit(self) -> float:
        return self.bytes / self.units if self.units else 0.0

    def summary(self) -> str:
        total = sum(self.seconds.values())
        text = (
            f"built {self.site_dir}: {self.models} model(s), {self.published}/{self.units} units published, "
            f"{self.pages} pages, {self.files} files, {self.bytes / 1e6:.1f} MB "
            f"({self.bytes_per_unit / 1e3:.1f} kB/unit) in {total:.1f}s"
        )
        if self.dropped:
            text += f"; left out to fit the size budget: {', '.join(self.dropped)}"
        return text


def _guard(path: Path, what: str, store: Path) -> None:
    """Refuse to let MkDocs empty a folder that is not ours (it deletes everything in site_dir)."""
    resolved = path.resolve()
    if resolved == store or store in resolved.parents or resolved in store.parents:
        raise SiteError(f"{what} {path} overlaps the store {store}; choose a folder outside it")
    if resolved in (PACKAGE, Path.home().resolve(), Path("/")) or PACKAGE in resolved.parents:
        raise SiteError(f"refusing to use {path} as {what}; choose a dedicated folder such as ./out/site")
    if resolved.is_file():
        raise SiteError(f"{what} {path} is a file; pass a folder")
    if resolved.is_dir() and any(resolved.iterdir()) and not (resolved / MARKER).exists():
        raise SiteError(f"refusing to overwrite {path}: it is not empty and was not made by featvis site build")


def _prepare(work: Path) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).touch()
    docs, unitdata = work / "docs", work / "unitdata"
    for folder in (docs, unitdata):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
    return docs, unitdata


def write_docs(atlas: Atlas, plan: MediaPlan, docs: Path, unitdata: Path,
               extras: examples_pages.Extras | None = None) -> int:
    """Pages and theme assets into docs; per-unit JSON into unitdata (added to the media plan)."""
    extras = extras or examples_pages.Extras()
    written = examples_pages.add_pages(pages.render_pages(atlas, plan), atlas, plan, extras, pages.Page)
    paths = [page.path for page in written]
    if len(set(paths)) != len(paths):
        raise BuildFailed(f"two pages would share a path: {sorted(p for p in paths if paths.count(p) > 1)[0]}")
    for page in written:
        target = _inside(docs, page.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page.text, encoding="utf-8")
    shutil.copytree(ASSETS_DIR, docs / ASSETS)
    for model in atlas.models:
        for unit in model.units:
            assets = plan.assets(unit)
            if assets is None:
                continue
            target = _inside(unitdata, assets.meta)
            target.parent.mkdir(parents=True, exist_ok=True)
            record = {**unit_record(model, unit, assets), **examples_pages.unit_extras(model, unit, assets, plan, extras)}
            target.write_text(json.dumps(finite(record), separators=(",", ":"), allow_nan=False), encoding="utf-8")
            plan.links[assets.meta] = target
    return len(written)


def _inside(base: Path, relative: str) -> Path:
    """Where a generated file goes: always inside `base` (the build never writes outside its own folders)."""
    try:
        return layout.inside(base, relative)
    except ValueError as error:
        raise BuildFailed(f"refusing to write outside {base}: {error}") from None


def write_config(work: Path, atlas: Atlas, docs: Path, out: Path, *, strict: bool, site_url: str | None,
                 extras: examples_pages.Extras | None = None) -> Path:
    """The generated mkdocs.yml: inherits site/mkdocs.yml, adds paths, nav and our hook."""
    config: dict[str, Any] = {
        "INHERIT": str(BASE_CONFIG),
        "docs_dir": str(docs),
        "site_dir": str(out.resolve()),
        "theme": {"name": "material", "custom_dir": str(THEME_DIR)},
        "hooks": [str(HOOKS_FILE)],
        "nav": examples_pages.nav(pages.nav(atlas), atlas, extras or examples_pages.Extras()),
        "strict": strict,
        "extra": {
            "featvis": {
                "units": f"{len(atlas.units):,}",
                "published": f"{sum(u.published for u in atlas.units):,}",
                "built": time.strftime("%Y-%m-%d"),
            }
        },
    }
    if site_url:
        config["site_url"] = site_url
    path = work / "mkdocs.yml"
    path.write_text(
        "# Generated by featvis_site.build; edit site/mkdocs.yml instead.\n"
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return path


def run_mkdocs(config_file: Path, *, strict: bool) -> None:
    """``mkdocs build`` in-process (as its CLI does it), turning MkDocs aborts into BuildFailed."""
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "true")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    try:
        config = load_config(str(config_file), strict=strict)
        config.plugins.on_startup(command="build", dirty=False)
        try:
            build(config)
        finally:
            config.plugins.on_shutdown()
    except MkDocsException as exc:
        raise BuildFailed(f"mkdocs build failed: {exc}") from None


def _measure(site: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _dirs, names in os.walk(site):
        for name in names:
            if name != MARKER:
                files += 1
                size += os.stat(os.path.join(dirpath, name)).st_size
    return files, size


def build_site(
    store: Path | str = DEFAULT_STORE,
    out: Path | str = DEFAULT_OUT,
    *,
    work: Path | str | None = None,
    strict: bool = True,
    site_url: str | None = None,
    budget: int = DEFAULT_BUDGET,
) -> BuildReport:
    """Build the gallery of ``store`` into ``out``. SiteError: fix your input; BuildFailed: do not publish."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    atlas = read_store(store)
    extras = examples_pages.read_extras(atlas)  # dataset examples, explain pages, circuit links, dives
    atlas.warnings.extend(extras.warnings)
    timings["read"] = time.perf_counter() - t0
    out = Path(out).absolute()  # MkDocs reads paths relative to its config file, which lives in `work`
    work = Path(work).absolute() if work else out.parent / f"{out.name}-src"
    _guard(out, "output folder", atlas.root)
    _guard(work, "work folder", atlas.root)
    if out.resolve() == work.resolve():
        raise SiteError("--out and the work folder must differ")

    t = time.perf_counter()
    plan = plan_media(atlas, budget)
    docs, unitdata = _prepare(work)
    n_pages = write_docs(atlas, plan, docs, unitdata, extras)
    (work / hooks.PLAN).write_text(
        json.dumps({"links": [[dest, str(src)] for dest, src in plan.links.items()]}), encoding="utf-8"
    )
    config_file = write_config(work, atlas, docs, out, strict=strict, site_url=site_url, extras=extras)
    timings["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()
    run_mkdocs(config_file, strict=strict)
    timings["mkdocs"] = time.perf_counter() - t

    files, size = _measure(out)
    report = BuildReport(
        site_dir=out,
        config_file=config_file,
        models=len(atlas.models),
        units=len(atlas.units),
        published=sum(u.published for u in atlas.units),
        pages=n_pages,
        files=files,
        bytes=size,
        media_bytes=plan.bytes,
        dropped=list(plan.dropped),
        warnings=list(atlas.warnings),
        seconds=timings,
    )
    if size > PAGES_SITE_LIMIT:
        log.warning("the site is %.0f MB, over GitHub Pages' 1 GB limit", size / 1e6)
    return report
