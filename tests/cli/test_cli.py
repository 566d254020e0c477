"""The command line end to end (through click), on generated videos and real clips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from _clips import real_clip
from saliency_tubes import render
from saliency_tubes.cli import main
from saliency_tubes.commands.pipeline.drawing import GAP
from saliency_tubes.video import Preprocess, TubeMapper, VideoWriter, iter_frames, probe
from saliency_tubes.vocabulary import METHOD_NAMES

FACTORY = "_models:SmallResNet3D"  # a fixed-weight 3D ResNet from tests/_models.py


def _write_video(
    path: Path, frames: int = 20, size: tuple[int, int] = (72, 96), fps: int = 24
) -> Path:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    with VideoWriter(path, fps=fps, crf=10) as writer:
        for t in range(frames):
            image = np.zeros((h, w, 3), np.uint8)
            image[..., 0] = (xx * 255 // w).astype(np.uint8)
            image[..., 1] = (yy * 255 // h).astype(np.uint8)
            cy, cx = h // 2, 10 + 3 * t
            image[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = (255, 255, 255)
            writer.write(image)
    return path


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _explain(video: Path, out: Path, *options: str) -> tuple[int, str, str]:
    """``saliency-tubes explain VIDEO --out OUT --model FACTORY --quiet OPTIONS...``."""
    return _run("explain", str(video), "--out", str(out), "--model", FACTORY, "--quiet", *options)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_video(tmp_path_factory.mktemp("src") / "moving.mp4")


def test_explain_writes_source_sized_videos_and_manifest(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = _explain(video, out, "--classes", "top2", "--format", "mp4,npy")
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    files = manifest["outputs"]
    assert len(files["mp4"]) == 6 and files["npy"] == [
        "tube.npy"
    ]  # 2 classes x heat/focus/side-by-side
    for rel in files["mp4"] + files["npy"]:
        assert (out / rel).is_file() and not Path(rel).is_absolute()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no partial files
    src = probe(video)
    for rel in files["mp4"]:
        info = probe(out / rel)
        assert info.num_frames == src.num_frames and info.rate == src.rate
        if rel.startswith("side_by_side"):  # three panels, gaps, captions in a strip above
            assert info.width == 3 * src.width + 2 * GAP and info.height > src.height
        else:  # heat and focus: exactly the source's picture size
            assert (info.height, info.width) == (src.height, src.width)
    assert manifest["model"]["layer"] == "layer2" and manifest["method"] == "cam"
    assert manifest["source"]["num_frames"] == 20 and len(manifest["classes"]) == 2
    tube = np.load(out / "tube.npy")
    assert tube.shape == (2, 16, 112, 112) and tube.dtype == np.float32
    assert tube.min() == 0.0 and tube.max() == 1.0
    assert "wrote 7 output(s)" in stdout


def test_rendered_heat_video_matches_expected_rendering(video: Path, tmp_path: Path) -> None:
    """Decoded output frames equal the rendering of the mapped tube, within codec tolerance."""
    out = tmp_path / "out"
    code, _, stderr = _explain(
        video, out, "--format", "mp4,npy", "--layouts", "heat", "--no-caption"
    )
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    tube = np.load(out / "tube.npy")[0]
    times = manifest["clips"][0]["timestamps"]
    src = probe(video)
    mapper = TubeMapper(tube, times, Preprocess(size=(112, 112)).geometry(src.size))
    errors = []
    for frame, rendered in zip(
        iter_frames(video), iter_frames(out / manifest["outputs"]["mp4"][0]), strict=True
    ):
        expected = render.heat(frame.image, mapper.frame(frame.timestamp))
        errors.append(np.abs(expected.astype(float) - rendered.image.astype(float)).mean())
    # H.264 at crf 18 on a colour-mapped image: a few grey levels on average.
    assert max(errors) < 4.0, max(errors)


def test_windows_cover_every_frame(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, stderr = _explain(
        video, out, "--windows", "8,6", "--frames", "8", "--format", "npy", "--classes", "top1"
    )
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    covered = sorted({i for clip in manifest["clips"] for i in clip["frame_indices"]})
    assert covered == list(range(20))
    tube = np.load(out / "tube.npy")
    assert tube.shape == (len(manifest["clips"]), 1, 8, 112, 112)
    assert tube.min() == 0.0 and tube.max() == 1.0  # one scale for the whole video


def _assert_clean_failure(code: int, stderr: str, out: Path, fragment: str) -> None:
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert fragment in lines[0], lines[0]
    assert not out.exists() or list(out.iterdir()) == []


def test_bad_inputs_fail_cleanly(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    single = _write_video(tmp_path / "one.mp4", frames=1)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[:600])
    cases = [
        ([str(tmp_path / "missing.mp4")], "missing path"),
        ([str(text)], "expected a video file FFmpeg can decode"),
        ([str(empty)], "empty"),
        ([str(truncated)], "could not read video"),
        ([str(single)], "at least 2 frames"),
        ([str(video), "--model", "resnet3d-19"], "unknown model 'resnet3d-19'"),
        ([str(video), "--model", FACTORY, "--classes", "7"], "class index 7 out of range"),
        ([str(video), "--model", FACTORY, "--classes", "jump"], "has no category names"),
        ([str(video), "--classes", "jupm"], "unknown class name 'jupm'"),
        (
            [str(video), "--model", FACTORY, "--weights", str(tmp_path / "nope.pth")],
            "checkpoint not found",
        ),
    ]
    for args, fragment in cases:
        code, _, stderr = _run("explain", *args, "--out", str(out), "--quiet")
        _assert_clean_failure(code, stderr, out, fragment)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_output_folder(video: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, stderr = _run(
            "explain", str(video), "--out", str(locked / "out"), "--model", FACTORY, "--quiet"
        )
        _assert_clean_failure(code, stderr, locked / "out", "not writable")
    finally:
        locked.chmod(0o700)


def test_output_path_is_a_file(video: Path, tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    code, _, stderr = _run(
        "explain", str(video), "--out", str(target), "--model", FACTORY, "--quiet"
    )
    assert code == 2 and "is a file" in stderr and target.read_text() == "x"
    # A folder that cannot be created (its parent is a file): not writable, nothing left.
    code, _, stderr = _run(
        "explain", str(video), "--out", str(target / "out"), "--model", FACTORY, "--quiet"
    )
    _assert_clean_failure(code, stderr, target / "out", "not writable")
    assert target.read_text() == "x"


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_midway_removes_everything(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    calls = {"n": 0}
    original = render.heat

    def failing_heat(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:  # the fifth frame: writers are open, files are half-written
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(render, "heat", failing_heat)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "explain",
            str(video),
            "--out",
            str(out),
            "--model",
            FACTORY,
            "--quiet",
            "--format",
            "mp4,gif,npy",
        ],
    )
    assert result.exit_code != 0 and calls["n"] == 5
    assert not out.exists()
    # Into an existing folder: its other files stay, ours are gone.
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    calls["n"] = 0
    CliRunner().invoke(
        main, ["explain", str(video), "--out", str(out), "--model", FACTORY, "--quiet"]
    )
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_models_lists_registry() -> None:
    code, stdout, _ = _run("models")
    assert code == 0 and "tiny-actions" in stdout and "resnet3d-50" in stdout and "layer4" in stdout


def test_help_teaches() -> None:
    code, stdout, _ = _run("explain", "--help")
    assert code == 0 and "--windows" in stdout and "--allow-pickle" in stdout


@pytest.mark.parametrize("name", ["arm_wrestling.mp4", "eye_makeup.avi", "pool_cleaning_32f.mp4"])
def test_real_clips_end_to_end(name: str, tmp_path: Path) -> None:
    path = real_clip(name)
    out = tmp_path / "out"
    code, _, stderr = _run(
        "explain",
        str(path),
        "--out",
        str(out),
        "--model",
        "resnet3d-18",
        "--layouts",
        "side_by_side",
        "--format",
        "mp4",
        "--quiet",
    )
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    src = probe(path)
    rendered = probe(out / manifest["outputs"]["mp4"][0])
    assert rendered.num_frames == src.num_frames and rendered.rate == src.rate
    width = 3 * src.width + 2 * GAP  # three panels and their gaps; captions above them
    assert rendered.width == width + width % 2 and rendered.height > src.height
    torch.manual_seed(0)


def test_mean_std_override_the_preset(video: Path, tmp_path: Path) -> None:
    """--mean/--std replace the preset's normalisation: x' = (x / 255 - mean) / std."""
    base, scaled = tmp_path / "base", tmp_path / "scaled"
    code, _, stderr = _explain(video, base, "--format", "npy", "--classes", "0")
    assert code == 0, stderr
    code, _, stderr = _explain(
        video,
        scaled,
        "--format",
        "npy",
        "--classes",
        "0",
        "--mean",
        "0.5,0.5,0.5",
        "--std",
        "0.25,0.25,0.25",
    )
    assert code == 0, stderr
    preset = json.loads((scaled / "manifest.json").read_text())["model"]["preset"]
    assert preset["mean"] == [0.5, 0.5, 0.5] and preset["std"] == [0.25, 0.25, 0.25]
    # A different normalisation feeds the model different numbers: the tube changes.
    assert not np.allclose(np.load(base / "tube.npy"), np.load(scaled / "tube.npy"))
    for bad, message in (("0.1,0.2", "expected --mean R,G,B"), ("x,y,z", "expected --mean R,G,B")):
        code, _, stderr = _explain(video, tmp_path / "bad", "--mean", bad)
        assert code == 2 and stderr.startswith("error:") and message in stderr
    code, _, stderr = _explain(video, tmp_path / "bad", "--std", "0,1,1")
    assert code == 2 and "std > 0" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (OSError(28, "No space left on device"), 2, "error: expected to write the outputs into"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_a_failed_rerun_keeps_the_earlier_results(
    video: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: BaseException,
    code: int,
    line: str,
) -> None:
    out = tmp_path / "out"
    first, _, stderr = _explain(video, out, "--format", "mp4,npy,plot")
    assert first == 0, stderr
    before = _tree(out)
    calls = {"n": 0}
    original = render.focus

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # writers open, tube.npy and the plot already written
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(render, "focus", failing)
    again, _, stderr = _explain(video, out, "--format", "mp4,npy,plot", "--classes", "top2")
    lines = stderr.strip().splitlines()
    assert again == code and len(lines) == 1 and lines[0].startswith(line), stderr
    assert _tree(out) == before  # byte for byte, and nothing new (no staging folder either)
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_ctrl_c_in_a_subprocess_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    long_clip = _write_video(tmp_path / "long.mp4", frames=400, size=(144, 192))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    command = [
        sys.executable,
        "-m",
        "saliency_tubes.cli",
        "explain",
        str(long_clip),
        "--out",
        str(out),
        "--model",
        FACTORY,
        "--format",
        "mp4,gif",
        "--quiet",
    ]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120

    def rendering() -> bool:
        try:
            return any(
                p.name.startswith(".saliency-tubes-run-") and any(p.rglob("*.partial*"))
                for p in out.iterdir()
            )
        except FileNotFoundError:  # the staging folder went while being looked at
            return False

    while time.monotonic() < deadline and not rendering():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and stderr == "interrupted\n", stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_usage_errors_and_invalid_choices_are_one_line(video: Path, tmp_path: Path) -> None:
    for args, fragment in (
        (["explain"], "Missing argument 'VIDEO'"),
        (["explain", str(video), "--out", str(tmp_path / "o"), "--bogus"], "No such option"),
        (
            ["explain", str(video), "--out", str(tmp_path / "o"), "--method", "bogus"],
            f"expected method one of {', '.join(METHOD_NAMES)} or auto, but got 'bogus'",
        ),
        (
            ["explain", str(video), "--out", str(tmp_path / "o"), "--interpolation", "bogus"],
            "expected interpolation one of nearest, linear, quadratic, cubic",
        ),
        (
            ["explain", str(video), "--out", str(tmp_path / "o"), "--frames", "many"],
            "'many' is not a valid integer",
        ),
        (
            ["explain", str(video), "--out", str(tmp_path / "o"), "--crf", "60"],
            "expected crf an integer from 0 to 51 (18: visually lossless, 23: smaller files), "
            "but got 60",
        ),
        (
            ["explain", str(video), "--out", str(tmp_path / "o"), "--x264-preset", "quick"],
            "expected x264 preset one of ultrafast, superfast, veryfast, faster, fast, medium, "
            "slow, slower, veryslow, but got 'quick'",
        ),
        (["frob"], "No such command 'frob'"),
    ):
        code, _, stderr = _run(*args)
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert fragment in lines[0], lines[0]
    assert not (tmp_path / "o").exists()


def test_ctrl_c_while_starting_is_one_line(tmp_path: Path) -> None:
    """From the console program's first line on, Ctrl-C is one line (no traceback), exit
    130, at any moment: while the commands and torch are still being imported too."""
    import signal
    import subprocess
    import sys
    import time

    program = (
        "import sys; from saliency_tubes.cli import run; sys.argv[0] = 'saliency-tubes'; "
        "print('ready', flush=True); run()"
    )
    for delay in (0.0, 0.05, 0.2, 0.5):
        proc = subprocess.Popen(
            [sys.executable, "-c", program, "demo", "--out", str(tmp_path / "demo"), "--quiet"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As a terminal starts it: a suite run in the background (`cmd &` in a shell
            # without job control) hands SIGINT down ignored, and Python then never raises
            # KeyboardInterrupt before the CLI's own handler is in place.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130 and stderr == "interrupted\n", (delay, stderr)
        assert not (tmp_path / "demo").exists() or list((tmp_path / "demo").iterdir()) == []


def test_class_names_with_dots_and_control_characters(video: Path, tmp_path: Path) -> None:
    names = tmp_path / "names.json"
    names.write_text(json.dumps(["v1.0", "red\u001b[31m", "c", "d", "e"]))
    out = tmp_path / "out"
    code, stdout, stderr = _explain(
        video,
        out,
        "--categories",
        str(names),
        "--classes",
        "0,1",
        "--format",
        "png",
        "--layouts",
        "heat",
    )
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["heat_1_v1.0", "heat_2_red-31m"]
    assert len(list((out / "heat_1_v1.0").glob("*.png"))) == 20
    assert "class 1 red\\x1b[31m: p=" in stdout and "\u001b" not in stdout


def test_random_weights_are_said_on_the_terminal(video: Path, tmp_path: Path) -> None:
    code, stdout, stderr = _run(
        "explain",
        str(video),
        "--out",
        str(tmp_path / "out"),
        "--model",
        "resnet3d-18",
        "--num-classes",
        "4",
        "--format",
        "npy",
        "--quiet",
    )
    assert code == 0, stderr
    assert stderr.splitlines() == [
        "warning: resnet3d-18 has random weights: this explains an untrained network; pass "
        "--weights PATH (or a named release) for a trained one"
    ]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["model"]["weights_source"] == "random" and manifest["model"]["random_weights"]
    code, _, stderr = _explain(video, tmp_path / "factory", "--format", "npy")
    assert code == 0 and "warning" not in stderr  # a factory's weights are its own business


def test_odd_and_rotated_sources(tmp_path: Path) -> None:
    """Outputs keep an odd source's size (mp4: one repeated edge row/column, said in the
    manifest) and come out upright for a rotated phone video."""
    import av

    odd = tmp_path / "odd_frames"  # a PNG frame folder keeps the odd size (an mp4 would pad)
    with VideoWriter(odd, fps=12) as writer:
        for t in range(12):
            writer.write(np.full((77, 101, 3), 20 * t % 255, np.uint8))
    assert probe(odd).size == (77, 101)
    out = tmp_path / "odd"
    code, _, stderr = _explain(odd, out, "--layouts", "heat", "--format", "mp4,gif,png")
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    (mp4,), (gif,) = manifest["outputs"]["mp4"], manifest["outputs"]["gif"]
    assert (probe(out / mp4).height, probe(out / mp4).width) == (78, 102)
    assert (probe(out / gif).height, probe(out / gif).width) == (77, 101)
    assert probe(out / manifest["outputs"]["png"][0]).size == (77, 101)
    assert "repeated once in .mp4" in manifest["definitions"]["mp4_size"]

    rotated = tmp_path / "phone.mp4"
    with av.open(str(rotated), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(-90)
        for t in range(10):
            image = np.full((48, 64, 3), 40 + 10 * t, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "phone"
    code, _, stderr = _explain(rotated, out, "--layouts", "heat", "--format", "mp4")
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["rotation"] == 270
    assert (manifest["source"]["height"], manifest["source"]["width"]) == (64, 48)
    written = probe(out / manifest["outputs"]["mp4"][0])
    assert (written.height, written.width) == (64, 48) and written.rotation == 0


def test_a_full_disk_in_pyramid_all_tubes_is_one_line(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tubes are written one by one; the disk fills at the fourth: one line, nothing left."""
    import errno

    from saliency_tubes.commands.pipeline import outputs

    calls = {"n": 0}
    real = outputs.atomic_save_npy

    def filling(path, array):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, array)

    monkeypatch.setattr(outputs, "atomic_save_npy", filling)
    out = tmp_path / "out"
    code, _, stderr = _run(
        "pyramid",
        str(video),
        "--out",
        str(out),
        "--model",
        FACTORY,
        "--class",
        "0",
        "--depth",
        "1",
        "--all-tubes",
        "--quiet",
    )
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "No space left on device" in lines[0], stderr
    assert calls["n"] == 4 and not out.exists()


def test_a_real_full_disk(video: Path, tmp_path: Path) -> None:
    """A 1 MiB tmpfs fills while the videos are encoded (root with mount rights only)."""
    import shutil
    import subprocess

    disk = tmp_path / "full"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()[:80]})")
    try:
        (disk / "earlier.txt").write_text("an earlier result")
        big = _write_video(tmp_path / "big.mp4", frames=60, size=(240, 320))
        code, _, stderr = _explain(big, disk, "--format", "mp4,gif", "--classes", "top2")
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert "but got No space left on device; free some space" in lines[0]
        assert [p.name for p in disk.iterdir()] == ["earlier.txt"]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
        shutil.rmtree(disk, ignore_errors=True)


def test_no_progress_bars_in_a_log(video: Path, tmp_path: Path) -> None:
    """Off a terminal, stderr gets the stage messages as plain lines, no redrawn bars."""
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "saliency_tubes.cli",
            "explain",
            str(video),
            "--out",
            str(tmp_path / "out"),
            "--model",
            FACTORY,
            "--format",
            "mp4",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "\r" not in out.stderr and "\x1b" not in out.stderr
    lines = out.stderr.splitlines()
    assert lines and all(line.startswith("- ") for line in lines), out.stderr
    assert any(line.startswith("- rendering 20 frames") for line in lines)


def test_crf_and_x264_preset_reach_the_encoder(video: Path, tmp_path: Path) -> None:
    """--crf and --x264-preset set every mp4 output's encoder: a higher crf writes smaller
    files of the same frames, the manifest records the settings, the frame count stays."""
    sizes = {}
    for crf, preset in ((10, "superfast"), (40, "superfast"), (10, "medium")):
        out = tmp_path / f"{crf}-{preset}"
        code, _, stderr = _explain(
            video, out, "--crf", str(crf), "--x264-preset", preset, "--layouts", "heat"
        )
        assert code == 0, stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["options"]["encoder"] == {"codec": "libx264", "crf": crf, "preset": preset}
        (heat,) = out.glob("heat_1_*.mp4")
        assert probe(heat).num_frames == probe(video).num_frames
        sizes[crf, preset] = heat.stat().st_size
    assert sizes[40, "superfast"] < sizes[10, "superfast"] / 2
    assert sizes[10, "medium"] != sizes[10, "superfast"]  # another encoder setting took effect
