"""Option objects: checked once, one-line errors; model options picklable for workers."""

from __future__ import annotations

import pickle

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
    ("options", "fragment"),
    [
        (
            ExplainOptions(layouts=()),
            "expected layouts among heat, focus, side_by_side, but got none",
        ),
        (ExplainOptions(background="pink"), "expected background one of black, dark, blur, gray"),
        (ExplainOptions(align="middle"), "expected align one of corners, centers"),
        (ExplainOptions(opacity=2.0), "opacity and floor in [0, 1]"),
        (ExplainOptions(frames=1), "at least 2 frames"),
        (CompareOptions(style="grid"), "expected style one of focus, heat"),
        (CompareOptions(contrast=("a", "A")), "two different classes"),
        (CompareOptions(cols=0), "cols >= 1"),
        (PyramidOptions(per_level=0), "per_level >= 1"),
        (EvaluateOptions(units=("pixel",)), "expected units among voxel, frame, tube"),
        (EvaluateOptions(methods=("cam", "lemon")), "but got lemon"),
        (ModelOptions(device="tpu"), "expected --device cpu, cuda[:N] or mps"),
        (ModelOptions(mean=(0.5, 0.5)), "expected --mean as three numbers"),
    ],
)
def test_bad_options_are_one_line(options: object, fragment: str) -> None:
    with pytest.raises(InputError) as caught:
        options.check()  # type: ignore[attr-defined]
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
