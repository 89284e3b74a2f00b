"""MkDocs hooks of the generated gallery config: publish the media and check every reference.

Media (thousands of store files) never go through docs_dir: MkDocs would copy each one twice (store ->
docs_dir -> site_dir). The generator writes a plan, ``media.json`` beside the generated mkdocs.yml, and
this hook hard-links the files into site_dir after MkDocs has built the pages (copying when the store is on
another filesystem). Because it is a hook, a plain ``mkdocs build``/``mkdocs gh-deploy`` of the generated
config publishes the same complete site. Broken references are logged as warnings, so strict mode fails
the build.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from featvis_site.layout import inside
from featvis_site.linkcheck import check_site

log = logging.getLogger("mkdocs.featvis")
PLAN = "media.json"
MAX_REPORTED = 20


def link_media(links: list[list[str]], site_dir: Path) -> tuple[int, int]:
    """Hard-link (or copy) every planned file into the site. Returns (files, bytes)."""
    made_dirs: set[Path] = set()
    total = files = 0
    can_link = True
    for dest_rel, src in links:
        try:
            dest = inside(site_dir, dest_rel)  # never outside the site, whatever the plan says
        except ValueError as error:
            log.warning("not published: %s", error)
            continue
        if dest.parent not in made_dirs:
            dest.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(dest.parent)
        if dest.exists():
            dest.unlink()
        if can_link:
            try:
                os.link(src, dest)
            except OSError:
                can_link = False  # other filesystem, or links not allowed: copy from now on
        if not can_link:
            shutil.copyfile(src, dest)
        total += dest.stat().st_size
        files += 1
    return files, total


def on_post_build(config: Any, **_: Any) -> None:
    plan_file = Path(config.config_file_path).parent / PLAN
    site_dir = Path(config.site_dir)
    if plan_file.is_file():
        plan = json.loads(plan_file.read_text(encoding="utf-8"))
        missing = [src for _, src in plan["links"] if not os.path.isfile(src)]
        for src in missing[:MAX_REPORTED]:
            log.warning("media file vanished from the store since it was verified: %s", src)
        present = [pair for pair in plan["links"] if os.path.isfile(pair[1])]
        files, size = link_media(present, site_dir)
        log.info("featvis: published %d media files (%.1f MB)", files, size / 1e6)
    (site_dir / ".nojekyll").touch()
    broken = check_site(site_dir, config.site_url)
    for item in broken[:MAX_REPORTED]:
        log.warning("broken reference: %s", item)
    if len(broken) > MAX_REPORTED:
        log.warning("... and %d more broken references", len(broken) - MAX_REPORTED)
