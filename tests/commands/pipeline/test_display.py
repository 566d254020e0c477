"""Results in Jupyter: ``_repr_html_`` of Tubes, of a command's result and of a batch's.

The HTML is read back: the thumbnails' pixels decoded and compared with the colour map at
the tube's values, the embedded video decoded and compared with the file, the numbers
compared with the result's own."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import saliency_tubes as st
from saliency_tubes.commands import BatchResult
from saliency_tubes.commands.pipeline.display import shown_media
from saliency_tubes.display import media_html, tubes_html
from saliency_tubes.numbers import probability
from saliency_tubes.render.frames import colormap

DATA_URI = re.compile(r'src="data:([\w/]+);base64,([A-Za-z0-9+/=]+)"')


def _decoded(html: str) -> list[tuple[str, bytes]]:
    return [(kind, base64.b64decode(data)) for kind, data in DATA_URI.findall(html)]


def _tubes(maps: torch.Tensor, categories: tuple[str, ...] | None = None) -> st.Tubes:
    n, k = maps.shape[:2]
    return st.Tubes(
        maps=maps,
        raw=maps[:, :, :, ::4, ::4],
        classes=torch.tensor([[2, 0][:k]] * n),
        scores=torch.tensor([[0.75, 0.004][:k]] * n),
        logits=torch.zeros(n, 3),
        method="cam",
        layer="layer4",
        classifier="fc",
        categories=categories,
    )


def test_tubes_show_evenly_spaced_frames_in_the_colour_map() -> None:
    # Frame t of class j is the constant (t + j) / 10: every pixel of a thumbnail is the
    # jet colour of that level.
    t = torch.arange(10, dtype=torch.float32)
    values = torch.stack([t / 10, (t + 1) / 10])  # (K=2, T=10)
    maps = values[None, :, :, None, None].expand(1, 2, 10, 40, 30).contiguous()
    html = _tubes(maps, categories=("a<b>", "walk", "run"))._repr_html_()
    images = _decoded(html)
    assert len(images) == 2 * 6  # two classes, six of the ten frames
    shown = [0, 2, 4, 5, 7, 9]  # round(i * 9 / 5)
    assert re.findall(r'title="frame (\d+)"', html) == [str(f) for f in shown] * 2
    lut = colormap("jet")
    for n, (kind, png) in enumerate(images):
        assert kind == "image/png"
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        assert pixels.shape == (40, 30, 3)  # small already: not subsampled
        j, f = divmod(n, 6)
        level = int(np.rint(values[j, shown[f]].numpy() * np.float32(255)))  # float32, as shown
        assert (pixels == lut[level]).all()
    # class names escaped, probabilities with the digits that matter
    assert "run<br>p=0.75" in html and "a&lt;b&gt;<br>p=0.004" in html
    assert "cam on layer4" in html and "1×2×10×40×30" in html


def test_large_maps_are_subsampled_not_resized() -> None:
    maps = torch.rand(1, 1, 3, 200, 100, generator=torch.Generator().manual_seed(0))
    html = tubes_html(_tubes(maps), size=96)
    (kind, png), *_ = _decoded(html)
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert pixels.shape == (67, 34, 3)  # every 3rd pixel: ceil(200 / 96) = 3
    expected = colormap("jet")[np.rint(maps[0, 0, 0, ::3, ::3].numpy() * 255).astype(int)]
    assert (pixels == expected).all()
    assert "class 2<br>" in html  # no categories: the index


def test_tubes_say_what_they_leave_out() -> None:
    maps = torch.zeros(2, 2, 4, 8, 8)
    tubes = _tubes(maps)
    html = tubes_html(tubes, classes=1)
    assert "1 more class(es) not shown; sample 0 of 2" in html
    assert html.count("<img") == 4
    agnostic = st.Tubes(**{**tubes.__dict__, "class_agnostic": True})
    assert "class-agnostic" in agnostic._repr_html_()


def test_media_is_embedded_when_small_and_linked_when_large(tmp_path: Path) -> None:
    video = tmp_path / "side_by_side_1_x.mp4"
    video.write_bytes(b"\x00\x01not really a video")
    small = media_html(video)
    assert small.startswith("<video") and _decoded(small) == [("video/mp4", video.read_bytes())]
    large = media_html(video, limit=4)
    assert "<video" not in large and 'href="' in large and "not embedded" in large
    assert "(not found)" in media_html(tmp_path / "gone.mp4")


def test_the_shown_file_is_the_side_by_side_video(tmp_path: Path) -> None:
    files = {
        "mp4": [tmp_path / "heat_1_a.mp4", tmp_path / "side_by_side_1_a.mp4"],
        "gif": [tmp_path / "side_by_side_1_a.gif"],
        "npy": [tmp_path / "tube.npy"],
    }
    assert shown_media(files) == tmp_path / "side_by_side_1_a.mp4"
    assert shown_media({"png": [tmp_path / "pyramid.png"]}) == tmp_path / "pyramid.png"
    assert shown_media({"npy": [tmp_path / "tube.npy"]}) is None


def test_an_explain_result_shows_its_classes_and_its_video(
    clip_path: Path, tiny: st.LoadedModel, tmp_path: Path
) -> None:
    result = st.explain_video(
        clip_path,
        tmp_path / "out",
        tiny,
        st.ExplainOptions(classes="top2", formats=("mp4", "html")),
    )
    html = result._repr_html_()
    rows = re.findall(r"<tr><td>([^<]*)</td><td[^>]*>(\d+)</td><td[^>]*>([^<]*)</td>", html)
    assert rows == [(t.name, str(t.index), probability(t.score)) for t in result.tubes]
    assert len(rows) == 2
    (kind, data), *rest = _decoded(html)
    assert not rest and kind == "video/mp4"
    assert data == (result.out_dir / f"side_by_side_1_{result.tubes[0].name}.mp4").read_bytes()
    assert "knows only 8 synthetic motion classes" in html  # the model's caveat
    (href,) = re.findall(
        r'Report \(opens in the browser\): <a href="([^"]+)">report.html</a>', html
    )
    assert Path(href).resolve() == (result.out_dir / "report.html").resolve()


def test_random_weights_are_said(tmp_path: Path) -> None:
    manifest = {"model": {"name": "r3d_18", "random_weights": True}, "seconds": 1.5}
    result = st.CommandResult("explain", tmp_path, manifest, {})
    html = result._repr_html_()
    assert "r3d_18 has random weights (untrained)" in html and "in 1.5 s" in html


def test_a_batch_result_shows_its_summary(tmp_path: Path) -> None:
    summary = {
        "videos": 3,
        "ok": 2,
        "failed": 1,
        "accuracy": 0.5,
        "labelled": 2,
        "random_weights": True,
        "confusions": [{"label": "grow", "pred": "shrink", "videos": 1}],
        "per_class": {
            "grow": {
                "videos": 1,
                "accuracy": 0.0,
                "score": 0.61,
                "fraction_above": 0.25,
                "spread": 0.1,
                "pointing": None,
                "mass": None,
                "iou": None,
            },
            "shrink": {
                "videos": 1,
                "accuracy": 1.0,
                "score": 0.9,
                "fraction_above": 0.125,
                "spread": 0.2,
                "pointing": 1.0,
                "mass": 0.5,
                "iou": 0.25,
            },
        },
        "failures": [{"video_id": "x", "path": "bad <1>.mp4", "error": "expected a video"}],
    }
    result = BatchResult(tmp_path, tmp_path / "index.parquet", [], summary, ran=2, skipped=1)
    html = result._repr_html_()
    assert "3 video(s), 2 ok, 1 failed (2 explained by this run, 1 done before)" in html
    assert "accuracy 0.500 on 2 labelled" in html and "random weights" in html
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html)
    assert cells[:9] == ["grow", "1", "0", "0.61", "0.25", "0.1", "-", "-", "-"]
    assert cells[9:18] == ["shrink", "1", "1", "0.9", "0.125", "0.2", "1", "0.5", "0.25"]
    assert cells[18:21] == ["grow", "shrink", "1"]
    assert "bad &lt;1&gt;.mp4" in html


def test_the_views_run_no_model_and_decode_no_video(
    clip_path: Path, tiny: st.LoadedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import av

    result = st.explain_video(clip_path, tmp_path / "out", tiny, st.ExplainOptions(classes="top1"))
    clip = torch.rand(1, 3, 16, 96, 96, generator=torch.Generator().manual_seed(1))
    tubes = tiny.explainer("cam")(clip, classes="top2")

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("a view ran a model or opened a video")

    monkeypatch.setattr(torch.nn.Module, "__call__", refused)
    monkeypatch.setattr(av, "open", refused)
    assert "<video" in result._repr_html_()
    assert tubes._repr_html_().count("<img") == 2 * 6
