"""One tube on the video's timeline: windows normalised on one scale, mapped to source frames.

A :class:`TubeTrack` holds, for one model, every window's raw tubes (``(K, T', H', W')`` on
the layer's grid, a few kilobytes each) and gives, for any source time, each class's tube
on that source frame (:meth:`TubeTrack.frame`): the windows that cover the time are chosen
once (:func:`~saliency_tubes.video.covering`), their normalised tubes interpolated in time
and blended (:func:`~saliency_tubes.video.blend`), and the result resized onto the source
pixels the clip saw (:class:`~saliency_tubes.video.SourceSampler`; NaN elsewhere).
Upsampled, normalised windows are cached up to a fixed number of bytes (all of them for
most videos, so each window is upsampled once), so memory does not grow with the video.
:func:`summarise` reduces tracks to their temporal curves and tube statistics over every
source frame; a :class:`Summariser` does the same from the frames as they are drawn, so
that each frame's tube is mapped onto the source pixels once for the pictures and the
numbers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import InputError
from ...methods import normalize_tubes
from ...metrics.concentration import StatsBuilder, TubeStats
from ...normalise import by_magnitude, minmax
from ...splines import upsample
from ...temporal import CurveBuilder, TemporalCurve
from ...video import Frame, Geometry, SourceSampler, TimedTube, TubeMapper, VideoInfo

__all__ = [
    "ON_GRID",
    "ON_SOURCE",
    "Summariser",
    "Summary",
    "TubeTrack",
    "Window",
    "summarise",
    "summarise_on_grid",
]

#: Bytes of upsampled windows kept at once (normalised ones, and raw ones from the pass
#: that finds the video-wide scale): beyond it windows are upsampled again when needed.
_CACHE_BYTES = 64 * 2**20


@dataclass
class Window:
    """One explained clip of the video.

    Attributes:
        indices: ``(T,)`` source frame indices of the clip.
        times: ``(T,)`` their timestamps (seconds).
        raw: ``(K, T', H', W')`` raw tubes of the explained classes, on CPU (None until
            the window is explained).
    """

    indices: np.ndarray
    times: np.ndarray
    raw: torch.Tensor | None = None

    def tubes(self) -> torch.Tensor:
        """:attr:`raw`, which must be set."""
        if self.raw is None:
            raise InputError("expected an explained window, but this one has no tubes yet")
        return self.raw


class TubeTrack:
    """Per-class whole-video tubes from per-window raw tubes, normalised on one scale.

    Unsigned tracks are min-max normalised to ``[0, 1]`` (each window on its own when there
    is one window, as :func:`~saliency_tubes.normalize_tubes`; over all windows otherwise).
    Signed tracks (contrastive tubes) are divided by their largest magnitude over all
    windows, so 0 stays 0 and the range is ``[-1, 1]``.

    Args:
        windows: the explained windows, in time order.
        clip_size: ``(T, h, w)`` of the clip the model saw (the tubes are upsampled to it).
        mode: spline mode of the upsampling.
        align: its grid alignment.
        geometry: where the clip lies on the source frame.
        signed: a contrastive track.
        device: where the windows are upsampled and normalised (the model's device: with
            ``--device cuda`` the spline runs on the GPU); the tubes come back to the CPU
            for the source frames.
    """

    def __init__(
        self,
        windows: Sequence[Window],
        clip_size: tuple[int, int, int],
        mode: str,
        align: str,
        geometry: Geometry,
        *,
        signed: bool = False,
        device: torch.device | str = "cpu",
    ) -> None:
        self.windows, self.size, self.signed = windows, clip_size, signed
        self.device = torch.device(device)
        self.mode, self.align, self.geometry = mode, align, geometry
        self._cache: OrderedDict[int, tuple[np.ndarray, list[TimedTube]]] = OrderedDict()
        self._cached = 0  # bytes in _cache
        self._kept: dict[int, torch.Tensor] = {}  # upsampled raw windows of the scale pass
        self._mappers: dict[int, TubeMapper] = {}  # per class, made when first asked
        self._samplers: dict[tuple[int, int], SourceSampler] = {}  # at other frame sizes
        if signed or len(windows) > 1:  # one window is normalised on its own (normalize_tubes)
            lows, highs, kept = [], [], 0
            for w, win in enumerate(windows):
                up = self._upsampled(win)
                flat = up.flatten(1)
                lows.append(flat.abs().amax(1) if signed else flat.amin(1))
                highs.append(flat.amax(1))
                if kept + up.numel() * 4 <= _CACHE_BYTES:
                    self._kept[w] = up
                    kept += up.numel() * 4
            if signed:
                self.bound = torch.stack(lows).amax(0)  # (K,) largest magnitude
            else:
                self.low = torch.stack(lows).amin(0)  # (K,)
                self.high = torch.stack(highs).amax(0)
        self._spans = [(float(w.times.min()), float(w.times.max())) for w in windows]

    @property
    def count(self) -> int:
        """Number of tubes (classes) in the track."""
        return int(self.windows[0].tubes().shape[0])

    @property
    def layer_grid(self) -> tuple[int, ...]:
        """``(T', H', W')`` of the raw tubes."""
        return tuple(self.windows[0].tubes().shape[1:])

    def _upsampled(self, win: Window) -> torch.Tensor:
        raw = win.tubes().to(self.device)
        if tuple(raw.shape[1:]) == tuple(self.size):
            return raw
        return upsample(raw.unsqueeze(0), self.size, mode=self.mode, align=self.align)[0]

    def _window(self, w: int) -> tuple[np.ndarray, list[TimedTube]]:
        if w in self._cache:
            self._cache.move_to_end(w)
            return self._cache[w]
        up = self._kept.pop(w, None)
        if up is None:
            up = self._upsampled(self.windows[w])
        if self.signed:
            maps = by_magnitude(up, self.bound.view(-1, 1, 1, 1)).clamp(-1, 1)
        elif len(self.windows) == 1:
            maps = normalize_tubes(up.unsqueeze(0))[0].clamp(0, 1)
        else:
            low, high = self.low.view(-1, 1, 1, 1), self.high.view(-1, 1, 1, 1)
            maps = minmax(up, low=low, high=high).clamp(0, 1)
        out = maps.cpu().numpy().astype(np.float32)
        if not np.isfinite(out).all():
            raise InputError(
                f"expected finite tube and times, but got NaN/inf in window {w}; "
                "check the model's outputs on this clip"
            )
        times = self.windows[w].times
        timed = [TimedTube(out[k], np.asarray(times, dtype=np.float64)) for k in range(len(out))]
        entry = (out, timed)
        self._cache[w] = entry
        self._cached += out.nbytes
        while self._cached > _CACHE_BYTES and len(self._cache) > 1:
            _, (old, _) = self._cache.popitem(last=False)
            self._cached -= old.nbytes
        return entry

    def normalised(self, w: int) -> np.ndarray:
        """(K, T, h, w) float32 for window ``w`` on the video-wide scale."""
        return self._window(w)[0]

    def blocks(self, index: int | None = None) -> tuple[tuple[int, ...], Iterator[np.ndarray]]:
        """The track as one float32 array, streamed: its shape and its blocks along axis 0.

        ``(K, T, h, w)`` for one clip, ``(num_windows, K, T, h, w)`` for windows; with
        ``index`` only that tube: ``(T, h, w)`` or ``(num_windows, T, h, w)``.
        """
        k = () if index is None else (index,)
        one = (self.count, *self.size)[len(k) :]
        if len(self.windows) == 1:
            return one, iter([self.normalised(0)[k]])
        shape = (len(self.windows), *one)
        return shape, (self.normalised(w)[k][None] for w in range(len(self.windows)))

    def mapper(self, k: int) -> TubeMapper:
        """Tube ``k`` of every window stitched onto the source frames (triangular blending),
        its windows taken from the track's bounded cache as they are needed."""
        if k not in self._mappers:
            self._mappers[k] = TubeMapper.on_demand(
                self._spans,
                lambda w: self._window(w)[1][k],
                self.geometry,
                (self.size[1], self.size[2]),
            )
        return self._mappers[k]

    def grid(self, k: int, t: float) -> np.ndarray:
        """Tube ``k`` at time ``t`` on the clip's grid: the covering windows blended."""
        return self.mapper(k).grid_map(t)

    def grids(self, k: int, times: np.ndarray) -> np.ndarray:
        """:meth:`grid` at many times: ``(n, h, w)`` float32; one window's at once, its
        time weights in float32 (within 1e-7 of :meth:`grid`)."""
        if len(self.windows) == 1:
            tube = self._window(0)[1][k]
            return tube.at_times(np.asarray(times, dtype=np.float64), np.float32)
        return np.stack([self.grid(k, float(t)) for t in times])

    def _sampler_at(self, hw: tuple[int, int]) -> SourceSampler:
        """The resize onto the source frame resized to ``hw``."""
        key = (int(hw[0]), int(hw[1]))
        if key not in self._samplers:
            grid = (self.size[1], self.size[2])
            self._samplers[key] = SourceSampler(self.geometry.resized(key), grid)
        return self._samplers[key]

    def _at_source(self, hw: tuple[int, int] | None) -> bool:
        return hw is None or tuple(hw) == tuple(self.geometry.src_hw)

    def frame(self, k: int, t: float, hw: tuple[int, int] | None = None) -> np.ndarray:
        """Tube ``k`` on the source frame shown at time ``t`` (NaN where unseen); with
        ``hw``, mapped straight onto the source frame resized to ``hw``."""
        if hw is None or self._at_source(hw):
            return self.mapper(k).frame(t)
        return self._sampler_at(hw).frame(self.grid(k, t))

    def frame_tensor(self, k: int, t: float, hw: tuple[int, int] | None = None) -> torch.Tensor:
        """:meth:`frame` on the track's device: blended on the CPU at the clip's size, then
        resized onto the source pixels there."""
        if hw is None or self._at_source(hw):
            return self.mapper(k).frame_tensor(t, self.device)
        grid = torch.from_numpy(self.grid(k, t)).to(self.device)
        return self._sampler_at(hw).frame_tensor(grid)

    def on(self, k: int, frame: Frame) -> np.ndarray | torch.Tensor:
        """Tube ``k`` on ``frame`` at the frame's own size, for drawing: :meth:`frame`
        (numpy) on the CPU, :meth:`frame_tensor` on the track's device otherwise."""
        hw = (int(frame.image.shape[0]), int(frame.image.shape[1]))
        if self.device.type == "cpu":
            return self.frame(k, frame.timestamp, hw)
        return self.frame_tensor(k, frame.timestamp, hw)

    def difference(self, ka: int, kb: int) -> TubeTrack:
        """The signed track of ``raw[ka] - raw[kb]`` (see :func:`~saliency_tubes.contrastive_tube`)."""
        diffs = [
            Window(win.indices, win.times, (win.tubes()[ka] - win.tubes()[kb]).unsqueeze(0))
            for win in self.windows
        ]
        return TubeTrack(
            diffs, self.size, self.mode, self.align, self.geometry, signed=True, device=self.device
        )


#: Where a :class:`Summary` maps each source frame's tube: onto the source pixels
#: (:func:`summarise`, :class:`Summariser`) or on the clip's grid (:func:`summarise_on_grid`).
ON_SOURCE, ON_GRID = "source frames", "clip grid"


@dataclass(frozen=True)
class Summary:
    """A tube reduced over every source frame: its temporal curve and its statistics,
    measured on each frame's pixels (:data:`ON_SOURCE`) or on the clip's grid (:data:`ON_GRID`)."""

    curve: TemporalCurve
    stats: TubeStats
    measured_on: str = ON_SOURCE


def summarise(info: VideoInfo, tracks: Sequence[TubeTrack]) -> list[list[Summary]]:
    """Per track and tube: the temporal curve and the statistics over every source frame."""
    summariser = Summariser(info, tracks)
    for index, t in enumerate(info.timestamps):
        for j, track in enumerate(tracks):
            for k in range(track.count):
                summariser.add(j, k, index, track.frame(k, float(t)))
    return summariser.built()


#: Source frames summarised at once on the clip grid (one block of maps in memory:
#: 256 x 112 x 112 floats is 13 MB).
_GRID_BLOCK = 256


def summarise_on_grid(info: VideoInfo, tracks: Sequence[TubeTrack]) -> list[list[Summary]]:
    """:func:`summarise` with each source frame's tube on the clip's grid.

    For every source frame, the tube at its time is the covering windows blended on the
    clip's ``(h, w)`` grid (:meth:`TubeTrack.grid`, the step before the resize onto the
    source pixels), so a frame costs ``h x w`` cells whatever the source's size, and
    blocks of frames are reduced at once. The curve keeps one value per source frame; the
    statistics are over the clip's cells (no unseen ones) and their ``spread`` is in
    fractions of the clip's frame. What the commands use when no output video needs the
    per-frame maps on the source pixels.
    """
    times = info.timestamps
    out: list[list[Summary]] = []
    for track in tracks:
        row = []
        for k in range(track.count):
            curve, stats = CurveBuilder(), StatsBuilder()
            for start in range(0, len(times), _GRID_BLOCK):
                maps = track.grids(k, times[start : start + _GRID_BLOCK])
                curve.add_frames(maps)
                stats.add_frames(maps)
            row.append(Summary(curve.build(times), stats.build(), ON_GRID))
        out.append(row)
    return out


class Summariser:
    """:func:`summarise` fed by the drawing: each tube's curve and statistics from the
    frames as they are drawn, so a frame's tube is mapped onto its pixels once.

    :meth:`look` is what a drawing asks for a tube on a frame (:meth:`TubeTrack.on`); the
    first time it is asked for a frame the map is also added to that tube's summary.
    Frames must come in source order; if any was skipped (a video that ended early, a
    tube never drawn), :meth:`build` runs :func:`summarise` instead, so the numbers are
    always those of every source frame.

    Args:
        info: the video (its timestamps are the frames expected).
        tracks: the tracks to summarise, in the order of :meth:`build`'s result.
    """

    def __init__(self, info: VideoInfo, tracks: Sequence[TubeTrack]) -> None:
        self.info, self.tracks = info, list(tracks)
        self._rows = [[(CurveBuilder(), StatsBuilder()) for _ in range(t.count)] for t in tracks]
        self._next = [[0] * t.count for t in tracks]  # the frame index each tube expects
        self._skipped = False
        #: the drawn maps' size: the source's, or the outputs' (``--max-side``)
        self.measured_on = ON_SOURCE

    def add(self, j: int, k: int, index: int, saliency: np.ndarray | torch.Tensor) -> None:
        """Add tube ``k`` of track ``j`` on source frame ``index`` (ignored when already
        added; a frame after a gap marks the summaries incomplete)."""
        expected = self._next[j][k]
        if index < expected or index >= self.info.num_frames:
            return  # seen already, or a frame past the announced ones (not in the summary)
        if index > expected:
            self._skipped = True
            return
        if isinstance(saliency, torch.Tensor):  # drawn on a device: one copy for both
            saliency = saliency.detach().cpu().numpy()
        hw = (int(saliency.shape[0]), int(saliency.shape[1]))
        if hw != self.info.size:
            self.measured_on = f"output frames ({hw[0]}x{hw[1]})"
        curve, stats = self._rows[j][k]
        curve.add(saliency)
        stats.add(saliency)
        self._next[j][k] = index + 1

    def look(self, track: TubeTrack, k: int, frame: Frame) -> np.ndarray | torch.Tensor:
        """Tube ``k`` of ``track`` on ``frame`` (:meth:`TubeTrack.on`), summarised too."""
        saliency = track.on(k, frame)
        for j, known in enumerate(self.tracks):
            if known is track:
                self.add(j, k, frame.index, saliency)
        return saliency

    @property
    def complete(self) -> bool:
        """Every tube has every source frame."""
        n = self.info.num_frames
        return not self._skipped and all(i == n for row in self._next for i in row)

    def build(self) -> list[list[Summary]]:
        """Per track and tube, the curve and statistics over every source frame."""
        return self.built() if self.complete else summarise(self.info, self.tracks)

    def built(self) -> list[list[Summary]]:
        """The summaries of the frames added so far."""
        times = self.info.timestamps
        return [
            [Summary(c.build(times), s.build(), self.measured_on) for c, s in row]
            for row in self._rows
        ]
