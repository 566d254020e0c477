"""Class feature pyramids: hand-computed back-steps, channel tracing, model safety, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

import saliency_tubes as st
from _clips import CLIPS
from _models import SmallResNet3D, hooks_left
from saliency_tubes.channels import trace_channels
from saliency_tubes.cli import main
from saliency_tubes.commands.demo import DEMO_FPS, DEMO_FRAMES, DEMO_SEED, DEMO_SIZE
from saliency_tubes.render import display_frames, draw_pyramid, drawn_nodes
from saliency_tubes.synthetic import CLASSES, make_clip
from saliency_tubes.video import VideoWriter, probe, read_frames, sample_uniform
from saliency_tubes.zoo import load_model
from saliency_tubes.zoo.nets.densenet3d import DenseNet3D
from saliency_tubes.zoo.nets.resnet3d import Bottleneck, ResNet3D

SHARED = CLIPS


# --------------------------------------------------------------------------------------
# A network whose dependency paths are known by construction
# --------------------------------------------------------------------------------------

P = torch.zeros(4, 4)
P[0, 0], P[0, 1], P[1, 0] = 8.0, 4.0, 4.0  # mean 1, top-left corner
Q = torch.zeros(4, 4)
Q[3, 3], Q[3, 2], Q[2, 3] = 16.0, 8.0, 8.0  # mean 2, bottom-right corner
K2 = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 1.0], [0.25, 0.25, 0.0]])


class PathNet(nn.Module):
    """x (2 ch) -> conv1 1x1x1 -> ReLU -> conv2 2x1x1 -> ReLU -> conv3 1x1x1 -> pool -> fc.

    On :func:`path_clip` (channels P and Q, constant in time, all values >= 0, so the ReLUs
    pass everything): conv1's outputs are a = (P, Q, P + Q) with means (1, 2, 3); conv2's
    kernel (k, j) has taps (2 K2[k, j], 0) in time, so its mean over (t, h, w) is K2[k, j]
    and its output is b_k = 2 sum_j K2[k, j] a_j with means (1, 6, 1.5); conv3 mixes b with
    W3 = [[1, 0, 0], [0, .5, .5]]; fc has rows (1, -1) and (.2, .8).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(2, 3, 1, bias=False)
        self.conv2 = nn.Conv3d(3, 3, (2, 1, 1), bias=False)
        self.conv3 = nn.Conv3d(3, 2, 1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(2, 2)
        self.explode_on_call: int | None = None
        self.calls = 0
        with torch.no_grad():
            self.conv1.weight.copy_(
                torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]).view(3, 2, 1, 1, 1)
            )
            taps = torch.stack([2 * K2, torch.zeros(3, 3)], dim=2)  # (3, 3, 2)
            self.conv2.weight.copy_(taps.view(3, 3, 2, 1, 1))
            self.conv3.weight.copy_(
                torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]).view(2, 3, 1, 1, 1)
            )
            self.fc.weight.copy_(torch.tensor([[1.0, -1.0], [0.2, 0.8]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        y = self.conv3(self.relu(self.conv2(self.relu(self.conv1(x)))))
        if self.explode_on_call == self.calls:
            raise RuntimeError("boom")
        return self.fc(self.pool(y).flatten(1))


def path_clip() -> torch.Tensor:
    """(1, 2, 2, 4, 4): channel 0 is P, channel 1 is Q, in both frames."""
    return torch.stack([P.expand(2, 4, 4), Q.expand(2, 4, 4)]).unsqueeze(0).clone()


def edges(pyramid: st.ClassFeaturePyramid) -> dict[tuple[str, str], tuple[int, float, float]]:
    return {
        (n.id, e.child): (e.channel, e.contribution, e.score)
        for n in pyramid.nodes.values()
        for e in n.children
    }


def test_recovers_the_known_path_and_its_scores() -> None:
    pyramid = st.class_feature_pyramid(PathNet(), path_clip(), 0, depth=3, threshold=0.6)
    # class 0 weighs feature 0 (w = 1 vs -1); conv3 kernel 0 reads only b0 (c = [1, 0, 0]);
    # conv2 kernel 0 reads only a0 (c = [.5 * 1, 0, 0]); a0 is conv1 kernel 0.
    assert list(pyramid.nodes) == ["class", "1:conv3:0", "2:conv2:0", "3:conv1:0"]
    assert edges(pyramid) == {
        ("class", "1:conv3:0"): (0, 1.0, 1.0),
        ("1:conv3:0", "2:conv2:0"): (0, 1.0, 1.0),
        ("2:conv2:0", "3:conv1:0"): (0, 0.5, 1.0),
    }
    assert pyramid.features == (0,)
    assert pyramid.feature_layer == "conv3" and pyramid.classifier == "fc"
    assert [n.grid for n in pyramid.nodes.values()] == [(1, 4, 4), (1, 4, 4), (1, 4, 4), (2, 4, 4)]
    logits = torch.tensor(
        [1.0 - 3.75, 0.2 * 1.0 + 0.8 * 3.75]
    )  # means of f0 = P, f1 = 1.25 (P + Q)
    assert pyramid.logit == pytest.approx(float(logits[0]), abs=1e-5)
    assert pyramid.probability == pytest.approx(float(torch.softmax(logits, 0)[0]), abs=1e-6)


def test_threshold_keeps_the_documented_children() -> None:
    pyramid = st.class_feature_pyramid(PathNet(), path_clip(), 1, depth=3, threshold=0.2)
    # conv3 kernel 1: c = .5 * (6, 1.5) on channels 1, 2 -> s = (0, 1, .25);
    # conv2 kernel 1: c = (0, 0, 1 * 3) -> channel 2; kernel 2: c = (.25, .5, 0) -> s = (.5, 1, 0).
    assert edges(pyramid) == {
        ("class", "1:conv3:1"): (1, pytest.approx(0.8), 1.0),
        ("1:conv3:1", "2:conv2:1"): (1, 3.0, 1.0),
        ("1:conv3:1", "2:conv2:2"): (2, 0.75, 0.25),
        ("2:conv2:1", "3:conv1:2"): (2, 3.0, 1.0),
        ("2:conv2:2", "3:conv1:1"): (1, 0.5, 1.0),
        ("2:conv2:2", "3:conv1:0"): (0, 0.25, 0.5),
    }
    nodes = pyramid.nodes
    assert [n.id for n in pyramid.levels()[3]] == ["3:conv1:2", "3:conv1:1", "3:conv1:0"]
    assert [nodes[k].support for k in ("2:conv2:1", "2:conv2:2")] == [1.0, 0.25]
    assert [nodes[k].support for k in ("3:conv1:2", "3:conv1:1", "3:conv1:0")] == [1.0, 0.25, 0.125]
    assert nodes["3:conv1:0"].score == 0.5 and nodes["3:conv1:0"].parents == ("2:conv2:2",)

    strict = st.class_feature_pyramid(PathNet(), path_clip(), 1, depth=3, threshold=0.6)
    assert list(strict.nodes) == ["class", "1:conv3:1", "2:conv2:1", "3:conv1:2"]
    one = st.class_feature_pyramid(PathNet(), path_clip(), 1, depth=3, threshold=0.0, top_n=1)
    assert list(one.nodes) == list(strict.nodes)
    everything = st.class_feature_pyramid(PathNet(), path_clip(), 1, depth=2, threshold=0.0)
    assert everything.features == (1, 0)  # best first; s = 0 passes θ = 0
    assert [len(level) for level in everything.levels()] == [1, 2, 3]


def test_depth_one_is_the_feature_selection_of_saliency_tubes() -> None:
    model, clip = PathNet(), path_clip()
    pyramid = st.class_feature_pyramid(model, clip, 1, depth=1, threshold=0.6)
    assert list(pyramid.nodes) == ["class", "1:conv3:1"]
    expected = st.SaliencyTubes(model, weight_threshold=0.6)(clip, classes=[1]).maps[0, 0]
    torch.testing.assert_close(pyramid.tube("class"), expected)
    # the raw class tube is the selected feature weighted: .8 * f1 = .8 * 1.25 (P + Q)
    torch.testing.assert_close(pyramid.raw["class"], (P + Q).unsqueeze(0), rtol=0, atol=1e-5)


def test_node_tubes_are_the_kernels_responses() -> None:
    pyramid = st.class_feature_pyramid(PathNet(), path_clip(), 0, depth=3, threshold=0.6)
    torch.testing.assert_close(pyramid.raw["3:conv1:0"], P.expand(2, 4, 4))  # a0 = P
    torch.testing.assert_close(pyramid.raw["2:conv2:0"], P.unsqueeze(0))  # b0 = 2 * .5 * P
    expected = st.normalize_tubes(st.upsample(P.expand(1, 1, 2, 4, 4), (2, 4, 4)))[0, 0]
    torch.testing.assert_close(pyramid.tube("3:conv1:0"), expected)
    assert pyramid.tube("3:conv1:0")[0, 0, 0] == 1.0 and pyramid.tube("3:conv1:0")[1, 3, 3] == 0.0
    together = pyramid.tubes()
    assert list(together) == list(pyramid.nodes)
    for key, tube in together.items():
        torch.testing.assert_close(tube, pyramid.tube(key))


def test_json_holds_the_graph() -> None:
    pyramid = st.class_feature_pyramid(
        PathNet(), path_clip(), "b", depth=3, threshold=0.2, categories=["a", "b"]
    )
    data = json.loads(pyramid.to_json())
    assert data == json.loads(json.dumps(pyramid.to_dict()))
    assert data["class"]["name"] == "b" and data["threshold"] == 0.2 and data["levels_reached"] == 3
    assert [level["layers"] for level in data["levels"]] == [
        ["fc"],
        ["conv3"],
        ["conv2"],
        ["conv1"],
    ]
    node = next(n for n in data["nodes"] if n["id"] == "2:conv2:2")
    assert node == {
        "id": "2:conv2:2",
        "level": 2,
        "layer": "conv2",
        "kernel": 2,
        "score": 0.25,
        "support": 0.25,
        "grid": [1, 4, 4],
        "parents": ["1:conv3:1"],
        "children": [
            {"id": "3:conv1:1", "channel": 1, "contribution": 0.5, "score": 1.0},
            {"id": "3:conv1:0", "channel": 0, "contribution": 0.25, "score": 0.5},
        ],
    }


def test_named_layers_give_the_same_graph_and_are_checked() -> None:
    traced = st.class_feature_pyramid(PathNet(), path_clip(), 1, threshold=0.2)
    named = st.class_feature_pyramid(
        PathNet(), path_clip(), 1, threshold=0.2, layers=["conv3", "conv2", "conv1"]
    )
    assert named.to_dict() == traced.to_dict()
    with pytest.raises(st.LayerNotFoundError, match="expected layers\\[0\\] 'conv2' to have 2"):
        st.class_feature_pyramid(PathNet(), path_clip(), 1, layers=["conv2"])
    with pytest.raises(st.LayerNotFoundError, match="expected layers\\[3\\] 'conv1' to have 2"):
        st.class_feature_pyramid(
            PathNet(), path_clip(), 1, layers=["conv3", "conv2", "conv1", "conv1"]
        )
    with pytest.raises(st.LayerNotFoundError, match="nn.Conv3d, but 'relu'"):
        st.class_feature_pyramid(PathNet(), path_clip(), 1, layers=["conv3", "relu"])
    with pytest.raises(st.InputError, match="expected depth <= 2"):
        st.class_feature_pyramid(PathNet(), path_clip(), 1, depth=3, layers=["conv3", "conv2"])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"threshold": 1.5}, st.InputError, "expected threshold in \\[0, 1\\]"),
        ({"threshold": -0.1}, st.InputError, "expected threshold in \\[0, 1\\]"),
        ({"depth": 0}, st.InputError, "expected depth to be an int >= 1"),
        ({"depth": 4}, st.InputError, "expected depth between 1 and 3 for PathNet"),
        ({"top_n": 0}, st.InputError, "expected top_n to be None or an int >= 1"),
        ({"target": "top2"}, st.ClassSelectionError, "expected one class"),
        ({"target": 5}, st.ClassSelectionError, "out of range"),
        ({"target": "c", "categories": ["a", "b"]}, st.ClassSelectionError, "unknown class name"),
    ],
)
def test_bad_input_is_one_line_error(kwargs: dict[str, Any], error: type, message: str) -> None:
    model = PathNet()
    target = kwargs.pop("target", 0)
    with pytest.raises(error, match=message) as info:
        st.class_feature_pyramid(model, path_clip(), target, **kwargs)
    assert "\n" not in str(info.value)
    assert hooks_left(model) == 0


def test_one_clip_only() -> None:
    with pytest.raises(st.InputError, match="expected one clip"):
        st.class_feature_pyramid(PathNet(), path_clip().repeat(2, 1, 1, 1, 1), 0)


@pytest.mark.parametrize("explode_on_call", [None, 1, 2])
def test_model_comes_back_unchanged(explode_on_call: int | None) -> None:
    model = PathNet().train()
    model.conv2.weight.requires_grad_(False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.explode_on_call = explode_on_call  # 1: the tracing pass, 2: the response pass
    if explode_on_call is None:
        st.class_feature_pyramid(model, path_clip(), 0, layer="conv3", classifier="fc")
    else:
        with pytest.raises(RuntimeError, match="boom"):
            st.class_feature_pyramid(model, path_clip(), 0, layer="conv3", classifier="fc")
    assert hooks_left(model) == 0
    assert torch._C._len_torch_function_stack() == 0
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [True, False, True, True, True]
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


# --------------------------------------------------------------------------------------
# Channel tracing through the zoo's blocks
# --------------------------------------------------------------------------------------


def _chain(pyramid: st.ClassFeaturePyramid) -> list[set[str]]:
    return [{n.layer for n in level} for level in pyramid.levels()[1:]]


def _scores_by_hand(model: nn.Module, clip: torch.Tensor, conv: str, kernel: int) -> torch.Tensor:
    """min-max(mean_thw W[kernel] * mean_THW input), with the input captured by a plain hook."""
    module = dict(model.named_modules())[conv]
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].detach().clone())
    )
    try:
        with torch.no_grad():
            model.eval()(clip)
    finally:
        handle.remove()
    c = module.weight[kernel].detach().double().mean(dim=(1, 2, 3)) * seen[0][0].double().mean(
        dim=(1, 2, 3)
    )
    return (c - c.min()) / (c.max() - c.min())


def test_residual_blocks_are_followed_along_the_main_path() -> None:
    model, clip = (
        SmallResNet3D(),
        torch.randn(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0)),
    )
    pyramid = st.class_feature_pyramid(model, clip, 2, depth=5, threshold=0.5)
    # layer2's output adds conv2's branch (2 convs deep in the block) and the 1x1 shortcut
    # (1 conv): the deeper branch owns the channels, so the shortcut never appears.
    assert _chain(pyramid) == [
        {"layer2.0.conv2"},
        {"layer2.0.conv1"},
        {"layer1.0.conv2"},
        {"layer1.0.conv1"},
        {"stem.0"},
    ]
    top = pyramid.levels()[1][0]
    scores = _scores_by_hand(model, clip, "layer2.0.conv2", top.kernel)
    got = {e.channel: e.score for e in top.children}
    assert got == {j: pytest.approx(float(s), abs=1e-6) for j, s in enumerate(scores) if s >= 0.5}


def test_bottleneck_blocks() -> None:
    torch.manual_seed(0)
    model = ResNet3D(Bottleneck, (1, 1, 1, 1), num_classes=3, widths=(4, 4, 4, 4), no_max_pool=True)
    clip = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    pyramid = st.class_feature_pyramid(model, clip, 0, depth=4, threshold=0.7)
    assert _chain(pyramid) == [
        {"layer4.0.conv3"},
        {"layer4.0.conv2"},
        {"layer4.0.conv1"},
        {"layer3.0.conv3"},
    ]
    node = pyramid.levels()[2][0]
    scores = _scores_by_hand(model, clip, "layer4.0.conv2", node.kernel)
    assert {e.channel: e.score for e in node.children} == {
        j: pytest.approx(float(s), abs=1e-6) for j, s in enumerate(scores) if s >= 0.7
    }


def test_densenet_concatenation_maps_channels_to_their_layers() -> None:
    torch.manual_seed(0)
    model = DenseNet3D((2, 2), num_classes=2, growth_rate=4, num_init_features=8, bn_size=2)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.weight[0, [3, 9, 14]] = torch.tensor([1.0, 0.9, 0.8])
    clip = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(2))
    pyramid = st.class_feature_pyramid(model, clip, 0, depth=3, threshold=0.6)
    # relu5 = norm5(cat[transition1 (8 ch), denselayer1 new (4), denselayer2 new (4)])
    block = "features.denseblock2"
    assert [n.id for n in pyramid.levels()[1]] == [
        "1:features.transition1.conv:3",
        f"1:{block}.denselayer1.conv2:1",
        f"1:{block}.denselayer2.conv2:2",
    ]
    assert {e.child: e.channel for e in pyramid.root.children} == {
        "1:features.transition1.conv:3": 3,
        f"1:{block}.denselayer1.conv2:1": 9,
        f"1:{block}.denselayer2.conv2:2": 14,
    }
    # denselayer2.conv1 reads cat[block input, denselayer1's new channels]: two layers
    everything = st.class_feature_pyramid(model, clip, 0, depth=3, threshold=0.0)
    node = everything.nodes[f"2:{block}.denselayer2.conv1:0"]
    children = {everything.nodes[e.child].layer: [] for e in node.children}
    for e in node.children:
        children[everything.nodes[e.child].layer].append(e.channel)
    assert sorted(children) == [f"{block}.denselayer1.conv2", "features.transition1.conv"]
    assert sorted(children["features.transition1.conv"]) == list(range(8))
    assert sorted(children[f"{block}.denselayer1.conv2"]) == list(range(8, 12))


class _Conv2Plus1D(nn.Sequential):
    """torchvision's factorised conv: spatial 1x3x3, BN, ReLU, temporal 3x1x1."""

    def __init__(self, cin: int, cout: int, mid: int) -> None:
        super().__init__(
            nn.Conv3d(cin, mid, (1, 3, 3), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, cout, (3, 1, 1), padding=(1, 0, 0), bias=False),
        )


class _Block(nn.Module):
    """torchvision's BasicBlock order: conv1, conv2, then the shortcut, add, ReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(_Conv2Plus1D(c, c, 5), nn.BatchNorm3d(c), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(_Conv2Plus1D(c, c, 5), nn.BatchNorm3d(c))
        self.downsample = nn.Sequential(nn.Conv3d(c, c, 1, bias=False), nn.BatchNorm3d(c))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        out += self.downsample(x)
        return self.relu(out)


class MiniR2Plus1D(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.stem = nn.Sequential(
            nn.Conv3d(3, 6, (1, 3, 3), padding=(0, 1, 1)), nn.ReLU(inplace=True)
        )
        self.layer1 = nn.Sequential(_Block(6))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.avgpool(self.layer1(self.stem(x))).flatten(1))


def test_factorised_convolutions_are_two_levels() -> None:
    model, clip = (
        MiniR2Plus1D(),
        torch.randn(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(4)),
    )
    pyramid = st.class_feature_pyramid(model, clip, 0, depth=5, threshold=0.5)
    assert _chain(pyramid) == [
        {"layer1.0.conv2.0.3"},  # temporal 3x1x1 (the shortcut, called later, is shallower)
        {"layer1.0.conv2.0.0"},  # spatial 1x3x3: its mid channels are level 2
        {"layer1.0.conv1.0.3"},
        {"layer1.0.conv1.0.0"},
        {"stem.0"},
    ]


def _torchvision() -> Any:
    try:
        from saliency_tubes.zoo.sources._torchvision import import_torchvision

        return import_torchvision()
    except Exception as exc:  # not installed, or its compiled ops cannot load here
        pytest.skip(f"torchvision cannot be imported here ({type(exc).__name__}: {exc})")


@pytest.mark.filterwarnings("ignore:torchvision's compiled operators")
def test_torchvision_r2plus1d_18() -> None:
    tv = _torchvision()
    torch.manual_seed(0)
    model = tv.models.video.r2plus1d_18(num_classes=4).eval()
    clip = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    pyramid = st.class_feature_pyramid(
        model, clip, 1, depth=3, threshold=0.8, layer="layer4", classifier="fc"
    )
    assert _chain(pyramid) == [
        {"layer4.1.conv2.0.3"},
        {"layer4.1.conv2.0.0"},
        {"layer4.1.conv1.0.3"},
    ]


def test_channel_labels_through_views_concat_and_mixing_ops() -> None:
    class Mixer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv3d(1, 2, 1)
            self.b = nn.Conv3d(1, 3, 1)
            self.watch = nn.Identity()
            self.mixed = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.cat([self.a(x)[..., :1, :, :], torch.relu(self.b(x))[:, :, 1:]], dim=1)
            self.watch(y)
            return self.mixed(y.transpose(1, 2)).mean()

    model = Mixer()
    trace = trace_channels(model, torch.ones(1, 1, 2, 2, 2), {"y": model.watch, "m": model.mixed})
    assert [s[1:] if s else None for s in trace.watched["y"][1] or ()] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert trace.watched["m"][1] is None and "transpose" in trace.lost


# --------------------------------------------------------------------------------------
# The default model, the figure and the command line
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    clip = make_clip(None, seed=DEMO_SEED, frames=DEMO_FRAMES, size=DEMO_SIZE)
    path = tmp_path_factory.mktemp("demo") / "input.mp4"
    with VideoWriter(path, fps=DEMO_FPS, crf=12) as writer:
        for image in clip.video:
            writer.write(np.ascontiguousarray(image))
    return path, clip.label


@pytest.fixture(scope="module")
def demo_clip(demo_video: tuple[Path, int]) -> tuple[Any, torch.Tensor, np.ndarray]:
    """The tiny-actions model, the demo video's clip as the CLI samples it, its frames."""
    video = demo_video[0]
    loaded = load_model("tiny-actions")
    info = probe(video)
    preprocess = loaded.preset.preprocess()
    frames = read_frames(video, sample_uniform(info.num_frames, loaded.preset.frames), info=info)
    clip = preprocess(frames)[None]
    return loaded, clip, display_frames(clip, preprocess)


def test_tiny_actions_on_the_demo_clip_and_the_figure(
    demo_video: tuple[Path, int], demo_clip: tuple[Any, torch.Tensor, np.ndarray]
) -> None:
    label = demo_video[1]
    loaded, clip, frames = demo_clip
    pyramid = st.class_feature_pyramid(
        loaded.model, clip, "top1", categories=loaded.categories, depth=3, threshold=0.6
    )
    assert pyramid.class_name == CLASSES[label]  # the model gets the demo clip right
    assert _chain(pyramid) == [{"features.conv2"}, {"features.conv1.0"}, {"layer2.0"}]
    rows = drawn_nodes(pyramid, per_level=3)
    assert [len(r) for r in rows] == [1, 3, 3, 3]
    for upper, row in zip(rows, rows[1:], strict=False):
        assert all(any(p in {u.id for u in upper} for p in n.parents) for n in row)
    assert {n.id for n in rows[1]} == {n.id for n in pyramid.levels()[1][:3]}  # best supported
    image = draw_pyramid(pyramid, frames, per_level=3, thumb=64)
    assert image.dtype == np.uint8 and image.shape[2] == 3 and image.shape[0] > 4 * 64
    with pytest.raises(st.InputError, match="expected the clip's frames"):
        draw_pyramid(pyramid, frames[:3], per_level=3)


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_writes_graph_figure_tubes_and_manifest(
    demo_video: tuple[Path, int], demo_clip: tuple[Any, torch.Tensor, np.ndarray], tmp_path: Path
) -> None:
    video, label = demo_video
    out = tmp_path / "out"
    code, stdout, stderr = _run(
        "pyramid", str(video), "--class", CLASSES[label], "--depth", "2", "--threshold", "0.6",
        "--top-n", "3", "--all-tubes", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    assert f"class {label} {CLASSES[label]}" in stdout
    graph = json.loads((out / "pyramid.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "pyramid" and manifest["class"]["name"] == CLASSES[label]
    assert manifest["pyramid"]["nodes_per_level"] == [len(lv["nodes"]) for lv in graph["levels"]]
    assert set(manifest["tubes"]) == {n["id"] for n in graph["nodes"]}  # --all-tubes
    assert Image.open(out / "pyramid.png").size[0] > 300
    assert (out / "pyramid.gif").stat().st_size > 0

    loaded, clip, _ = demo_clip
    again = st.class_feature_pyramid(
        loaded.model,
        clip,
        label,
        depth=2,
        threshold=0.6,
        top_n=3,
        layer="features",
        classifier="fc",
    )
    assert graph["nodes"] == again.to_dict()["nodes"]
    for key in ("class", again.levels()[2][0].id):
        saved = np.load(out / manifest["tubes"][key])
        assert saved.shape == (16, 96, 96) and saved.dtype == np.float32
        np.testing.assert_allclose(saved, again.tube(key).numpy(), atol=1e-6)
    leftovers = [p.name for p in out.rglob("*") if "partial" in p.name or p.name.startswith(".")]
    assert leftovers == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--class", "shrimp"), "unknown class name 'shrimp'; did you mean 'shrink'?"),
        (("--depth", "9"), "expected depth between 1 and 5 for TinyActionNet"),
        (("--threshold", "1.5"), "expected threshold in [0, 1]"),
        (("--top-n", "0"), "expected top_n to be None or an int >= 1"),
        (("--layers", "features.conv2,layer1.0"), "expected layers[1] 'layer1.0' to have 48"),
        (("--layers", "features.conv2", "--depth", "2"), "expected depth <= 1"),
    ],
)
def test_cli_errors_are_one_line_and_leave_nothing(
    demo_video: tuple[Path, int], tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "out"
    code, _, stderr = _run(
        "pyramid", str(video_path := demo_video[0]), "--out", str(out), "--quiet", *args
    )
    assert code == 2 and video_path.exists()
    assert stderr.strip().splitlines() == [f"error: {stderr.strip()[7:]}"]
    assert message in stderr
    assert not out.exists()


@pytest.mark.skipif(
    not (SHARED / "arm_wrestling.mp4").is_file(),
    reason=f"real clips not found in {SHARED}: set SALIENCY_TUBES_CLIPS to run them",
)
def test_cli_on_a_real_clip(tmp_path: Path) -> None:
    out = tmp_path / "real"
    video = SHARED / "arm_wrestling.mp4"
    code, stdout, stderr = _run(
        "pyramid",
        str(video),
        "--depth",
        "2",
        "--frames",
        "8",
        "--no-gif",
        "--out",
        str(out),
        "--quiet",
    )
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["num_frames"] == 280 and manifest["clip"]["frames"] == 8
    assert (
        manifest["clip"]["frame_indices"][0] == 0 and manifest["clip"]["frame_indices"][-1] == 279
    )
    assert sorted(manifest["outputs"]) == ["json", "npy", "png"]
    assert np.load(out / manifest["tubes"]["class"]).shape == (8, 96, 96)
