"""The ``saliency-tubes`` command line: parses, calls the API, reports.

Every user error ends with one line on stderr (``error: ...``) and exit code 2; nothing
half-written is left in the output folder.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .errors import SaliencyTubesError, first_line

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _classes(spec: str) -> Any:
    spec = spec.strip()
    if spec.lower().startswith("top"):
        return spec.lower()
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        raise click.BadParameter("expected top3, an index, a name, or a comma-separated list")
    return [int(s) if s.lstrip("-").isdigit() else s for s in items]


def _windows(spec: str | None) -> tuple[int, int] | None:
    if spec is None:
        return None
    try:
        length, stride = (int(v) for v in spec.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LEN,STRIDE such as 16,8, but got {spec!r}") from None
    return length, stride


def _triple(spec: str | None, option: str) -> tuple[float, float, float] | None:
    if spec is None:
        return None
    try:
        r, g, b = (float(v) for v in spec.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected {option} R,G,B (three numbers on the [0, 1] scale, e.g. 0.45,0.45,0.45), "
            f"but got {spec!r}"
        ) from None
    return r, g, b


def _csv(spec: str) -> tuple[str, ...]:
    return tuple(s.strip().lower() for s in spec.split(",") if s.strip())


@click.group(context_settings=_CONTEXT)
@click.version_option(package_name="saliency-tubes")
def main() -> None:
    """See where in space and time a video classifier looked.

    \b
    Saliency Tubes (Stergiou et al., ICIP 2019): the class weights of the final linear
    layer times the last 3-D conv layer's activations, extended to the clip by spline
    interpolation, shown as heat tubes (colour map) and focus tubes (the rest dimmed).

    \b
    Start with:   saliency-tubes demo
    Then:         saliency-tubes explain VIDEO --out DIR --model resnet3d-50 --weights ckpt.pth
    """


@main.command(context_settings=_CONTEXT)
@click.argument("video", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder (created if missing).",
)
@click.option(
    "--model",
    "model_name",
    default="tiny-actions",
    show_default=True,
    help="A registered name (see `saliency-tubes models`) or 'package.module:factory'.",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    default=None,
    help="Checkpoint (.pth/.pt weights-only, or .safetensors). Default: the shipped weights, if any. "
    "torchvision and pytorchvideo models also take kinetics400 (torchvision: or the enum name): "
    "downloads the official weights.",
)
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Allow a full-pickle checkpoint. Only for files you trust: a pickle can run code.",
)
@click.option(
    "--num-classes",
    type=int,
    default=None,
    help="Size of the classifier head, if it differs from the model's default.",
)
@click.option(
    "--categories",
    type=click.Path(path_type=Path),
    default=None,
    help="Class names: .txt (one per line) or .json.",
)
@click.option(
    "--mean",
    default=None,
    help="Per-channel mean R,G,B of pixels on the [0, 1] scale (default: the model's preset).",
)
@click.option(
    "--std",
    default=None,
    help="Per-channel std R,G,B on the [0, 1] scale (default: the model's preset).",
)
@click.option(
    "--layer",
    default=None,
    help="Target layer name (default: the adapter's, or the last 5-D layer feeding the pool).",
)
@click.option(
    "--classifier", default=None, help="Classifier head name (default: the final nn.Linear)."
)
@click.option(
    "--classes",
    default="top1",
    show_default=True,
    help="top3 | 12 | name | comma-separated indices or names.",
)
@click.option(
    "--method",
    type=click.Choice(["cam", "gradcam", "gradcam++"]),
    default=None,
    help="cam is the paper's Saliency Tubes; gradcam(++) weigh channels by gradients. "
    "Default: the model's (see `saliency-tubes models`; gradcam for MViT, cam otherwise).",
)
@click.option(
    "--frames", type=int, default=None, help="Clip length T (default: the model preset's)."
)
@click.option(
    "--windows",
    default=None,
    metavar="LEN,STRIDE",
    help="Explain sliding windows covering the whole video and stitch them (default: one uniform clip).",
)
@click.option(
    "--interpolation",
    type=click.Choice(["cubic", "quadratic", "linear", "nearest"]),
    default="cubic",
    show_default=True,
)
@click.option(
    "--align",
    type=click.Choice(["corners", "centers"]),
    default="corners",
    show_default=True,
    help="Upsampling grid: corners (scipy.ndimage.zoom, the authors') or half-pixel centres.",
)
@click.option(
    "--colormap", default="jet", show_default=True, help="Any matplotlib colour map for heat tubes."
)
@click.option("--opacity", type=float, default=0.5, show_default=True, help="Heat map opacity.")
@click.option(
    "--background",
    type=click.Choice(["black", "dark", "blur", "gray"]),
    default="black",
    show_default=True,
    help="What focus tubes show where the model did not look.",
)
@click.option(
    "--format",
    "formats",
    default="mp4,plot",
    show_default=True,
    help="Comma-separated: mp4,gif,png,npy,plot (plot: temporal importance PNG per class).",
)
@click.option(
    "--layouts",
    default="heat,focus,side_by_side",
    show_default=True,
    help="Comma-separated: heat,focus,side_by_side.",
)
@click.option("--no-caption", is_flag=True, help="Do not draw class name and probability.")
@click.option("--timeline", is_flag=True, help="Draw the temporal importance bar under each frame.")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:1 | mps.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def explain(
    video: Path,
    out_dir: Path,
    model_name: str,
    weights: Path | None,
    allow_pickle: bool,
    num_classes: int | None,
    categories: Path | None,
    mean: str | None,
    std: str | None,
    layer: str | None,
    classifier: str | None,
    classes: str,
    method: str | None,
    frames: int | None,
    windows: str | None,
    interpolation: str,
    align: str,
    colormap: str,
    opacity: float,
    background: str,
    formats: str,
    layouts: str,
    no_caption: bool,
    timeline: bool,
    device: str,
    quiet: bool,
) -> None:
    """Explain VIDEO (a file FFmpeg reads, or a folder of numbered frames).

    Writes, per explained class, heat / focus / side-by-side videos at the source's size,
    frame count and frame rate, its temporal importance plot (temporal_K_NAME.png), plus
    manifest.json (with the per-frame curves and key frames) and tube.npy with --format npy.
    """
    from .pipeline import ExplainOptions, explain_video
    from .video import probe
    from .zoo import load_model

    try:
        info = probe(video, min_frames=2)  # a bad video is reported before any model is built
        _check_device(device)
        loaded = load_model(
            model_name,
            weights=weights,
            num_classes=num_classes,
            categories=categories,
            allow_pickle=allow_pickle,
            device=device,
            layer=layer,
            classifier=classifier,
            mean=_triple(mean, "--mean"),
            std=_triple(std, "--std"),
        )
        options = ExplainOptions(
            method=method or "auto",  # auto: the adapter's default method
            classes=_classes(classes),
            frames=frames,
            windows=_windows(windows),
            interpolation=interpolation,
            align=align,
            colormap=colormap,
            opacity=opacity,
            background=background,  # type: ignore[arg-type]  # click.Choice checked it
            formats=_csv(formats),
            layouts=_csv(layouts),
            caption=not no_caption,
            timeline=timeline,
            device=device,
            progress=not quiet,
        )
        manifest = explain_video(
            video, out_dir, loaded, options, info=info, on_stage=None if quiet else _say
        )
    except (SaliencyTubesError, click.BadParameter) as exc:
        _fail(first_line(exc))
        return
    _report(manifest, out_dir)


@main.command(context_settings=_CONTEXT)
@click.option(
    "--out", "out_dir", default="demo_out", show_default=True, type=click.Path(path_type=Path)
)
@click.option(
    "--seed", default=None, type=int, help="Seed of the generated clip (default: the demo's)."
)
@click.option("--classes", default="top2", show_default=True)
@click.option(
    "--method", type=click.Choice(["cam", "gradcam", "gradcam++"]), default="cam", show_default=True
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out_dir: Path, seed: int | None, classes: str, method: str, quiet: bool) -> None:
    """Offline demo: generate a clip, explain it with the embedded model, write the videos.

    No arguments, no network, no GPU: the model (a small 3D CNN trained on synthetic
    motion classes) and its weights ship with the package.
    """
    from .demo import DEMO_SEED, run_demo

    try:
        manifest = run_demo(
            out_dir,
            seed=DEMO_SEED if seed is None else seed,
            classes=classes,
            method=method,
            progress=not quiet,
            on_stage=None if quiet else _say,
        )
    except SaliencyTubesError as exc:
        _fail(first_line(exc))
        return
    click.echo(f"true class of the generated clip: {manifest['demo']['true_class']}")
    _report(manifest, out_dir)


@main.command(context_settings=_CONTEXT)
def models() -> None:
    """List the registered models with their layer, head, preset and default method.

    cam=exact: the class score is the CAM tube's mean plus a constant (global pool and a
    linear head after the layer); cam=approx: the paper's formula, not exact for this head;
    cam=n/a: no pooled linear head over the layer (MViT's class token), Grad-CAM only.
    """
    from .zoo import available_models, get_adapter

    for name in available_models():
        a = get_adapter(name)
        p = a.preset
        layer = "+".join(a.layer) if isinstance(a.layer, tuple) else a.layer
        cam = "exact" if a.cam_exact else ("approx" if a.default_method == "cam" else "n/a")
        click.echo(
            f"{name:16s} layer={layer or 'auto'} head={a.classifier or 'auto'} "
            f"input={p.frames}x{p.size[0]}x{p.size[1]} ({p.resize}) method={a.default_method} "
            f"cam={cam}  {a.description}"
        )


# -- comparisons: compare-classes, compare-models ---------------------------------------


def _pair(spec: str | None) -> tuple[str, str] | None:
    if spec is None:
        return None
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if len(items) != 2 or items[0].lower() == items[1].lower():
        raise _UsageError(
            f"expected --contrast A,B with two different classes (e.g. take,wash), but got "
            f"{spec!r}; name a second class"
        )
    return items[0], items[1]


def _per_model(spec: str | None, names: list[str], option: str, value: str) -> dict[str, str]:
    """Parse ``MODEL=VALUE,...`` (e.g. ``--weights a=ckpt.pth``) for the models of --models."""
    out: dict[str, str] = {}
    for item in [s.strip() for s in (spec or "").split(",") if s.strip()]:
        name, sep, given = item.partition("=")
        if not sep or name.strip() not in names or not given.strip():
            raise _UsageError(
                f"expected {option} MODEL={value} for models of --models ({', '.join(names)}), "
                f"but got {item!r}"
            )
        out[name.strip()] = given.strip()
    return out


def _count(spec: str, option: str) -> int:
    if not spec.isdigit() or int(spec) < 1:
        raise _UsageError(f"expected {option} MODEL=N with a positive integer N, but got {spec!r}")
    return int(spec)


class _UsageError(SaliencyTubesError, ValueError):
    pass


_COMPARE_OPTIONS = [
    click.option(
        "--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder."
    ),
    click.option(
        "--method",
        type=click.Choice(["cam", "gradcam", "gradcam++", "auto"]),
        default="auto",
        show_default=True,
        help="auto: each model's default (cam for the 3D CNNs).",
    ),
    click.option("--windows", default=None, metavar="LEN,STRIDE", help="Sliding windows."),
    click.option(
        "--interpolation",
        type=click.Choice(["cubic", "quadratic", "linear", "nearest"]),
        default="cubic",
        show_default=True,
    ),
    click.option(
        "--align", type=click.Choice(["corners", "centers"]), default="corners", show_default=True
    ),
    click.option(
        "--style",
        type=click.Choice(["focus", "heat"]),
        default="focus",
        show_default=True,
        help="What each panel shows.",
    ),
    click.option("--cols", type=int, default=None, help="Panels per row of the grid."),
    click.option("--colormap", default="jet", show_default=True, help="Heat colour map."),
    click.option("--opacity", type=float, default=0.5, show_default=True),
    click.option(
        "--background",
        type=click.Choice(["black", "dark", "blur", "gray"]),
        default="black",
        show_default=True,
    ),
    click.option(
        "--format",
        "formats",
        default="mp4,plot",
        show_default=True,
        help="Comma-separated: mp4,gif,png,npy,plot.",
    ),
    click.option("--timeline", is_flag=True, help="Temporal importance bar under each panel."),
    click.option("--no-caption", is_flag=True, help="No class, model and probability captions."),
    click.option("--allow-pickle", is_flag=True, help="Allow full-pickle checkpoints you trust."),
    click.option("--device", default="cpu", show_default=True),
    click.option("--quiet", is_flag=True, help="No progress bars."),
]


def _compare_options(command: Any) -> Any:
    for option in reversed(_COMPARE_OPTIONS):
        command = option(command)
    return command


def _compare_settings(shared: dict[str, Any], classes: str, **extra: Any) -> Any:
    from .pipeline import CompareOptions

    _check_device(shared["device"])
    return CompareOptions(
        method=shared["method"],
        classes=_classes(classes),
        windows=_windows(shared["windows"]),
        interpolation=shared["interpolation"],
        align=shared["align"],
        colormap=shared["colormap"],
        opacity=shared["opacity"],
        background=shared["background"],
        formats=_csv(shared["formats"]),
        caption=not shared["no_caption"],
        timeline=shared["timeline"],
        device=shared["device"],
        progress=not shared["quiet"],
        style=shared["style"],
        cols=shared["cols"],
        **extra,
    )


def _comparison(
    video: Path,
    shared: dict[str, Any],
    settings: Callable[[], Any],
    load: Callable[[], Any],
    run: Callable[..., dict[str, Any]],
) -> dict[str, Any] | None:
    """Check the options, probe VIDEO, load the model(s), run; one-line errors (exit 2)."""
    from .video import probe

    try:
        options = settings()
        options.check()
        info = probe(video, min_frames=2)  # a bad video is reported before any model is built
        return run(
            video,
            shared["out_dir"],
            load(),
            options,
            info=info,
            on_stage=None if shared["quiet"] else _say,
        )
    except (SaliencyTubesError, click.BadParameter) as exc:
        _fail(first_line(exc))
        return None


@main.command("compare-classes", context_settings=_CONTEXT)
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--model", "model_name", default="tiny-actions", show_default=True)
@click.option("--weights", type=click.Path(path_type=Path), default=None, help="Checkpoint.")
@click.option("--categories", type=click.Path(path_type=Path), default=None, help="Class names.")
@click.option("--num-classes", type=int, default=None, help="Size of the classifier head.")
@click.option(
    "--classes",
    default="top3",
    show_default=True,
    help="top3 | comma-separated names or indices: one panel each.",
)
@click.option(
    "--contrast",
    default=None,
    metavar="A,B",
    help="Also write the contrastive tube 'why A and not B' (raw maps A - B, diverging colours).",
)
@click.option("--frames", type=int, default=None, help="Clip length T (default: the preset's).")
@_compare_options
def compare_classes_command(
    video: Path,
    model_name: str,
    weights: Path | None,
    categories: Path | None,
    num_classes: int | None,
    classes: str,
    contrast: str | None,
    frames: int | None,
    **shared: Any,
) -> None:
    """One model, several classes of VIDEO side by side (one panel per class).

    Writes compare_classes.mp4 (panels captioned with class and probability), with
    --contrast A,B also contrast_A_vs_B.mp4, temporal.png (per-frame saliency and key
    frames), manifest.json (tubes, statistics, curves) and tube.npy with --format npy.
    """
    from .pipeline import compare_classes
    from .zoo import load_model

    manifest = _comparison(
        video,
        shared,
        lambda: _compare_settings(shared, classes, frames=frames, contrast=_pair(contrast)),
        lambda: load_model(
            model_name,
            weights=weights,
            num_classes=num_classes,
            categories=categories,
            allow_pickle=shared["allow_pickle"],
            device=shared["device"],
        ),
        compare_classes,
    )
    if manifest is None:
        return
    if manifest["contrast"]:
        c = manifest["contrast"]
        click.echo(f"contrast {c['a']['name']} vs {c['b']['name']}: raw scale {c['scale']:.4g}")
    _report(manifest, shared["out_dir"])


@main.command("compare-models", context_settings=_CONTEXT)
@click.argument("video", type=click.Path(path_type=Path))
@click.option(
    "--models",
    "model_names",
    required=True,
    help="Comma-separated registered names (see `saliency-tubes models`): one panel each.",
)
@click.option("--weights", default=None, metavar="M=PATH,...", help="Checkpoint per model.")
@click.option(
    "--num-classes", default=None, metavar="M=N,...", help="Head size per model (if not default)."
)
@click.option("--categories", default=None, metavar="M=PATH,...", help="Class names per model.")
@click.option("--classes", default="top1", show_default=True, help="topK or names/indices.")
@_compare_options
def compare_models_command(
    video: Path,
    model_names: str,
    weights: str | None,
    num_classes: str | None,
    categories: str | None,
    classes: str,
    **shared: Any,
) -> None:
    """Several models on VIDEO side by side, each with its own preprocessing.

    Writes compare_models.mp4 (one panel per model, all on the source frames),
    temporal.png, manifest.json and tube_MODEL.npy with --format npy. Prints, per model,
    the fraction of tube voxels above 0.5 and the tube's spatial spread (fractions of the
    frame; smaller is tighter).
    """
    from .pipeline import compare_models
    from .zoo import load_model

    def load() -> list[Any]:
        names = [s.strip() for s in model_names.split(",") if s.strip()]
        if not names or len(set(names)) != len(names):
            raise _UsageError(f"expected distinct model names in --models, but got {model_names!r}")
        paths = _per_model(weights, names, "--weights", "PATH")
        counts = {
            k: _count(v, "--num-classes")
            for k, v in _per_model(num_classes, names, "--num-classes", "N").items()
        }
        names_files = _per_model(categories, names, "--categories", "PATH")
        return [
            load_model(
                name,
                weights=Path(paths[name]) if name in paths else None,
                num_classes=counts.get(name),
                categories=Path(names_files[name]) if name in names_files else None,
                allow_pickle=shared["allow_pickle"],
                device=shared["device"],
            )
            for name in names
        ]

    manifest = _comparison(
        video, shared, lambda: _compare_settings(shared, classes), load, compare_models
    )
    if manifest is None:
        return
    for row in manifest["summary"]:
        click.echo(
            f"{row['model']}: {row['class']} p={row['score']:.3f}  "
            f"above 0.5: {100 * row['fraction_above']:.1f}% of voxels  "
            f"spread {row['spread']:.3f} (y {row['spread_y']:.3f}, x {row['spread_x']:.3f})"
        )
    count = sum(len(v) for v in manifest["outputs"].values())
    click.echo(
        f"wrote {count} output(s) and manifest.json to {shared['out_dir']} "
        f"in {manifest['seconds']:.1f} s"
    )


@main.command("pyramid", context_settings=_CONTEXT)
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--model", "model_name", default="tiny-actions", show_default=True)
@click.option("--weights", type=click.Path(path_type=Path), default=None, help="Checkpoint.")
@click.option("--allow-pickle", is_flag=True, help="Allow a full-pickle checkpoint you trust.")
@click.option("--num-classes", type=int, default=None, help="Size of the classifier head.")
@click.option("--categories", type=click.Path(path_type=Path), default=None, help="Class names.")
@click.option(
    "--class",
    "target",
    default="top1",
    show_default=True,
    help="Class to back-step from: a name, an index, or top1 (the prediction).",
)
@click.option(
    "--depth", type=int, default=None, help="Levels of kernels [default: 3, or the --layers count]."
)
@click.option(
    "--threshold",
    type=float,
    default=0.6,
    show_default=True,
    help="Keep features and channels whose min-max normalised score is at least this.",
)
@click.option("--top-n", type=int, default=None, help="At most N children per kernel.")
@click.option("--layers", default=None, help="Comma-separated conv names, level 1 first.")
@click.option("--frames", type=int, default=None, help="Clip length T (default: the preset's).")
@click.option("--per-level", type=int, default=6, show_default=True, help="Nodes drawn per level.")
@click.option("--all-tubes", is_flag=True, help="Write every node's tube, not only the drawn.")
@click.option("--no-gif", is_flag=True, help="Do not write pyramid.gif.")
@click.option(
    "--out", "out_dir", default="pyramid_out", show_default=True, type=click.Path(path_type=Path)
)
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:1 | mps.")
@click.option("--quiet", is_flag=True, help="No progress messages.")
def pyramid_command(
    video: Path,
    model_name: str,
    weights: Path | None,
    allow_pickle: bool,
    num_classes: int | None,
    categories: Path | None,
    target: str,
    depth: int | None,
    threshold: float,
    top_n: int | None,
    layers: str | None,
    frames: int | None,
    per_level: int,
    all_tubes: bool,
    no_gif: bool,
    out_dir: Path,
    device: str,
    quiet: bool,
) -> None:
    """Class feature pyramid of VIDEO: back-step from a class through layers and kernels.

    Writes pyramid.json (the class dependency graph), pyramid.png (levels as rows, nodes
    as heat thumbnails), tubes/*.npy (the drawn nodes' tubes), pyramid.gif and manifest.json.
    """
    from .pyramid_render import PyramidOptions, pyramid_video
    from .video import probe
    from .zoo import load_model

    try:
        options = PyramidOptions(
            target=target.strip(),
            depth=depth,
            threshold=threshold,
            top_n=top_n,
            layers=tuple(s.strip() for s in layers.split(",") if s.strip()) if layers else None,
            frames=frames,
            per_level=per_level,
            all_tubes=all_tubes,
            gif=not no_gif,
            device=device,
        )
        options.check()
        info = probe(video, min_frames=2)
        _check_device(device)
        loaded = load_model(
            model_name,
            weights=weights,
            num_classes=num_classes,
            categories=categories,
            allow_pickle=allow_pickle,
            device=device,
        )
        manifest = pyramid_video(
            video, out_dir, loaded, options, info=info, on_stage=None if quiet else _say
        )
    except SaliencyTubesError as exc:
        _fail(first_line(exc))
        return
    c = manifest["class"]
    counts = " / ".join(str(n) for n in manifest["pyramid"]["nodes_per_level"][1:])
    name = f" {c['name']}" if c["name"] else ""
    click.echo(f"class {c['index']}{name}: p={c['probability']:.3f}")
    click.echo(f"nodes per level (1..{manifest['pyramid']['levels_reached']}): {counts}")
    count = sum(len(v) for v in manifest["outputs"].values())
    click.echo(
        f"wrote {count} output(s) and manifest.json to {out_dir} in {manifest['seconds']:.1f} s"
    )


@main.command("evaluate", context_settings=_CONTEXT)
@click.argument("video", required=False, type=click.Path(path_type=Path))
@click.option(
    "--gt",
    "ground_truth",
    type=click.Path(path_type=Path),
    default=None,
    help="Ground truth of VIDEO: per-frame boxes (.json) or a mask (.npy); see the README.",
)
@click.option("--model", "model_name", default="tiny-actions", show_default=True)
@click.option("--weights", type=click.Path(path_type=Path), default=None, help="Checkpoint.")
@click.option("--allow-pickle", is_flag=True, help="Allow a full-pickle checkpoint you trust.")
@click.option("--num-classes", type=int, default=None, help="Size of the classifier head.")
@click.option("--categories", type=click.Path(path_type=Path), default=None, help="Class names.")
@click.option("--layer", default=None, help="Target layer name.")
@click.option("--classifier", default=None, help="Classifier head name.")
@click.option(
    "--class", "target", default="top1", show_default=True, help="VIDEO: class to explain."
)
@click.option(
    "--method", "--methods", "methods", default="cam,gradcam,gradcam++", show_default=True
)
@click.option(
    "--interpolation",
    "interpolations",
    default=None,
    help="Benchmark: comma-separated modes [all four]. VIDEO: one mode [cubic].",
)
@click.option("--baselines", default="uniform,centre,random,motion", show_default=True)
@click.option("--clips", type=int, default=None, help="Benchmark: held-out clips [32].")
@click.option("--seed", type=int, default=None, help="Benchmark: data seed [10000].")
@click.option("--steps", type=int, default=16, show_default=True, help="Deletion/insertion steps.")
@click.option(
    "--substrate", type=click.Choice(["blur", "mean", "zeros"]), default="blur", show_default=True
)
@click.option("--units", default="voxel,frame,tube", show_default=True, help="VIDEO: curve units.")
@click.option(
    "--out", "out_dir", default="evaluate_out", show_default=True, type=click.Path(path_type=Path)
)
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:1 | mps.")
@click.option(
    "--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy box)."
)
@click.option("--quiet", is_flag=True, help="No progress messages.")
def evaluate_command(
    video: Path | None,
    ground_truth: Path | None,
    model_name: str,
    weights: Path | None,
    allow_pickle: bool,
    num_classes: int | None,
    categories: Path | None,
    layer: str | None,
    classifier: str | None,
    target: str,
    methods: str,
    interpolations: str | None,
    baselines: str,
    clips: int | None,
    seed: int | None,
    steps: int,
    substrate: str,
    units: str,
    out_dir: Path,
    device: str,
    threads: int | None,
    quiet: bool,
) -> None:
    """Score tubes: pointing game, mass, IoU, deletion/insertion AUC, sanity check.

    \b
    Without VIDEO: the synthetic benchmark (held-out clips with ground-truth masks, the
    embedded model; every method, interpolation mode and baseline, 95 % bootstrap
    intervals). Writes results.md, results.json and PNG plots.
    With VIDEO --gt boxes.json|mask.npy: the same metrics on your video, model and ground
    truth. Writes report.json, deletion_insertion.png and sanity.png.
    """
    from .errors import InputError
    from .evaluate import BenchmarkConfig, Protocol, evaluate_video, run_benchmark, write_benchmark
    from .zoo import load_model

    say = None if quiet else _say
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))
    try:
        protocol = Protocol(steps=steps, substrate=substrate)
        modes = _csv(interpolations) if interpolations else None
        if video is None:
            if ground_truth is not None or model_name != "tiny-actions" or weights is not None:
                raise InputError(
                    "expected VIDEO with --gt or --model/--weights; without VIDEO the benchmark "
                    "runs the embedded tiny-actions model on synthetic clips"
                )
            config = BenchmarkConfig(
                clips=32 if clips is None else clips,
                seed=10_000 if seed is None else seed,
                methods=_csv(methods),
                interpolations=modes or ("cubic", "quadratic", "linear", "nearest"),
                baselines=_csv(baselines),
                device=device,
                protocol=protocol,
            )
            _check_device(device)
            result = run_benchmark(config, progress=not quiet, on_stage=say)
            files = write_benchmark(result, out_dir)
            click.echo(result.table())
            click.echo(
                f"model accuracy on the {config.clips} clips: {result.accuracy:.3f}; wrote "
                f"{len(files)} file(s) to {out_dir} in {result.seconds:.1f} s"
            )
            return
        if ground_truth is None:
            raise InputError(
                "expected --gt boxes.json or mask.npy with VIDEO, but got none; see the "
                "boxes format in the README"
            )
        if clips is not None or seed is not None:
            raise InputError("--clips and --seed are for the benchmark; drop them with VIDEO")
        if modes is not None and len(modes) != 1:
            raise InputError(f"expected one --interpolation with VIDEO, but got {interpolations}")
        from .video import probe

        probe(video, min_frames=2)  # a bad video is reported before any model is built
        _check_device(device)
        loaded = load_model(
            model_name,
            weights=weights,
            num_classes=num_classes,
            categories=categories,
            allow_pickle=allow_pickle,
            device=device,
            layer=layer,
            classifier=classifier,
        )
        spec = _classes(target)
        report = evaluate_video(
            video,
            ground_truth,
            out_dir,
            loaded,
            methods=_csv(methods),
            classes=spec[0] if isinstance(spec, list) and len(spec) == 1 else spec,
            interpolation=modes[0] if modes else "cubic",
            baselines=_csv(baselines),
            units=_csv(units),
            protocol=protocol,
            on_stage=say,
        )
    except (SaliencyTubesError, click.BadParameter) as exc:
        _fail(first_line(exc))
        return
    c = report["class"]
    click.echo(f"class {c['index']} {c['name']}: p={c['score']:.3f}")
    for row, t in report["tubes"].items():
        click.echo(
            f"{row:20s} pointing {t['pointing']:.2f}  mass {t['mass']:.3f}  iou {t['iou']:.3f}  "
            f"deletion {t['deletion']:.3f}  insertion {t['insertion']:.3f}  "
            f"sanity {t['sanity'][-1] if t['sanity'][-1] is not None else float('nan'):.2f}"
        )
    click.echo(f"wrote report.json and plots to {out_dir} in {report['seconds']:.1f} s")


def _check_device(device: str) -> None:
    import torch

    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise _DeviceError(
            f"--device {device} asked for, but CUDA is not available here; use --device cpu"
        )
    if kind == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise _DeviceError(
            f"--device {device} asked for, but MPS is not available here; use --device cpu"
        )
    if kind not in ("cpu", "cuda", "mps"):
        raise _DeviceError(f"expected --device cpu, cuda[:N] or mps, but got {device!r}")


class _DeviceError(SaliencyTubesError, ValueError):
    pass


def _say(message: str) -> None:
    click.echo(f"- {message}", err=True)


def _report(manifest: dict[str, Any], out_dir: Path) -> None:
    for c in manifest["classes"]:
        click.echo(f"class {c['index']} {c['name']}: p={c['score']:.3f}")
    count = sum(len(v) for v in manifest["outputs"].values())
    click.echo(
        f"wrote {count} output(s) and manifest.json to {out_dir} in {manifest['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main()
