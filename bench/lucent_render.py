"""Lucent's `render_vis` as a command, so the frontier benchmark times it as a whole process, as it times
`featvis render`: start-up, model load, every unit, PNGs written.

    python -m bench.lucent_render blocks.10:3,10 'logits:hen,pelican' --out DIR [--steps 512]

Units are featvis selectors; images land where `featvis render` puts them (DIR/MODEL/LAYER/SLUG.png).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from featvis_core import load_model, media
from featvis_core.units import LOGITS, parse_selector

from .common import MODEL
from .peers import run_lucent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("units", nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=512, help="Lucent's default: 512")
    parser.add_argument("--size", type=int, default=128, help="Lucent's default: 128 px")
    args = parser.parse_args(argv)
    model = load_model(MODEL)
    for selector in args.units:
        layer = selector.rpartition(":")[0]
        count = len(model.classes) if layer == LOGITS else model.layer(layer).channels
        units = parse_selector(selector, count, model.class_index)
        folder = args.out / MODEL / layer
        folder.mkdir(parents=True, exist_ok=True)
        for unit in units:  # one call per unit, as Lucent's README does
            run = run_lucent(model, [unit], args.size, args.steps)
            media.write_png(folder / f"{unit.slug}.png", run.images[0])


if __name__ == "__main__":
    main()
