"""The Generator contract (DESIGN.md, "Generator").

``load()`` then batched ``generate(list[GenRequest]) -> list[GenResult]``. The runner chooses each request's
``out_path``, caches results, and records provenance; an adapter only turns requests into clip files. Heavy
imports happen inside ``load()``; a missing dependency raises MissingDependencyError naming the extra.
A request the generator cannot serve gets a GenResult with ``error`` set — never an exception for the batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from mova_eval.spec import GenRequest, GenResult


@dataclass(frozen=True)
class Capabilities:
    modes: tuple[str, ...] = ("t2va",)  # "t2va" (text → video+audio), "it2va" (+ first frame)
    resolutions: tuple[tuple[int, int], ...] = ()  # (width, height); empty = any
    max_duration_s: float | None = None
    fps: tuple[float, ...] = ()  # empty = any
    makes_clips: bool = True  # False for generators that only find existing clips (directory)


class Generator:
    name: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    __abstract__: ClassVar[bool] = True

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.__abstract__ = cls.__dict__.get("__abstract__", False)

    def __init__(self, config: Mapping[str, Any], device: str = "cpu"):
        self.config = dict(config)
        self.device = device

    @classmethod
    def availability(cls, config: Mapping[str, Any]) -> tuple[bool, str, str | None]:
        """(ok, reason, command) without loading any model."""
        return True, "", None

    def bind_suite(self, suite) -> None:
        """Receive the run's whole suite before any ``generate()`` call. Lets a generator resolve references
        between items (synthetic's ``swap_audio_with``) and match files against every item id (directory),
        independently of which requests a resumed run still has to make."""
        self.suite = suite

    def load(self) -> None:
        """Import heavy dependencies and load the model once."""

    def identity(self) -> dict[str, Any]:
        """What makes this generator's output what it is (name, version, checkpoint hash, sampler settings).
        Part of the generation cache key and of every clip's provenance."""
        return {"name": self.name, **{k: v for k, v in self.config.items() if k not in {"name"}}}

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Release models/connections."""
