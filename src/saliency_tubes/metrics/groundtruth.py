"""Ground truth for a video: per-frame boxes (JSON) or a mask (``.npy``), mapped onto a clip.

Boxes file (UTF-8 JSON)::

    {
      "size": [240, 320],
      "boxes": {
        "0":  [[12, 30, 80, 120]],
        "1":  [[14, 31, 82, 121], [200, 40, 230, 90]],
        "57": []
      }
    }

* ``"boxes"`` maps a **source frame index** (0-based, in presentation order, as a string)
  to a list of boxes ``[x0, y0, x1, y1]`` in pixels: ``x`` to the right, ``y`` down, edges
  (a box ``[0, 0, 2, 1]`` covers the two top-left pixels; a pixel is inside when its centre
  is). Several boxes per frame are allowed (their union is the object); an empty list
  marks a frame annotated as not containing it; frames that are not listed hold no object.
* ``"size"`` (optional): ``[height, width]`` of the frames the boxes were drawn on; when it
  differs from the video's, the boxes are scaled to the video.

Mask file: a ``.npy`` array of shape ``(num_frames, height, width)`` matching the video,
bool or numeric (non-zero = object; finite, with the object in at least one frame),
loaded without pickle.

On the clip a model sees, the ground truth goes through the same sampling, resizing and
cropping as the frames (:meth:`GroundTruth.on_clip`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..video import Preprocess

__all__ = ["GroundTruth", "boxes_mask", "load_ground_truth"]

Box = tuple[float, float, float, float]


def boxes_mask(boxes: list[Box], size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool mask of the pixels whose centres lie in any box ``[x0, y0, x1, y1]``.

    A box too small to hold a pixel centre still marks the pixel under its centre.
    """
    h, w = size
    out = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        c0, c1 = max(0, math.ceil(x0 - 0.5)), min(w, math.ceil(x1 - 0.5))
        r0, r1 = max(0, math.ceil(y0 - 0.5)), min(h, math.ceil(y1 - 0.5))
        if c1 > c0 and r1 > r0:
            out[r0:r1, c0:c1] = True
        else:
            cy = min(h - 1, max(0, int((y0 + y1) / 2)))
            cx = min(w - 1, max(0, int((x0 + x1) / 2)))
            out[cy, cx] = True
    return out


@dataclass(frozen=True)
class GroundTruth:
    """Where the object is in a video, frame by frame, at the source resolution.

    Attributes:
        path: the file it came from.
        kind: ``"boxes"`` or ``"mask"``.
        num_frames: the video's frame count.
        size: the video's ``(H, W)``.
    """

    path: Path
    kind: str
    num_frames: int
    size: tuple[int, int]
    _boxes: dict[int, list[Box]] = field(default_factory=dict, repr=False)
    _mask: np.ndarray | None = field(default=None, repr=False)

    def frames(self, indices: np.ndarray) -> np.ndarray:
        """``(len(indices), H, W)`` bool masks of the given source frames."""
        idx = np.asarray(indices, dtype=np.int64)
        if self._mask is not None:
            return np.asarray(self._mask[idx] != 0)
        return np.stack([boxes_mask(self._boxes.get(int(i), []), self.size) for i in idx])

    def on_clip(self, indices: np.ndarray, preprocess: Preprocess) -> torch.Tensor:
        """The ground truth of the sampled frames on the model's clip grid.

        Each frame's mask is resized (and cropped) exactly as the frames are (bilinear,
        antialiased) and thresholded at one half.

        Args:
            indices: the source frames of the clip (e.g. ``sample_uniform(num_frames, T)``).
            preprocess: the model's :class:`~saliency_tubes.video.Preprocess`.

        Returns:
            ``(T, h, w)`` bool.
        """
        masks = self.frames(indices).astype(np.uint8) * 255
        as_frames = np.repeat(masks[..., None], 3, axis=3)
        plain = Preprocess(
            size=preprocess.size,
            resize=preprocess.resize,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            resize_to=preprocess.resize_to,
        )
        return plain(as_frames)[0] >= 0.5


def _fail(path: Path, message: str) -> InputError:
    return InputError(f"ground truth {path}: {message}")


def _is_number(value: object) -> bool:
    """Whether a JSON value is a finite number (JSON's NaN and Infinity are not; nor is a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _load_boxes(path: Path, num_frames: int, size: tuple[int, int]) -> dict[int, list[Box]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"expected a UTF-8 JSON file, but it could not be read ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("boxes"), dict):
        raise _fail(
            path,
            'expected a JSON object {"boxes": {"FRAME": [[x0, y0, x1, y1], ...]}}, but got no '
            '"boxes" object; see the boxes format in the README',
        )
    scale_y = scale_x = 1.0
    if "size" in data:
        drawn = data["size"]
        if (
            not isinstance(drawn, list)
            or len(drawn) != 2
            or not all(_is_number(v) and v > 0 for v in drawn)
        ):
            raise _fail(path, f'expected "size" as [height, width], but got {drawn!r}')
        scale_y, scale_x = size[0] / float(drawn[0]), size[1] / float(drawn[1])
    out: dict[int, list[Box]] = {}
    for key, items in data["boxes"].items():
        try:
            frame = int(key)
        except ValueError:
            raise _fail(path, f"expected frame indices as keys, but got {key!r}") from None
        if not 0 <= frame < num_frames:
            raise _fail(
                path,
                f"expected frame indices in [0, {num_frames}) (the video has {num_frames} "
                f"frames), but got {frame}",
            )
        if not isinstance(items, list):
            raise _fail(path, f"expected a list of boxes for frame {frame}, but got {items!r}")
        boxes: list[Box] = []
        for box in items:
            if not isinstance(box, list) or len(box) != 4 or not all(map(_is_number, box)):
                raise _fail(
                    path,
                    f"expected boxes [x0, y0, x1, y1] of four finite numbers at frame {frame}, "
                    f"but got {box!r}",
                )
            x0, y0 = box[0] * scale_x, box[1] * scale_y
            x1, y1 = box[2] * scale_x, box[3] * scale_y
            if not (x0 < x1 and y0 < y1):
                raise _fail(path, f"expected x0 < x1 and y0 < y1 at frame {frame}, but got {box!r}")
            if x1 <= 0 or y1 <= 0 or x0 >= size[1] or y0 >= size[0]:
                raise _fail(
                    path,
                    f"expected boxes inside the {size[0]}x{size[1]} (HxW) frame at frame "
                    f"{frame}, but got {box!r}",
                )
            boxes.append((x0, y0, x1, y1))
        out[frame] = boxes
    if not any(out.values()):
        raise _fail(path, "expected at least one box, but every frame is empty")
    return out


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    """The one array of an ``.npz`` file, or the array ``key``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if key is None and len(names) != 1:
                raise _fail(
                    path,
                    f"expected one array in the .npz, but it holds {len(names)} ({', '.join(names)}); "
                    f"name one as {path.name}:KEY",
                )
            name = key if key is not None else names[0]
            if name not in names:
                raise _fail(
                    path, f"expected an array {name!r} in the .npz, but it holds {', '.join(names)}"
                )
            return np.asarray(archive[name])
    except (OSError, ValueError) as exc:
        raise _fail(
            path, f"expected an .npz archive saved without pickle, but loading failed ({exc})"
        ) from None


def _load_mask(
    path: Path, num_frames: int, size: tuple[int, int], key: str | None = None
) -> np.ndarray:
    if path.suffix.lower() == ".npz":
        mask = _load_npz(path, key)
    else:
        try:
            mask = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise _fail(
                path, f"expected a .npy array saved without pickle, but loading failed ({exc})"
            ) from None
    expected = (num_frames, size[0], size[1])
    if mask.shape != expected:
        raise _fail(
            path,
            f"expected a mask of shape (frames, height, width) = {expected} to match the video, "
            f"but got {mask.shape}",
        )
    if not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.number)):
        raise _fail(path, f"expected a bool or numeric mask, but got dtype {mask.dtype}")
    _check_mask_values(path, mask)
    return mask


def _check_mask_values(path: Path, mask: np.ndarray, block: int = 64) -> None:
    """Refuse NaN or inf values and a mask without any object (read ``block`` frames at a
    time, so a memory-mapped mask is never held whole)."""
    inexact = np.issubdtype(mask.dtype, np.inexact)
    found = False
    for start in range(0, mask.shape[0], block):
        frames = np.asarray(mask[start : start + block])
        if inexact:
            bad = ~np.isfinite(frames)
            if bad.any():
                t, y, x = (int(v) for v in np.argwhere(bad)[0])
                raise _fail(
                    path,
                    f"expected finite mask values, but frame {start + t} holds "
                    f"{frames[t, y, x]} at (y={y}, x={x}); save the mask as bool or 0/1",
                )
        found = found or bool(frames.any())
    if not found:
        raise _fail(
            path,
            "expected the object in at least one frame (a non-zero value), but the mask is "
            "all zeros; mark the object's pixels as True or 1",
        )


def load_ground_truth(path: str | Path, num_frames: int, size: tuple[int, int]) -> GroundTruth:
    """Read boxes (``.json``) or a mask (``.npy``; ``.npz`` with one array, or
    ``FILE.npz:KEY`` for one of several, as REVEX-style masks ship) for a video of
    ``num_frames`` frames of ``size``.

    Raises:
        InputError: a missing file, another suffix, a malformed file, frame indices outside
            the video, boxes or a ``"size"`` that are not finite numbers (NaN, Infinity),
            no box at all, a mask whose shape is not ``(num_frames, H, W)``, a mask holding
            NaN or inf, or a mask that is all zeros (the object in no frame).
    """
    p, key = Path(path), None
    text = str(path)
    if not p.is_file() and ".npz:" in text:  # FILE.npz:KEY
        head, key = text.rsplit(":", 1)
        p = Path(head)
    formats = "boxes .json, or a mask .npy / .npz (FILE.npz:KEY for one of several arrays)"
    if not p.is_file():
        raise InputError(f"expected a ground-truth file ({formats}), but {p} does not exist")
    suffix = p.suffix.lower()
    size = (int(size[0]), int(size[1]))
    if suffix == ".json":
        return GroundTruth(p, "boxes", num_frames, size, _boxes=_load_boxes(p, num_frames, size))
    if suffix in (".npy", ".npz"):
        mask = _load_mask(p, num_frames, size, key)
        return GroundTruth(p, "mask", num_frames, size, _mask=mask)
    raise InputError(
        f"expected the ground truth as {formats}, but got {p.name}; see the formats in the README"
    )
