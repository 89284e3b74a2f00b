"""Do two stores hold the same units, byte for byte? (A Dask run of a slice against the threaded run.)

    python -m bench.same_images /work/full/dask/store /work/full/store --model efficientnet_lite0

For every unit folder (`layer/slug@key12`) of the first store: is the same folder in the second, and is
its image.png identical (else the largest pixel difference)? Units are matched by their content key, so
equal folders mean equal keys.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare(first: Path, second: Path, model: str) -> dict:
    units = sorted(p.parent for p in (first / model).glob("*/*/meta.json"))
    same, differ, missing, worst = 0, [], [], 0
    for unit in units:
        relative = unit.relative_to(first)
        other = second / relative
        if not (other / "meta.json").exists():
            missing.append(str(relative))
            continue
        if digest(unit / "image.png") == digest(other / "image.png"):
            same += 1
            continue
        a = np.asarray(Image.open(unit / "image.png"), dtype=np.int16)
        b = np.asarray(Image.open(other / "image.png"), dtype=np.int16)
        diff = int(np.abs(a - b).max())
        worst = max(worst, diff)
        tiles = [json.loads((u / "meta.json").read_text())["timings"].get("tile_units") for u in (unit, other)]
        differ.append({"unit": str(relative), "max_diff": diff, "tile_units": tiles})
    return {"units": len(units), "same_key_in_both": len(units) - len(missing), "identical_png": same,
            "different": differ, "missing": missing, "max_pixel_difference": worst}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--model", default="efficientnet_lite0", help="the model's store folder")
    args = parser.parse_args()
    result = compare(args.first, args.second, args.model)
    print(json.dumps({k: v for k, v in result.items() if k != "different"} | {"different": len(result["different"])}))
    for row in result["different"][:20]:
        print(json.dumps(row))
    return 0 if not result["missing"] and not result["different"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
