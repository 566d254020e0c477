"""Option objects: checked once, one-line errors; model options picklable for workers."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import torch

from saliency_tubes.cli import parse
from saliency_tubes.commands import (
    CompareOptions,
    EvaluateOptions,
    ExplainOptions,
    InputError,
    ModelOptions,
    PyramidOptions,
)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (
            lambda: ExplainOptions(layouts=()),
            "expected layouts among heat, focus, side_by_side, but got none",
        ),
        (
            lambda: ExplainOptions(background="pink"),
            "expected background one of black, dark, blur, gray",
        ),
        (lambda: ExplainOptions(align="middle"), "expected align one of corners, centers"),
        (lambda: ExplainOptions(opacity=2.0), "opacity and floor in [0, 1]"),
        (lambda: ExplainOptions(frames=1), "at least 2 frames"),
        (lambda: CompareOptions(style="grid"), "expected style one of focus, heat"),
        (lambda: CompareOptions(contrast=("a", "A")), "two different classes"),
        (lambda: CompareOptions(cols=0), "cols >= 1"),
        (lambda: PyramidOptions(per_level=0), "per_level >= 1"),
        (lambda: EvaluateOptions(units=("pixel",)), "expected units among voxel, frame, tube"),
        (lambda: EvaluateOptions(methods=("cam", "lemon")), "but got lemon"),
        (lambda: ModelOptions(device="tpu"), "expected --device cpu, cuda[:N] or mps"),
        (lambda: ModelOptions(mean=(0.5, 0.5)), "expected --mean as three numbers"),
    ],
)
def test_bad_options_are_one_line(make: Any, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        make()  # checked where made
    message = str(caught.value)
    assert fragment in message and len(message.splitlines()) == 1


def test_model_options_load_and_pickle() -> None:
    spec = ModelOptions(name="tiny-actions")
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec
    loaded = again.load()
    assert loaded.name == "tiny-actions" and not loaded.model.training
    assert next(loaded.model.parameters()).device == torch.device("cpu")


def test_parse_text_values() -> None:
    assert parse.class_spec("Top3") == "top3" and parse.class_spec("3,take") == [3, "take"]
    assert parse.windows("16,8") == (16, 8) and parse.windows(None) is None
    assert parse.rgb("0.5,0.25,1", "--mean") == (0.5, 0.25, 1.0)
    assert parse.names("MP4, npy,") == ("mp4", "npy")
    assert parse.per_model("a=x.pth", ["a", "b"], "--weights", "PATH") == {"a": "x.pth"}
    flags = {"model_name": "r3d_18", "device": "cpu", "mean": "0.1,0.2,0.3"}
    assert parse.model_options(flags, weights="w.pth") == ModelOptions(
        name="r3d_18", weights="w.pth", mean=(0.1, 0.2, 0.3)
    )
    for call, fragment in (
        (lambda: parse.windows("16"), "LEN,STRIDE"),
        (lambda: parse.rgb("1,2", "--std"), "--std R,G,B"),
        (lambda: parse.pair("take"), "two different classes"),
        (lambda: parse.per_model("c=x", ["a"], "--weights", "PATH"), "MODEL=PATH"),
        (lambda: parse.positive("0", "--num-classes"), "positive integer"),
    ):
        with pytest.raises(InputError, match=fragment):
            call()


def _every_options() -> list[Any]:
    """One options object of each kind, with non-default values of every JSON-able type
    (tuples, lists, nested records, None, floats), as the command line makes them."""
    from pathlib import Path

    from saliency_tubes.commands.batch.run import BatchOptions
    from saliency_tubes.commands.batch.worker import BatchSettings
    from saliency_tubes.metrics.benchmark import Protocol

    return [
        ModelOptions(name="r3d_18", weights="w.pth", categories=("a", "b"), mean=(0.1, 0.2, 0.3)),
        ExplainOptions(classes=[3, "take"], windows=(16, 8), formats=("npy",), start=1.5),
        CompareOptions(classes="top3", contrast=("take", 2), cols=2, layouts=("heat",)),
        PyramidOptions(target="shrink", layers=("a.conv", "b.conv"), depth=2, top_n=3),
        EvaluateOptions(methods=("cam",), units=("tube",), protocol=Protocol(steps=4)),
        BatchOptions(workers=2, shard=(1, 3), timeout=5.0),
        BatchSettings(
            ModelOptions(categories=("a", "b")),
            ExplainOptions(windows=(16, 8), formats=("npy",)),
            Path("out/videos"),
            threads=1,
        ),
    ]


@pytest.mark.parametrize("options", _every_options(), ids=lambda o: type(o).__name__)
def test_options_round_trip_through_plain_data(options: Any) -> None:
    import json

    plain = options.to_dict()
    assert json.loads(json.dumps(plain)) == plain  # JSON-able as it is
    again = type(options).from_dict(plain)
    assert again == options and type(again) is type(options)
    assert type(options).from_dict(json.loads(json.dumps(plain))) == options


def test_from_dict_refuses_a_key_that_is_no_option() -> None:
    with pytest.raises(InputError, match="expected explain options among method, "):
        ExplainOptions.from_dict({"method": "cam", "colour": "red"})
    with pytest.raises(InputError, match="expected crf an integer"):
        ExplainOptions.from_dict({"crf": 99})  # checked as when made


def test_check_runs_once_per_options_object(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, clip_path: Any
) -> None:
    """Made and checked once: neither the command line nor the command checks again."""
    from click.testing import CliRunner

    from saliency_tubes.cli import main

    calls: list[int] = []
    for cls in (ExplainOptions, ModelOptions):
        original = cls.check

        def counted(self: Any, _original: Any = original) -> None:
            calls.append(id(self))
            _original(self)

        monkeypatch.setattr(cls, "check", counted)
    args = ["explain", str(clip_path), "--out", str(tmp_path / "o"), "--format", "npy", "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert len(calls) == 2 and len(set(calls)) == 2  # the explain and the model options
    calls.clear()
    options = CompareOptions(formats=("npy",), progress=False)
    assert len(calls) == 1  # CompareOptions.check calls ExplainOptions.check: one call
    from saliency_tubes import load_model
    from saliency_tubes.commands import compare_classes

    compare_classes(clip_path, tmp_path / "c", load_model("tiny-actions"), options)
    assert calls == [id(options)]


def test_the_batch_fingerprint_is_what_it_was_before_to_dict() -> None:
    """``BatchSettings.describe`` now serialises through ``to_dict``: the fingerprint of the
    same settings is the one the code before it gave (b8bfe298230830f6, computed at
    1c708bc), so a re-run still skips every finished video."""
    from pathlib import Path

    from saliency_tubes.commands.batch.inputs import Item, fingerprint
    from saliency_tubes.commands.batch.worker import BatchSettings

    settings = BatchSettings(
        ModelOptions(weights=Path("w.pth"), categories=("a", "b"), mean=(0.1, 0.2, 0.3)),
        ExplainOptions(
            classes=[3, "take"], windows=(16, 8), formats=("mp4", "npy"), start=1.5, progress=False
        ),
        Path("videos"),
    )
    item = Item(Path("/nonexistent/v.mp4"), "v-1", label="take", gt=Path("/nonexistent/gt.json"))
    described = settings.describe()
    assert fingerprint(described, item, [Path("/nonexistent/w.pth")]) == "b8bfe298230830f6"
    assert "progress" not in described["explain"] and "device" not in described["model"]
