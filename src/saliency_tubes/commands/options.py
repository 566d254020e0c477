"""What each command is asked to do: its options, validated once, here.

* :class:`ModelOptions`: which model, which weights, where (the one place a command line's
  model flags become :func:`~saliency_tubes.zoo.load_model`'s call; picklable, so a worker
  process can load the same model from it);
* :class:`ExplainOptions` (``explain``), :class:`CompareOptions` (``compare-classes``,
  ``compare-models``), :class:`PyramidOptions` (``pyramid``), :class:`EvaluateOptions`
  (``evaluate VIDEO``).

Every ``check()`` raises one :class:`~saliency_tubes.InputError` line that says what was
expected and what was got. The options are frozen dataclasses checked once, where they are
made (``__post_init__``: an object that exists is valid, so the commands and the CLI do not
check again; ``dataclasses.replace`` makes, and checks, a new one). ``to_dict`` /
``from_dict`` (:class:`~saliency_tubes.commands.plain.Plain`) give them as plain data and
back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from .. import vocabulary as names
from ..errors import InputError, check_choice, check_choices
from ..methods import METHODS
from ..methods.base import ClassSpec
from ..metrics import BASELINES, UNITS
from ..metrics.benchmark import Protocol
from ..metrics.scoring import CASCADES
from ..pyramid import DEFAULT_DEPTH, check_options
from ..zoo import LoadedModel, load_model
from .plain import Plain

__all__ = [
    "CompareOptions",
    "DeviceError",
    "EvaluateOptions",
    "ExplainOptions",
    "ModelOptions",
    "PyramidOptions",
    "check_device",
    "check_distinct",
]


class DeviceError(InputError):
    """The device asked for does not exist here."""


def check_device(device: str) -> None:
    """Raise one :class:`DeviceError` line unless ``device`` can be used on this machine."""
    import torch

    kind = str(device).split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"--device {device} asked for, but CUDA is not available here; use --device cpu"
        )
    if kind == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise DeviceError(
            f"--device {device} asked for, but MPS is not available here; use --device cpu"
        )
    if kind not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"expected --device cpu, cuda[:N] or mps, but got {device!r}")


def check_distinct(names: list[str]) -> None:
    """Raise one line unless ``names`` (the models to compare) are one or more, each once."""
    if not names or len(set(names)) != len(names):
        raise InputError(
            f"expected distinct model names, one or more, but got {names}; list each model once"
        )


def _check_triple(values: tuple[float, ...] | None, what: str) -> None:
    if values is not None and len(values) != 3:
        raise InputError(
            f"expected {what} as three numbers R,G,B, but got {len(values)}; e.g. 0.45,0.45,0.45"
        )


@dataclass(frozen=True)
class ModelOptions(Plain):
    """Which model to load, with which weights, onto which device.

    Attributes:
        name: a registered name (``saliency-tubes models``) or ``"package.module:factory"``.
        weights: a checkpoint path, or a named release (``kinetics400``); None: the
            shipped weights, if any.
        num_classes: size of the classifier head, if not the model's default.
        categories: class names, or a ``.txt`` / ``.json`` file of them.
        allow_pickle: allow a full-pickle checkpoint (only for files you trust).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; :meth:`load` moves the model
            there (the commands never move it again).
        layer: target layer name (None: the adapter's, or found).
        classifier: classifier head name (None: the adapter's, or found).
        mean: per-channel mean on the [0, 1] scale (None: the preset's).
        std: per-channel std on the [0, 1] scale (None: the preset's).
    """

    name: str = "tiny-actions"
    weights: str | Path | None = None
    num_classes: int | None = None
    categories: str | Path | tuple[str, ...] | None = None
    allow_pickle: bool = False
    device: str = "cpu"
    layer: str | None = None
    classifier: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    what: ClassVar[str] = "model options"

    def __post_init__(self) -> None:
        self.check()  # validated once, where made (replace() makes, and checks, a new one)

    def check(self) -> None:
        """Validate the options that need no model (one-line errors)."""
        check_device(self.device)
        if self.num_classes is not None and (
            isinstance(self.num_classes, bool) or self.num_classes < 1
        ):
            raise InputError(f"expected num_classes >= 1, but got {self.num_classes!r}")
        _check_triple(self.mean, "--mean")
        _check_triple(self.std, "--std")

    def load(self) -> LoadedModel:
        """The model, on :attr:`device` (see :func:`saliency_tubes.zoo.load_model`)."""
        check_device(self.device)  # the options were checked where made; this machine (a
        # Ray worker's, say) may lack the device
        return load_model(
            self.name,
            weights=self.weights,
            num_classes=self.num_classes,
            categories=self.categories,
            allow_pickle=self.allow_pickle,
            device=self.device,
            layer=self.layer,
            classifier=self.classifier,
            mean=self.mean,
            std=self.std,
        )


@dataclass(frozen=True)
class ExplainOptions(Plain):
    """Options of :func:`~saliency_tubes.commands.explain_video` (the CLI's flags).

    Attributes:
        method: a key of :data:`saliency_tubes.METHODS` ("cam", the paper's Saliency Tubes,
            "gradcam", ..., "occlusion", "integrated-gradients": the captum extra), or "auto"
            (the model adapter's default method).
        classes: "topK", an index, a name, or a list of them.
        frames: clip length T; None takes the model preset's.
        windows: (length, stride) sliding windows covering the whole video, each
            explained and the tubes stitched (overlaps blended); None samples one clip of
            ``frames`` frames spread uniformly over the video (the authors' choice).
        interpolation: spline mode of the upsampling (one of :data:`saliency_tubes.vocabulary.INTERPOLATIONS`).
        align: "corners" or "centers" (see :func:`saliency_tubes.splines.upsample`).
        colormap: any matplotlib colour map name for heat tubes.
        opacity: heat map opacity over the frame.
        floor: focus tubes' minimum opacity (the authors used 20/255).
        background: focus background: "black", "dark", "blur" or "gray".
        formats: any of "mp4", "gif", "png" (frame folders), "npy" (the tube), "plot"
            (the temporal importance curves as PNG) and "html" (``report.html``, the
            interactive page; ``explain`` and ``compare-classes``).
        layouts: any of "heat", "focus", "side_by_side".
        caption: draw the class, probability and caveats in strips above side-by-side
            and comparison panels, and the model in a corner of heat and focus videos.
        normalise: "video" (each tube on one scale over the whole video: moments compare)
            or "frame" (each drawn frame stretched to its own range: every frame's peak
            shows, quiet stretches look as strong as busy ones); the numbers (curves,
            statistics, ``tube.npy``) are on the video's scale either way.
        timeline: draw the tube's temporal importance bar (with a cursor at the shown
            frame) under every output frame.
        progress: show progress bars (stderr).
        embed: with "html", embed the video in ``report.html`` (one file to send someone)
            instead of referring to it by its relative path.
        crf: the mp4 outputs' H.264 constant rate factor (0-51; 18: visually lossless).
        preset: their libx264 speed preset (default "superfast": see
            :class:`~saliency_tubes.video.VideoWriter`); "medium" writes files about a
            quarter smaller, 2.5x slower.
        max_side: the rendered outputs' longest side at most this many pixels (panels,
            captions and gaps of the side-by-side and grid layouts included; the tube is
            mapped at the smaller size); None: panels at the source's size.
        start: explain only the frames shown from this time on (seconds, the file's
            times); None: from the first frame.
        end: ... up to (not including) this time; None: to the last frame. The outputs
            cover the segment, ``windows`` lie inside it (see
            :func:`~saliency_tubes.video.segment`).

    The device is the model's (:attr:`ModelOptions.device`).
    """

    method: str = "cam"
    classes: ClassSpec = "top1"
    frames: int | None = None
    windows: tuple[int, int] | None = None
    interpolation: str = "cubic"
    align: str = "corners"
    colormap: str = "jet"
    opacity: float = 0.5
    floor: float = 20 / 255
    background: Literal["black", "dark", "blur", "gray"] = "black"
    formats: tuple[str, ...] = ("mp4", "plot")
    layouts: tuple[str, ...] = names.LAYOUTS
    caption: bool = True
    normalise: str = "video"
    timeline: bool = False
    progress: bool = True
    embed: bool = False
    crf: int = 18
    preset: str = "superfast"
    max_side: int | None = None
    start: float | None = None
    end: float | None = None

    what: ClassVar[str] = "explain options"

    def __post_init__(self) -> None:
        self.check()  # validated once, where made (replace() makes, and checks, a new one)

    def check(self) -> None:
        """Validate the options (one-line errors)."""
        if self.method not in names.METHOD_CHOICES:
            raise InputError(
                f"expected method one of {', '.join(METHODS)} or auto, but got {self.method!r}"
            )
        check_choices("formats", self.formats, names.FORMATS)
        check_choices("layouts", self.layouts, names.LAYOUTS)
        check_choice("interpolation", self.interpolation, names.INTERPOLATIONS)
        check_choice("align", self.align, names.ALIGNS)
        check_choice("background", self.background, names.BACKGROUNDS)
        check_choice("normalise", self.normalise, names.NORMALISATIONS)
        check_choice("x264 preset", self.preset, names.X264_PRESETS)
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise InputError(
                f"expected crf an integer from 0 to 51 (18: visually lossless, 23: smaller "
                f"files), but got {self.crf!r}"
            )
        if self.max_side is not None and (
            isinstance(self.max_side, bool)
            or not isinstance(self.max_side, int)
            or self.max_side < 16
        ):
            raise InputError(
                f"expected --max-side a number of pixels >= 16 (e.g. 1280), but got {self.max_side!r}"
            )
        for name, value in (("start", self.start), ("end", self.end)):
            if value is not None and not (isinstance(value, int | float) and value >= 0):
                raise InputError(f"expected --{name} in seconds >= 0, but got {value!r}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise InputError(
                f"expected --end after --start, but got start {self.start} and end {self.end}"
            )
        if self.frames is not None and self.frames < 2:
            raise InputError(f"expected at least 2 frames per clip, but got {self.frames}")
        if self.windows is not None:
            length, stride = self.windows
            if length < 2 or stride < 1:
                raise InputError(f"expected windows LEN>=2,STRIDE>=1, but got {length},{stride}")
        if not 0.0 <= self.opacity <= 1.0 or not 0.0 <= self.floor <= 1.0:
            raise InputError(
                f"expected opacity and floor in [0, 1], but got {self.opacity} and {self.floor}"
            )


@dataclass(frozen=True)
class CompareOptions(ExplainOptions):
    """Options of ``compare_classes`` and ``compare_models`` (``layouts`` unused).

    Attributes:
        style: each panel is a "focus" or a "heat" tube.
        cols: panels per row of the grid; None: all in one row up to 4.
        contrast: ``(A, B)`` classes (indices or names) for a contrastive tube "why A and
            not B" (``compare_classes`` only); explained too when not among ``classes``.
    """

    style: str = "focus"
    cols: int | None = None
    contrast: tuple[int | str, int | str] | None = None

    what: ClassVar[str] = "compare options"

    def check(self) -> None:
        """Validate the options (one-line errors)."""
        super().check()
        if self.style not in names.STYLES:
            raise InputError(
                f"expected style one of {', '.join(names.STYLES)}, but got {self.style!r}"
            )
        if self.cols is not None and self.cols < 1:
            raise InputError(f"expected cols >= 1, but got {self.cols}")
        if self.contrast is not None:
            items = list(self.contrast)
            if len(items) != 2 or str(items[0]).lower() == str(items[1]).lower():
                raise InputError(
                    "expected a contrast of two different classes A,B (e.g. take,wash), but got "
                    f"{','.join(str(i) for i in items) or 'none'}; name a second class"
                )


@dataclass(frozen=True)
class PyramidOptions(Plain):
    """Options of :func:`~saliency_tubes.commands.pyramid_video` (the CLI's flags).

    Attributes:
        target: the class: a name, an index, or ``"top1"`` (the prediction).
        depth: levels of kernels below the class (None: 3, or the number of ``layers``).
        threshold: θ in ``[0, 1]``.
        top_n: at most this many children per step (None: all that pass θ).
        layers: convolutions of levels 1, 2, ... by name (None: traced).
        frames: clip length T (None: the model preset's).
        per_level: nodes drawn per level in the figure and the GIF.
        all_tubes: write every node's tube, not only the drawn ones.
        gif: write ``pyramid.gif`` (the drawn nodes' heat maps over the clip).
    """

    target: int | str = "top1"
    depth: int | None = None
    threshold: float = 0.6
    top_n: int | None = None
    layers: tuple[str, ...] | None = None
    frames: int | None = None
    per_level: int = 6
    all_tubes: bool = False
    gif: bool = True

    what: ClassVar[str] = "pyramid options"

    def __post_init__(self) -> None:
        self.check()  # validated once, where made (replace() makes, and checks, a new one)

    def check(self) -> None:
        """Validate the options (one-line errors)."""
        default = len(self.layers) if self.layers else DEFAULT_DEPTH
        check_options(default if self.depth is None else self.depth, self.threshold, self.top_n)
        if self.frames is not None and (isinstance(self.frames, bool) or self.frames < 1):
            raise InputError(f"expected at least 1 frame per clip, but got {self.frames}")
        if isinstance(self.per_level, bool) or self.per_level < 1:
            raise InputError(f"expected per_level >= 1, but got {self.per_level}")


@dataclass(frozen=True)
class EvaluateOptions(Plain):
    """Options of :func:`~saliency_tubes.commands.evaluate_video` (``evaluate VIDEO --gt``).

    The defaults are the quick protocol (at most 400 clip forwards whatever the model; see
    the README): three methods, the baselines that the benchmark tells apart (uniform for
    chance, centre, which beats every method at insertion, and motion, the strong one;
    ``random`` scored as ``uniform`` there), the ``voxel`` and ``tube`` units (``frame``
    did not separate any tube from chance) and the two sanity steps the benchmark reports.
    :meth:`full` gives the full protocol.

    Attributes:
        methods: explainers to score; None (the default): the model's defaults
            (:meth:`for_model`): the three CAMs of :data:`NETWORK_METHODS` for a network,
            the callable's ``auto`` method (RISE) for a plain callable.
        classes: the class to explain: ``"top1"``, an index or a name.
        interpolation: upsampling mode of the explainers.
        baselines: baselines scored alongside (:data:`saliency_tubes.metrics.BASELINES`).
        units: deletion / insertion units (``"voxel"``, ``"frame"``, ``"tube"``).
        protocol: how tubes are scored (:class:`~saliency_tubes.metrics.benchmark.Protocol`).
        cascade: sanity steps explained: ``"ends"`` (top block random, all random) or
            ``"every"`` (each step of the cascade).
        batch_size: perturbed clips per forward; None: as many as fit in memory (at most
            256 MiB of input at once).
        progress: show a progress bar (stderr, when it is a terminal).
    """

    methods: tuple[str, ...] | None = None
    classes: ClassSpec = "top1"
    interpolation: str = "cubic"
    baselines: tuple[str, ...] = ("uniform", "centre", "motion")
    units: tuple[str, ...] = ("voxel", "tube")
    protocol: Protocol = field(default_factory=Protocol)
    cascade: str = "ends"
    batch_size: int | None = None
    progress: bool = True

    what: ClassVar[str] = "evaluate options"
    NETWORK_METHODS: ClassVar[tuple[str, ...]] = ("cam", "gradcam", "gradcam++")
    """The methods scored on a network when none are given (they read its layers)."""

    def __post_init__(self) -> None:
        self.check()  # validated once, where made (replace() makes, and checks, a new one)

    def for_model(self, loaded: LoadedModel) -> EvaluateOptions:
        """These options with the methods settled for ``loaded``: where ``methods`` is None,
        :data:`NETWORK_METHODS` for a network and ``(loaded.default_method,)`` (what
        ``--method auto`` runs: RISE) for a plain callable, which has no layers to read."""
        if self.methods is not None:
            return self
        if loaded.plain_callable:
            return replace(self, methods=(loaded.default_method,))
        return replace(self, methods=self.NETWORK_METHODS)

    @property
    def settled(self) -> tuple[str, ...]:
        """The methods once :meth:`for_model` has settled them (a bug to ask before)."""
        if self.methods is None:
            raise RuntimeError("EvaluateOptions.methods read before for_model settled them")
        return self.methods

    @classmethod
    def full(cls, **changes: Any) -> EvaluateOptions:
        """The full protocol: every baseline, every unit and every step of the sanity
        cascade (``changes`` override any option)."""
        chosen: dict[str, Any] = {
            "baselines": tuple(BASELINES),
            "units": tuple(UNITS),
            "cascade": "every",
        }
        return cls(**{**chosen, **changes})

    def check(self) -> None:
        """Validate the options (one-line errors)."""
        self.protocol.check()
        bad = [m for m in self.methods or () if m not in METHODS]
        bad += [b for b in self.baselines if b not in BASELINES]
        if bad or not (self.methods is None or self.methods or self.baselines):
            raise InputError(
                f"expected methods among {', '.join(METHODS)} and baselines among "
                f"{', '.join(BASELINES)}, but got {', '.join(bad) or 'none'}"
            )
        check_choices("interpolation", [self.interpolation], names.INTERPOLATIONS)
        check_choices("units", self.units, UNITS)
        check_choice("cascade", self.cascade, CASCADES)
        size = self.batch_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise InputError(
                f"expected --batch as a positive number of clips per forward, but got {size!r}; "
                "leave it out to fit the memory available"
            )
