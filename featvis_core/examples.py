"""Dataset examples: which real images (and random crops of them) excite each unit most and least.

One batched forward pass over an image folder, stopped after the deepest layer asked for, scores every
*view* (the whole image, plus `crops` random square crops, as OpenAI Microscope did) for every channel of
every layer at once, and keeps a **running top-k** (and bottom-m) per channel: memory is O(channels x k),
flat in the number of images. A view is named by (image id, view index); crops are drawn from a generator
seeded by the image's content and the crop settings, so any view can be rebuilt later (for thumbnails,
attribution) without storing pixels.

The score of a view for a channel is the channel's spatial mean, the objective the renderer maximises,
so a unit's synthetic image and its real examples answer the same question. Logits score as themselves.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import warnings
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Full, Queue
from typing import Callable, Iterable, Iterator, Sequence

import torch
from PIL import Image

from .fastnet import render_network
from .models import Classifier
from .truncate import capture
from .units import LOGITS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
EXAMPLES_VERSION = "1"  # bump when a change alters scores or crops: invalidates every cached shard
MAX_PIXELS = 64_000_000  # a decompression bomb is refused, not decoded
log = logging.getLogger("featvis.examples")
# Pillow warns above ~89 Mpixel and refuses above ~179 Mpixel; every image is refused above MAX_PIXELS (less)
# before it is decoded, so its warning would only repeat that, on stderr, in the middle of a run
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class CropSpec:
    """How many random square crops each image adds, and their size as a share of its shorter side."""

    crops: int = 0
    min_scale: float = 0.25
    max_scale: float = 0.6
    seed: int = 0

    @property
    def key(self) -> str:
        """8 hex digits naming the crop geometry (part of every crop thumbnail's file name)."""
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()[:8]


def list_images(folder: Path) -> list[Path]:
    """Every JPEG/PNG *regular file* below `folder` (any depth), sorted by relative path; hidden entries
    skipped. A folder is untrusted input: symbolic links (to a file or a folder), FIFOs, devices and
    sockets are skipped with one warning each (a FIFO would block the run, a link would read outside)."""
    found = []
    for root, dirs, files in os.walk(folder):  # os.walk does not enter linked folders
        for name in sorted(dirs):
            if not name.startswith(".") and os.path.islink(os.path.join(root, name)):
                _skip(Path(root, name), folder, "a symbolic link, not a folder")
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(root, d)))
        for name in files:
            if name.startswith(".") or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            path = Path(root) / name
            try:
                mode = os.lstat(path).st_mode
            except OSError as error:
                _skip(path, folder, str(error.strerror or error))
                continue
            if stat.S_ISREG(mode):
                found.append(path)
            else:
                _skip(path, folder, _kind(mode))
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


_warned: set[tuple[str, str]] = set()  # (file, reason): a folder listed three times in a run warns once


def _skip(path: Path, folder: Path, reason: str) -> None:
    key = (str(path), reason)
    if key not in _warned:
        if len(_warned) > 100_000:
            _warned.clear()
        _warned.add(key)
        log.warning("skipping %s: %s", _shown(path, folder), reason)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link, not a regular file"
    if stat.S_ISFIFO(mode):
        return "a FIFO, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    return "not a regular file"


def _shown(path: Path, folder: Path | None = None) -> str:
    """A file's name for a warning line: relative to its folder, control characters escaped (repr)."""
    try:
        text = path.relative_to(folder).as_posix() if folder is not None else str(path)
    except ValueError:
        text = str(path)
    return repr(text)[1:-1][:300]


def open_regular(path: Path, follow: bool = False):
    """A binary file object of a regular file, opened without blocking (a FIFO) and, unless `follow`, without
    following a symbolic link; OSError (ELOOP, or EINVAL for a special file) otherwise."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, _kind(mode), str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def image_id(path: Path) -> str:
    """16 hex digits of the file's sha256: an image is known by its content, not its name."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def open_rgb(path: Path, follow: bool = False) -> Image.Image:
    """An image file as RGB (grey and palette images converted, alpha dropped). Only a regular file is read
    (a symbolic link only with `follow`: a path the user typed), and its pixel count is read from the header
    and bounded *before* anything is decoded. ValueError (one line) for anything that is not a readable image
    of at most MAX_PIXELS: a decompression bomb, a truncated or foreign file, text named .jpg."""
    with open_regular(path, follow) as handle:
        try:
            with Image.open(handle) as image:  # lazy: reads the header only
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise ValueError(f"{width}x{height} px is over the {MAX_PIXELS:,} px limit")
                return image.convert("RGB")  # decodes
        except ValueError:
            raise
        except Image.DecompressionBombError:  # Pillow's own bound, above ours: said in our words
            raise ValueError(f"declares more pixels than the {MAX_PIXELS:,} px limit (a decompression bomb)") from None
        except Image.UnidentifiedImageError:
            raise ValueError("not an image file Pillow can read (JPEG, PNG...)") from None
        except MemoryError:
            raise ValueError("too large to decode") from None
        except Exception as error:  # noqa: BLE001 - every decoder has its own ways to fail on a broken file
            raise ValueError(f"not a readable image ({type(error).__name__}: {_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return repr(text.splitlines()[0] if text else "")[1:-1][:200]


def crop_box(ident: str, view: int, width: int, height: int, spec: CropSpec) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of view `view` of an image: 0 is the centred square of the whole image,
    1.. are random squares drawn from the image's id and the crop settings (reproducible anywhere)."""
    short = min(width, height)
    if view == 0:
        left, top = (width - short) // 2, (height - short) // 2
        return left, top, left + short, top + short
    seed = int.from_bytes(hashlib.sha256(f"{ident}|{view}|{spec.key}".encode()).digest()[:8], "little")
    u = torch.rand(3, generator=torch.Generator().manual_seed(seed & (2**63 - 1))).tolist()
    side = max(8, round(short * (spec.min_scale + (spec.max_scale - spec.min_scale) * u[0])))
    left, top = round((width - side) * u[1]), round((height - side) * u[2])
    return left, top, left + side, top + side


def view_image(image: Image.Image, ident: str, view: int, spec: CropSpec, size: int,
               original: tuple[int, int] | None = None) -> Image.Image:
    """View `view` of an image, resized to `size` x `size` (antialiased). `original` is the image's size
    before `reduced` shrank it: boxes are drawn on the original so a view is the same either way."""
    width, height = original or image.size
    scale = image.width / width
    box = tuple(c * scale for c in crop_box(ident, view, width, height, spec))
    return image.resize((size, size), Image.BILINEAR, box=box)


def reduced(image: Image.Image, spec: CropSpec, size: int) -> Image.Image:
    """The image shrunk as far as its smallest view still has `size` px of detail: decoding a 4,000 px
    photo once beats resampling it at full size for every crop."""
    short = min(image.size)
    needed = size / spec.min_scale if spec.crops else size
    if short <= needed * 1.05:
        return image
    factor = needed / short
    return image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                        Image.BILINEAR, reducing_gap=2.0)


def to_tensor(picture: Image.Image) -> torch.Tensor:
    """PIL RGB -> (3, H, W) float in [0, 1]."""
    data = torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8)
    return data.view(picture.height, picture.width, 3).permute(2, 0, 1).float().div_(255)


def _batches(paths: Sequence[Path], idents: Sequence[str], spec: CropSpec, size: int,
             batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    per = spec.crops + 1
    pending: list[torch.Tensor] = []
    numbers: list[int] = []
    for position, (path, ident) in enumerate(zip(paths, idents)):
        try:
            image = open_rgb(path)
        except (OSError, ValueError) as error:  # a truncated or foreign file must not stop a folder of 50,000
            log.warning("skipping %s: %s", _shown(Path(path)), _first_line(error))
            continue
        small = reduced(image, spec, size)
        for view in range(per):
            pending.append(to_tensor(view_image(small, ident, view, spec, size, image.size)))
            numbers.append(position * per + view)
            if len(pending) == batch:
                yield torch.tensor(numbers), torch.stack(pending)
                pending, numbers = [], []
    if pending:
        yield torch.tensor(numbers), torch.stack(pending)


def views_of(paths: Sequence[Path], idents: Sequence[str], spec: CropSpec, size: int,
             batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of (sample numbers, (B, 3, size, size) views) over the images, one image decoded at a time
    in a helper thread (PIL releases the GIL), at most two batches ahead: memory stays flat.
    Sample number = image position * (crops + 1) + view index."""
    done = object()
    queue: Queue = Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in _batches(paths, idents, spec, size, batch):
                while not stop.is_set():
                    try:
                        queue.put(item, timeout=0.2)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(done)
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            queue.put(error)

    worker = threading.Thread(target=produce, name="featvis-views", daemon=True)
    worker.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


class RunningTopK:
    """The k highest and m lowest scores per unit seen so far, with the sample each came from."""

    def __init__(self, units: int, k: int, bottom: int):
        self.k, self.bottom = k, bottom
        self.top_values = torch.full((units, 0), float("-inf"))
        self.top_ids = torch.zeros((units, 0), dtype=torch.long)
        self.low_values = torch.full((units, 0), float("inf"))
        self.low_ids = torch.zeros((units, 0), dtype=torch.long)

    def update(self, scores: torch.Tensor, ids: torch.Tensor) -> None:
        """`scores` is (B, units) for the samples `ids` (B,)."""
        scores = scores.detach().float().cpu().T  # (units, B)
        ids = ids.view(1, -1).expand_as(scores)
        values = torch.cat([self.top_values, scores], 1)
        order = values.topk(min(self.k, values.shape[1]), dim=1).indices
        self.top_values, self.top_ids = values.gather(1, order), torch.cat([self.top_ids, ids], 1).gather(1, order)
        if self.bottom:
            values = torch.cat([self.low_values, scores], 1)
            order = values.topk(min(self.bottom, values.shape[1]), dim=1, largest=False).indices
            self.low_values, self.low_ids = values.gather(1, order), torch.cat([self.low_ids, ids], 1).gather(1, order)

    def lists(self) -> tuple[list[list[tuple[float, int]]], list[list[tuple[float, int]]]]:
        """Per unit: [(score, sample)] highest first, and [(score, sample)] lowest first."""
        top = [list(zip(v.tolist(), i.tolist())) for v, i in zip(self.top_values, self.top_ids)]
        low = [list(zip(v.tolist(), i.tolist())) for v, i in zip(self.low_values, self.low_ids)]
        return top, low


def layer_scores(activation: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C) channel means (the renderer's channel objective); logits (B, K) as they are."""
    return activation.float().mean(dim=(2, 3)) if activation.ndim == 4 else activation.float()


def scan(model: Classifier, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], layers: Sequence[str],
         k: int = 9, bottom: int = 3, on_batch: Callable[[int], None] | None = None) -> dict[str, RunningTopK]:
    """Run the views through the model once, stopped at the deepest of `layers` (public names or
    'logits'), keeping a running top-k / bottom-m for every channel of every layer."""
    device = model.device
    targets = {layer: (None if layer == LOGITS else model.resolve_layer(layer)) for layer in layers}
    modules = [m for m in targets.values() if m]
    layouts = {layer: model.layer(layer).layout for layer, module in targets.items() if module}  # NHWC, tokens
    # fp32 on the folded copy: these scores are stored and compared across shards and runs, and bf16's
    # 3 significant digits reorder near ties (on this CPU bf16 would be only ~20 % faster)
    net = render_network(model, model.module, modules, model.input_size, torch.float32)
    tops: dict[str, RunningTopK] = {}
    with torch.inference_mode(), capture(net, modules, LOGITS in targets, model.input_size) as run:
        for ids, images in batches:
            inputs = model.normalise(model.from_rgb(images.to(device))).contiguous(memory_format=torch.channels_last)
            outputs = run(inputs)
            for layer, module in targets.items():
                scores = layer_scores(layouts[layer].as_map(outputs[module]) if module else outputs[""])
                if layer not in tops:
                    tops[layer] = RunningTopK(scores.shape[1], k, bottom)
                tops[layer].update(scores, ids)
            if on_batch:
                on_batch(len(ids))
    return tops


def merge(lists: Iterable[list[tuple[float, object]]], k: int, largest: bool = True) -> list[tuple[float, object]]:
    """The k best (score, sample) pairs of several shards' lists for one unit."""
    pooled = [pair for part in lists for pair in part]
    return sorted(pooled, key=lambda pair: pair[0], reverse=largest)[:k]
