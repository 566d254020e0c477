"""Ground-truth files that cannot be scored: one InputError line, from the library and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from saliency_tubes import InputError
from saliency_tubes.cli import main
from saliency_tubes.metrics import load_ground_truth
from saliency_tubes.synthetic import make_clip
from saliency_tubes.video import VideoWriter

FRAMES, SIZE = 4, (8, 10)


def _mask(kind: str) -> np.ndarray:
    """A (FRAMES, H, W) mask of one bad kind."""
    mask = np.zeros((FRAMES, *SIZE), dtype=np.float32)
    mask[1, 2:4, 3:6] = 1.0
    if kind == "nan":
        mask[2, 5, 7] = np.nan
    elif kind == "inf":
        mask[0, 0, 1] = -np.inf
    elif kind == "all_nan":
        mask[:] = np.nan
    elif kind == "zeros":
        mask[:] = 0.0
    elif kind == "false":
        return np.zeros((FRAMES, *SIZE), dtype=bool)
    return mask


MASK_ERRORS = {
    "nan": r"expected finite mask values, but frame 2 holds nan at \(y=5, x=7\)",
    "inf": r"expected finite mask values, but frame 0 holds -inf at \(y=0, x=1\)",
    "all_nan": r"expected finite mask values, but frame 0 holds nan at \(y=0, x=0\)",
    "zeros": r"expected the object in at least one frame .* but the mask is all zeros",
    "false": r"expected the object in at least one frame .* but the mask is all zeros",
}


@pytest.mark.parametrize("kind", sorted(MASK_ERRORS))
def test_masks_that_cannot_be_scored(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.npy"
    np.save(path, _mask(kind))
    with pytest.raises(InputError, match=MASK_ERRORS[kind]) as info:
        load_ground_truth(path, FRAMES, SIZE)
    message = str(info.value)
    assert message.startswith(f"ground truth {path}: ") and "\n" not in message


def test_a_finite_mask_is_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "mask.npy"
    np.save(path, _mask("ok"))
    truth = load_ground_truth(path, FRAMES, SIZE)
    frames = truth.frames(np.arange(FRAMES))
    assert frames.sum() == 6 and frames[1, 2:4, 3:6].all()


def test_npz_masks_with_one_array_or_a_named_one(tmp_path: Path) -> None:
    mask = _mask("ok") > 0
    np.savez_compressed(tmp_path / "one.npz", box=mask)  # REVEX-style: one array, key 'box'
    np.savez(tmp_path / "two.npz", box=mask, other=np.zeros_like(mask))
    for spec in (tmp_path / "one.npz", f"{tmp_path / 'two.npz'}:box"):
        truth = load_ground_truth(spec, FRAMES, SIZE)
        np.testing.assert_array_equal(truth.frames(np.arange(FRAMES)), mask)
    with pytest.raises(
        InputError,
        match=r"expected one array in the .npz, but it holds 2 \(box, other\); name one as two.npz:KEY",
    ):
        load_ground_truth(tmp_path / "two.npz", FRAMES, SIZE)
    with pytest.raises(InputError, match=r"expected an array 'nope' in the .npz"):
        load_ground_truth(f"{tmp_path / 'two.npz'}:nope", FRAMES, SIZE)
    (tmp_path / "mask.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"boxes .json, or a mask .npy / .npz"):
        load_ground_truth(tmp_path / "mask.png", FRAMES, SIZE)


def test_the_mask_is_checked_a_block_of_frames_at_a_time(tmp_path: Path) -> None:
    # More frames than one block: the NaN and the object may sit in any block.
    mask = np.zeros((150, 2, 2), dtype=np.float64)
    mask[140, 1, 1] = 1.0
    path = tmp_path / "long.npy"
    np.save(path, mask)
    assert load_ground_truth(path, 150, (2, 2)).frames(np.array([140]))[0, 1, 1]
    mask[130, 0, 0] = np.inf
    np.save(path, mask)
    with pytest.raises(InputError, match=r"frame 130 holds inf at \(y=0, x=0\)"):
        load_ground_truth(path, 150, (2, 2))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            '{"boxes": {"0": [[NaN, 1, 4, 4]]}}',
            r"four finite numbers at frame 0, but got \[nan, 1, 4, 4\]",
        ),
        (
            '{"boxes": {"1": [[0, 1, Infinity, 4]]}}',
            r"four finite numbers at frame 1, but got \[0, 1, inf, 4\]",
        ),
        (
            '{"boxes": {"0": [[0, true, 4, 4]]}}',
            r"four finite numbers at frame 0, but got \[0, True, 4, 4\]",
        ),
        (
            '{"size": [Infinity, 10], "boxes": {"0": [[0, 1, 4, 4]]}}',
            r'expected "size" as \[height, width\]',
        ),
        (
            '{"size": [NaN, 10], "boxes": {"0": [[0, 1, 4, 4]]}}',
            r'expected "size" as \[height, width\]',
        ),
        ('{"boxes": {"0": [], "3": []}}', r"expected at least one box, but every frame is empty"),
    ],
)
def test_boxes_that_cannot_be_scored(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "boxes.json"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as info:
        load_ground_truth(path, FRAMES, SIZE)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clip = make_clip(seed=7, frames=6, size=(32, 40))
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with VideoWriter(path, fps=10, crf=10) as writer:
        for image in clip.video:
            writer.write(np.ascontiguousarray(image))
    return path


@pytest.mark.parametrize("kind", ["all_nan", "zeros"])
def test_evaluate_command_refuses_the_mask_in_one_line(
    video: Path, tmp_path: Path, kind: str
) -> None:
    mask = np.zeros((6, 32, 40), dtype=np.float32)
    if kind == "all_nan":
        mask[:] = np.nan  # before: every voxel counted as the object, a perfect score
    path = tmp_path / "mask.npy"
    np.save(path, mask)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["evaluate", str(video), "--gt", str(path), "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    assert re.search(MASK_ERRORS[kind], result.stderr), result.stderr
    assert not out.exists()
