"""load_model's one-line errors (factories, class-name files, checkpoints) and where the
weights of a loaded model came from."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import saliency_tubes as st
from _models import HandNet, SmallResNet3D, hand_clip
from saliency_tubes.zoo import load_model, load_weights, read_categories, resnet3d
from saliency_tubes.zoo.checkpoints import is_safetensors
from saliency_tubes.zoo.loading import WEIGHTS_SOURCES

# --------------------------------------------------------------------------- factories


def raising_factory(num_classes: int | None = None) -> nn.Module:
    raise ValueError(f"no head of {num_classes} classes\nsecond line of the message")


def number_factory() -> int:
    return 42


def small_factory(num_classes: int = 5) -> nn.Module:
    return SmallResNet3D(num_classes=num_classes)


def test_a_factory_that_raises_is_one_line() -> None:
    spec = f"{__name__}:raising_factory"
    with pytest.raises(st.ModelLoadError) as info:
        load_model(spec, num_classes=3)
    assert str(info.value) == (
        f"expected factory {spec!r} to build a model, but it raised ValueError: no head of 3 "
        "classes; fix the factory or its arguments"
    )
    # A factory that takes no num_classes: the TypeError of the call is the reason given.
    with pytest.raises(
        st.ModelLoadError, match=r"^expected factory .* raised TypeError: .*num_classes"
    ):
        load_model(f"{__name__}:number_factory", num_classes=3)


def test_a_factory_that_returns_no_module_is_one_line() -> None:
    spec = f"{__name__}:number_factory"
    with pytest.raises(st.ModelLoadError) as info:
        load_model(spec)
    assert str(info.value) == (
        f"expected factory {spec!r} to return an nn.Module or a callable clip -> scores, "
        "but got int; return the model from the factory"
    )
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- class names


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b'["a", "b"', r"is not valid JSON \(Expecting ',' delimiter at line 1, column 10\)"),
        (b"\xff\xfeab\n", r"in UTF-8, but byte 0 \(0xff\) is not UTF-8; save the file as UTF-8"),
        (b'{"names": ["a"]}', r"but got the key 'names', which is no class index"),
        (b'["a", 2, "c"]', r"but the name of class 1 is 2; give every name as a string"),
        (b'{"0": "a", "1": ["b"]}', r"but the name of class 1 is \['b'\]"),
        (b'"a b c"', r"but got a str$"),
        (b"[]", r"but it holds no names$"),
    ],
)
def test_bad_class_name_files_are_one_line(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "names.json"
    path.write_bytes(content)
    with pytest.raises(st.ModelLoadError, match=match) as info:
        read_categories(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(st.ModelLoadError, match=match):
        load_model("tiny-actions", categories=path)


def test_non_utf8_text_file(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_bytes(b"take\nwash\n" + "café".encode("latin-1"))
    with pytest.raises(st.ModelLoadError, match=r"byte 13 \(0xe9\) is not UTF-8"):
        read_categories(path)


def test_valid_class_name_files_read_as_before(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text(json.dumps({"1": "b", "0": "a", "2": "c"}))
    assert read_categories(tmp_path / "m.json") == ("a", "b", "c")
    (tmp_path / "l.json").write_text(json.dumps(["x", "y", "z"]))
    assert read_categories(tmp_path / "l.json") == ("x", "y", "z")
    (tmp_path / "u.txt").write_text("café\nnaïve\n", encoding="utf-8")
    assert read_categories(tmp_path / "u.txt") == ("café", "naïve")


@pytest.mark.parametrize("count", [7, 9])
def test_class_names_must_be_one_per_class(tmp_path: Path, count: int) -> None:
    path = tmp_path / "names.txt"
    path.write_text("".join(f"c{i}\n" for i in range(count)))
    with pytest.raises(st.ModelLoadError) as info:
        load_model("tiny-actions", categories=path)
    assert str(info.value) == (
        f"expected 8 class names in {path} (the model has 8 classes: its classifier 'fc' has "
        f"8 outputs), but got {count}; give one name per class, in the order of the model's "
        "outputs"
    )
    with pytest.raises(st.ModelLoadError, match=r"^expected 3 class names in the class names"):
        load_model("resnet3d-18", num_classes=3, categories=["a", "b"])
    # A factory: the head's size is the num_classes asked for.
    with pytest.raises(st.ModelLoadError, match=r"^expected 4 class names .*num_classes is 4"):
        load_model(f"{__name__}:small_factory", num_classes=4, categories=path)
    # Or the classifier named.
    with pytest.raises(st.ModelLoadError, match=r"^expected 5 class names .*'fc' has 5"):
        load_model(f"{__name__}:small_factory", classifier="fc", categories=path)


def test_fitting_class_names_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_text("".join(f"c{i}\n" for i in range(5)))
    loaded = load_model(f"{__name__}:small_factory", categories=path)
    assert loaded.categories == ("c0", "c1", "c2", "c3", "c4")
    tiny = load_model("tiny-actions", num_classes=5, categories=path)
    assert tiny.categories == loaded.categories and tiny.model.fc.out_features == 5


def test_explainer_refuses_names_that_are_not_one_per_class() -> None:
    # A factory without a named head or num_classes: the count is known at the first call.
    with pytest.raises(
        st.InputError, match=r"^expected 3 class names, one per class score of the model, but got 2"
    ):
        st.SaliencyTubes(HandNet(), categories=["a", "b"])(hand_clip())
    tubes = st.GradCAM(HandNet(), categories=["a", "b", "c"])(hand_clip(), classes="b")
    assert tubes.names() == [["b"]]


# --------------------------------------------------------------------------- checkpoints


def test_a_plain_pickle_is_refused_without_warnings(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.pth"
    with path.open("wb") as fh:
        pickle.dump(resnet3d(10, num_classes=2).state_dict(), fh)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(st.ModelLoadError, match=r"^refused to unpickle plain.pth"):
            load_weights(resnet3d(10, num_classes=2), path)
    assert caught == []
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ""])
def test_safetensors_recognised_by_content(tmp_path: Path, suffix: str) -> None:
    source = resnet3d(10, num_classes=3)
    path = tmp_path / f"weights{suffix}"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    assert is_safetensors(path)
    target = load_weights(resnet3d(10, num_classes=3), path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_torch_files_are_not_taken_for_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(resnet3d(10, num_classes=3).state_dict(), path)
    assert not is_safetensors(path)
    (tmp_path / "short.bin").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{")
    assert not is_safetensors(tmp_path / "short.bin")  # the header would end past the file
    (tmp_path / "empty.bin").write_bytes(b"")
    assert not is_safetensors(tmp_path / "empty.bin")


# --------------------------------------------------------------------------- weights source


def test_weights_source_of_each_way_to_load(tmp_path: Path) -> None:
    assert WEIGHTS_SOURCES == ("shipped", "file", "download", "random", "factory")
    shipped = load_model("tiny-actions")
    assert (shipped.weights_source, shipped.random_weights) == ("shipped", False)
    assert shipped.weights == "tiny_actions.safetensors (shipped)"  # unchanged

    random = load_model("resnet3d-18", num_classes=3)
    assert (random.weights_source, random.random_weights, random.weights) == (
        "random",
        True,
        None,
    )

    path = tmp_path / "r18.pth"
    torch.save(resnet3d(18, num_classes=3).state_dict(), path)
    from_file = load_model("resnet3d-18", weights=path, num_classes=3)
    assert (from_file.weights_source, from_file.random_weights) == ("file", False)
    assert from_file.weights == str(path)

    factory = load_model(f"{__name__}:small_factory")
    assert (factory.weights_source, factory.random_weights, factory.weights) == (
        "factory",
        False,
        None,
    )
    small = tmp_path / "small.pth"
    torch.save(SmallResNet3D(num_classes=5).state_dict(), small)
    factory_file = load_model(f"{__name__}:small_factory", weights=small)
    assert factory_file.weights_source == "file" and factory_file.weights == str(small)


def test_weights_source_download_without_downloading(monkeypatch: pytest.MonkeyPatch) -> None:
    # A registered adapter whose builder would fetch named weights: the builder is
    # replaced by one that records the name, so nothing is downloaded.
    from dataclasses import replace

    from saliency_tubes.zoo import get_adapter, registry

    asked: list[str] = []

    def builder(*, pretrained: bool, weights: str | None = None, **_: object) -> nn.Module:
        asked.append(str(weights))
        return SmallResNet3D(num_classes=5)

    def names(text: str) -> str | None:
        return "KINETICS400_V1" if text.lower() == "kinetics400" else None

    adapter = replace(get_adapter("r3d_18"), builder=builder, weight_names=names)
    monkeypatch.setitem(registry._REGISTRY, "r3d_18", adapter)
    loaded = load_model("r3d_18", weights="kinetics400")
    assert asked == ["KINETICS400_V1"] and loaded.weights == "KINETICS400_V1"
    assert (loaded.weights_source, loaded.random_weights) == ("download", False)


def test_weights_source_is_checked() -> None:
    with pytest.raises(st.ModelLoadError, match=r"^expected weights_source one of shipped, file"):
        st.zoo.LoadedModel(
            model=HandNet(),
            name="hand",
            layer=None,
            classifier=None,
            preset=st.zoo.Preset(),
            categories=None,
            weights=None,
            weights_source="trained",
        )
