"""Generator-level benchmark of the gallery: build time and size of a whole-model atlas.

Fakes a ResNet-50-sized store (every channel of the four stages, 256+512+1024+2048 = 3,840, plus the 1,000
class logits) with small but real WebP/MP4 files, builds the site and prints the build time,
its breakdown, the site size in bytes, and bytes per unit. Pass --store to measure a real store instead.

    .venv/bin/python -m bench.bench_site                 # fake ResNet-50 store in a temp dir
    .venv/bin/python -m bench.bench_site --store store   # a real store
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_MKDOCS_2_WARNING", "true")

from featvis_site.build import build_site  # noqa: E402
from featvis_site.media import PAGES_SITE_LIMIT  # noqa: E402
from .synthetic import bench_model, make_store  # noqa: E402


def _largest(site: Path, suffix: str) -> tuple[str, int]:
    best = ("", 0)
    for path in site.rglob(f"*{suffix}"):
        size = path.stat().st_size
        if size > best[1]:
            best = (path.relative_to(site).as_posix(), size)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, help="benchmark this store instead of a fake one")
    parser.add_argument("--channels", default="256,512,1024,2048", help="channels per fake layer")
    parser.add_argument("--logits", type=int, default=1000, help="class logits in the fake store")
    parser.add_argument("--size", type=int, default=224, help="fake render size in px (even)")
    parser.add_argument("--thumb", type=int, default=128, help="fake thumbnail size in px")
    parser.add_argument("--frames", type=int, default=16, help="frames of the fake animations")
    parser.add_argument("--budget-mb", type=float, default=900, help="the build's size budget")
    parser.add_argument("--pool", type=int, default=24, help="distinct media sets reused across fake units")
    parser.add_argument("--workdir", type=Path, help="keep store and site here (default: a temp dir)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="featvis-bench-") as tmp:
        work = args.workdir or Path(tmp)
        store = args.store
        if store is None:
            store = work / "store"
            spec = bench_model(channels=[int(c) for c in args.channels.split(",")], logits=args.logits,
                               size=args.size, thumb=args.thumb, frames=args.frames)
            t = time.perf_counter()
            make_store(store, [spec], pool=args.pool)
            print(f"fake store: {sum(spec.render.values()) + args.logits} units in {time.perf_counter() - t:.1f}s")
        t = time.perf_counter()
        report = build_site(store, work / "site", budget=int(args.budget_mb * 1e6))
        elapsed = time.perf_counter() - t
        site = work / "site"
        page, page_size = _largest(site, ".html")
        print(f"build time      : {elapsed:.1f} s  ("
              + ", ".join(f"{k} {v:.1f}s" for k, v in report.seconds.items()) + ")")
        print(f"units           : {report.units} ({report.published} published), {report.pages} pages")
        print(f"site size       : {report.bytes:,} bytes in {report.files:,} files "
              f"({report.bytes / PAGES_SITE_LIMIT:.1%} of GitHub Pages' 1 GB)")
        print(f"bytes per unit  : {report.bytes_per_unit:,.0f}  (media {report.media_bytes / max(1, report.units):,.0f})")
        print(f"largest page    : {page} ({page_size:,} bytes)")
        sizes = {}
        for path in (site / "media").rglob("*"):
            if path.is_file():
                name = "diversity/*.webp" if "diversity" in path.parts else path.name
                sizes[name] = sizes.get(name, 0) + path.stat().st_size
        print("media by file   : " + ", ".join(f"{k} {v / max(1, report.published):,.0f} B/unit"
                                               for k, v in sorted(sizes.items())))
        if report.dropped:
            print(f"left out        : {', '.join(report.dropped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
