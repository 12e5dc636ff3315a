"""The Metric contract (DESIGN.md, "Metric").

A metric declares a :class:`MetricInfo` and is either

* a :class:`Metric` with ``score(clip, item) -> ItemScore`` — a per-item metric (loudness, WER, LSE, CLAP…), or
* a :class:`SetLevelMetric` with ``features(clip, item) -> np.ndarray`` and ``compute(features, items) ->
  SetResult`` — a set-level metric (FVD, FAD, IS), whose per-item features are cached (and recorded in
  features.parquet) and which the runner calls once per group.

Which of the two a metric is, is its class: the runner asks ``isinstance(m, SetLevelMetric)``, nothing else.

Failures are never scores: raise (a MediaError, MetricUnavailable, NotApplicable or any exception) and the runner
records NaN with the reason. Heavy imports (torch models, onnxruntime…) belong in ``load()`` so that listing
metrics stays instant.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from mova_eval.context import RunContext
from mova_eval.errors import MetricUnavailable, MissingDependencyError, WeightsMissingError
from mova_eval.metrics.options import NoOptions, token_part
from mova_eval.metrics.options import parse as parse_options
from mova_eval.spec import Clip, SuiteItem

#: ``all`` is the mean of per-category values (how the MOVA toolkit reports most metrics)
CATEGORY_MEAN = "category_mean"
#: ``all`` is the mean over every item pooled (MOVA's LSE)
POOLED_MEAN = "pooled_mean"
#: a set-level statistic computed over each group's features (IS per category; FVD/FAD over the set)
SET_LEVEL = "set_level"
#: Σ errors / Σ reference length over the group (corpus WER, cpCER)
CORPUS = "corpus"


@dataclass(frozen=True)
class Output:
    """One number a metric reports. ``name`` is the row's ``metric`` value in items.parquet (globally unique)."""

    name: str
    direction: str = "higher"  # "higher" | "lower" | "none" (better is …)
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class Card:
    """What a reader needs to put a number next to a published one (``mova-eval ls --metric NAME``).

    ``ranges``: (output name, the values it can take) for every output. ``scale``: the factor between our value and
    the reference's raw value, and how papers print it (×1, ×100, %). ``tables``: published tables that report this
    metric, each naming the protocol variant it used ("none" if no table does). ``reference_values``: what the
    reference implementation gives on real data, with its source, when known. Unit and direction are on
    :class:`Output`. (Pairs rather than a dict keep MetricInfo hashable.)
    """

    ranges: tuple[tuple[str, str], ...]
    scale: str
    tables: tuple[str, ...]
    reference_values: tuple[str, ...] = ()
    notes: str = ""
    docs: str = ""  # the docs page, relative to the repository root


@dataclass(frozen=True)
class MetricInfo:
    name: str  # registry name, used in `metrics.only=[...]`
    outputs: tuple[Output, ...]
    description: str = ""
    needs: frozenset[str] = frozenset()  # subset of {"video", "audio", "speech", "reference_audio", "text"}
    extra: str | None = None  # pip extra that installs its dependencies
    packages: tuple[str, ...] = ()  # import names that must be importable
    weights: tuple[str, ...] = ()  # weights registry names it loads
    aggregation: str = CATEGORY_MEAN
    version: str = "1"  # bump when numbers can change; part of every cache key
    reference: str = ""  # the reference implementation it matches, for the docs and the run log
    card: Card | None = None  # what `mova-eval ls --metric NAME` prints besides the outputs
    #: outputs an option can select instead of the default ones (ib_score's ``scale: 100`` → ``ib_score_x100``):
    #: each variant has its own name, so results under two settings never share an output name
    variant_outputs: tuple[Output, ...] = ()

    def value_range(self, output: str) -> str:
        """The card's range of one output ('' when no card states it)."""
        return dict(self.card.ranges).get(output, "") if self.card else ""

    def output(self, name: str) -> Output:
        for o in (*self.outputs, *self.variant_outputs):
            if o.name == name:
                return o
        raise KeyError(name)


def variant_of(outputs: Sequence[Output], suffix: str, note: str) -> tuple[Output, ...]:
    """The outputs of a protocol variant: each name ends with ``suffix`` (``av_align`` → ``av_align_corrected``) and
    its description says which variant it is, so two variants never share an output name."""
    return tuple(dataclasses.replace(o, name=o.name + suffix,
                                     description=f"{o.description} [{note}]" if o.description else note)
                 for o in outputs)


def variant_ranges(ranges: Sequence[tuple[str, str]], suffix: str,
                   names: Sequence[str] | None = None) -> tuple[tuple[str, str], ...]:
    """Card ranges of a variant's outputs: the same range as the output it renames (``names``: only those)."""
    return tuple((n + suffix, r) for n, r in ranges if names is None or n in names)


@dataclass(frozen=True)
class Ratio:
    """The corpus counts behind one item's rate: errors (``numerator``) over reference length (``denominator``).
    A ``corpus`` metric's group value is Σ numerator / Σ denominator over the group's items."""

    numerator: float
    denominator: float


@dataclass
class ItemScore:
    """A per-item result: one value per declared output (NaN only together with a reason in ``errors``), and
    ``details`` kept in the run log for inspection (a transcript, the chosen face track, the offset…).
    ``errors`` maps an output to why it has no value while the others do (e.g. LSE offset found but no C).
    ``counts`` holds the corpus counts of each output of a ``corpus`` metric (WER: errors / reference words)."""

    values: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    counts: dict[str, Ratio] = field(default_factory=dict)


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""
    command: str | None = None  # what would make it runnable


class Metric:
    """Base class of every metric; a per-item metric overrides ``score``. Set-level metrics derive from
    :class:`SetLevelMetric` instead."""

    info: ClassVar[MetricInfo]
    __abstract__: ClassVar[bool] = True

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls.__abstract__ = cls.__dict__.get("__abstract__", False)

    #: the metric's ``metrics.options.<name>.*`` keys, a frozen dataclass (see :mod:`mova_eval.metrics.options`)
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Mapping[str, Any] | None = None, device: str = "cpu",
                 context: RunContext | None = None):
        #: the parsed options (typed, defaults filled); unknown keys and wrong types were refused (ConfigError)
        self.opts = parse_options(type(self).Options, self.info.name, options)
        #: the same as a dict (every declared key), for the run log
        self.options: dict[str, Any] = dataclasses.asdict(self.opts)
        self.device = device
        #: where this metric finds its weights and cache (the run's context; the environment's outside a run)
        self.context: RunContext = context if context is not None else RunContext.from_env(device=device)

    # ------------------------------------------------------------------ capability
    @classmethod
    def availability(cls, context: RunContext | None = None) -> Availability:
        """Whether this metric can run here, without loading models. Default: packages importable, weights present
        (looked up in ``context``'s weights folders)."""
        for pkg in cls.info.packages:
            if importlib.util.find_spec(pkg) is None:
                cmd = f"pip install 'mova-eval[{cls.info.extra}]'" if cls.info.extra else f"pip install {pkg}"
                return Availability(False, f"package {pkg!r} is not installed", cmd)
        from mova_eval import weights

        for w in cls.info.weights:
            try:
                weights.resolve(w, context)
            except WeightsMissingError as e:
                return Availability(False, f"weights {w!r} are missing", e.command)
        return Availability(True)

    def available(self) -> Availability:
        """Whether this configured instance can run here (its options and context), without loading models: what
        the runner asks before loading it. Default: the class-level :meth:`availability` in this instance's
        context; a metric whose options change what it needs (cer with ``model: tiny.en`` does not need the
        multilingual packages) overrides it."""
        return self.availability(self.context)

    def require_available(self) -> None:
        av = self.available()
        if not av.ok:
            raise MetricUnavailable(self.info.name, av.reason, av.command)

    def applies(self, item: SuiteItem) -> bool:
        """Whether the metric has anything to say about this item (WER only for items with speech…)."""
        if "speech" in self.info.needs and not item.has_speech:
            return False
        if "reference_audio" in self.info.needs and not item.reference_audio:
            return False
        return True

    def requested_outputs(self) -> tuple[Output, ...]:
        """The outputs this instance computes and the runner records (all declared ones unless an option narrows
        them, e.g. DNSMOS runs its P.835 model only when ``outputs:`` asks for SIG/BAK/OVRL)."""
        return self.info.outputs

    def load(self) -> None:
        """Import heavy dependencies and load weights, once per run. Raise MissingDependencyError /
        WeightsMissingError / MetricUnavailable when it cannot."""

    def cache_token(self) -> str:
        """Everything besides the clip and item that changes this metric's cached values: version, the options
        whose role is ``OUTPUT`` (for a set-level metric: those that change its features), weights sha256."""
        import json

        from mova_eval import weights

        hashes = {w: weights.fingerprint(w, self.context) for w in self.info.weights}
        return json.dumps({"v": self.info.version, "opt": token_part(self.opts), "w": hashes}, sort_keys=True,
                          default=str)

    # ------------------------------------------------------------------ per-item
    def score(self, clip: Clip, item: SuiteItem) -> ItemScore:
        """Values for this item. Must be thread-safe: the runner may call it from several workers at once."""
        raise NotImplementedError(f"{type(self).__name__} is a per-item metric but does not implement score()")


@dataclass
class SetResult:
    """What a set-level metric's ``compute`` returns for one group: a value per declared output (a missing or NaN
    output is reported with ``note`` as the reason), optional 95% CIs ``{output: (low, high)}``, a ``note`` that
    the summary row carries (n, protocol, reference, warnings), and ``details`` for inspection."""

    values: dict[str, float]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class SetLevelMetric(Metric):
    """A metric over a set of clips (FVD, FAD, IS): per-clip ``features`` (cached by clip content hash + metric +
    cache token), then ``compute`` once per group (each category and ``all``, see ``set_groups``)."""

    __abstract__: ClassVar[bool] = True

    #: True when ``all`` is the mean of the category values (MOVA's IS) rather than a statistic over every item
    all_is_category_mean: bool = False

    def features(self, clip: Clip, item: SuiteItem) -> np.ndarray:
        """This clip's features (any array the metric's ``compute`` understands); must be thread-safe."""
        raise NotImplementedError(f"{type(self).__name__} does not implement features()")

    def compute(self, features: Sequence[np.ndarray], items: Sequence[SuiteItem]) -> SetResult:
        """Set-level values over one group's features (the runner calls it per category and for ``all``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement compute()")

    def set_groups(self, categories: list[str]) -> dict[str, list[int]]:
        """Indices of the items in each group: one group per category plus ``all``. Override to regroup."""
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(categories):
            groups.setdefault(c, []).append(i)
        groups["all"] = list(range(len(categories)))
        return groups


class ReferenceMetric(SetLevelMetric):
    """A set-level metric that compares a set with named reference statistics (FVD, FAD): the protocol that
    ``mova-eval reference build`` and a suite's ``references:`` use. ``reference build`` extracts features with
    ``load_extractor`` + ``features`` (the run's code path and feature cache), stores them with ``extractor_id()``
    and ``reference_meta(features)``; a run checks a loaded reference against ``extractor_id()``."""

    __abstract__: ClassVar[bool] = True

    @property
    def protocol_name(self) -> str:
        """The protocol the features follow (references record it; one built under another is refused)."""
        raise NotImplementedError

    def load_extractor(self) -> None:
        """Load only the feature network (``load`` also loads the reference)."""
        raise NotImplementedError

    def load_reference(self) -> None:
        """Load the reference statistics the options name, or raise MetricUnavailable with the build command."""
        raise NotImplementedError

    def extractor_id(self) -> dict[str, Any]:
        """What identifies the features: protocol, network, weights sha256, preprocessing, version."""
        raise NotImplementedError

    def reference_meta(self, features: Sequence[np.ndarray]) -> dict[str, Any]:
        """What ``reference build`` records beside the statistics (frame rates, sample rates…)."""
        return {}


def require_package(what: str, module: str, extra: str):
    """Import ``module`` or raise MissingDependencyError naming the extra (use inside ``load()``)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(what, module, extra) from e

