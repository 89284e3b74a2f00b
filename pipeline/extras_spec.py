"""flows.yaml settings of a job's real-image extras: `examples:` (dataset examples, explain pages,
circuit links) and `zoom:` (eternal-zoom videos of class logits). Their own module so that jobs.py can
use them without importing the heavy stages."""

from __future__ import annotations

from typing import Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExamplesSpec(_Strict):
    """`examples:` of a job in flows.yaml."""

    folder: str  # a folder of JPEG/PNG files (any depth), or "skimage": the photographs in scikit-image's wheel
    crops: int = Field(0, ge=0, le=1024)  # random square crops per image, besides the whole image
    min_scale: float = Field(0.25, gt=0.02, le=1.0)  # crop side as a share of the image's shorter side
    max_scale: float = Field(0.6, gt=0.02, le=1.0)
    top: int = Field(9, ge=1, le=64)  # examples per unit
    negatives: int = Field(3, ge=0, le=32)  # most negative examples per unit
    shard: int = Field(32, ge=1, le=100_000)  # images per shard, on average
    batch: int = Field(16, ge=1, le=1024)  # views per forward pass (on CPU larger batches cost memory, not time)
    explain: bool = True  # an "Explain" page for the example images
    explain_layer: str | None = None  # default: the job's deepest rendered layer
    explain_images: int = Field(16, ge=0, le=1000)  # the images most units show
    explain_channels: int = Field(8, ge=1, le=64)
    circuits: bool = True  # upstream/downstream links between rendered layers
    circuit_examples: int = Field(4, ge=0, le=32)  # dataset examples per unit in the attribution
    links: int = Field(6, ge=1, le=32)  # circuit links shown per unit and direction

    @model_validator(mode="after")
    def _scales(self) -> "ExamplesSpec":
        if self.max_scale < self.min_scale:
            raise ValueError(f"max_scale {self.max_scale} is below min_scale {self.min_scale}")
        return self

    def crop_spec(self):
        from featvis_core.examples import CropSpec

        return CropSpec(self.crops, self.min_scale, self.max_scale)



class ZoomSpec(_Strict):
    """`zoom:` of a job: eternal-zoom dives of some class logits (featvis_core/zoom.py)."""

    logits: Union[list[Union[int, str]], int, str]  # class names or indices, like a job's `logits`
    size: int = Field(128, ge=32, le=512)
    steps: int = Field(176, ge=16, le=4096)
    warmup: int = Field(48, ge=0, le=4096)
    every: int = Field(4, ge=1, le=64)
    factor: float = Field(1.04, gt=1.0, le=1.5)
    lr: float = Field(0.1, gt=0, le=10)
    crossfade: int = Field(16, ge=0, le=256)
    fps: int = Field(24, ge=1, le=60)

    @model_validator(mode="after")
    def _lengths(self) -> "ZoomSpec":
        if self.steps - self.warmup <= 2 * self.crossfade:
            raise ValueError(f"steps ({self.steps}) must exceed warmup ({self.warmup}) + 2 x crossfade ({self.crossfade})")
        return self

    def config(self):
        from featvis_core.zoom import ZoomConfig

        return ZoomConfig(self.size, self.steps, self.warmup, self.every, self.factor, self.lr, self.crossfade)
