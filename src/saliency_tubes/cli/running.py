"""How the command line runs a command: one-line failures, progress messages, the report."""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from ..commands import probability
from . import parse

__all__ = [
    "Group",
    "echo",
    "fail",
    "guarded",
    "loaded",
    "on_video",
    "printable",
    "quiet_notes",
    "report_batch",
    "report_classes",
    "say",
    "stages",
    "wrote",
]


#: Notes of the library that are not the user's business unless they ask (--verbose).
NOTES = (r"torchvision's compiled operators could not be loaded",)


def quiet_notes(verbose: bool) -> None:
    """Hide the library's notes (:data:`NOTES`), or with ``verbose`` show each once."""
    for message in NOTES:
        warnings.filterwarnings("once" if verbose else "ignore", message=message)


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def say(message: str) -> None:
    click.echo(f"- {message}", err=True)


def loaded(spec: Any) -> Any:
    """Load the model of ``spec`` (:class:`~saliency_tubes.commands.ModelOptions`); say so
    on stderr when it has random weights, whatever ``--quiet``."""
    model = spec.load()
    if model.random_weights:
        click.echo(
            f"warning: {printable(model.name)} has random weights: this explains an untrained "
            "network; pass --weights PATH (or a named release) for a trained one",
            err=True,
        )
    if model.caveat:  # said once the command has run: a failure stays one error line
        _PENDING.append(caveat_line(model.name, model.caveat))
    return model


#: Warnings to say when the command succeeds (see :func:`guarded`).
_PENDING: list[str] = []


def caveat_line(name: str, caveat: str) -> str:
    """The stderr line of a model with a caveat (the embedded one), whatever ``--quiet``."""
    return (
        f"warning: {printable(name)} {printable(caveat)}: on any other video its classes and "
        "tubes mean nothing; pass --model (e.g. r3d_18 --weights kinetics400) for a real one"
    )


def stages(quiet: bool) -> Callable[[str], None] | None:
    return None if quiet else say


def guarded(run: Callable[[], Any]) -> Any:
    """``run()``; a user error ends with one ``error:`` line and exit code 2; after a
    success, the warnings :func:`loaded` kept (the embedded model's caveat)."""
    from ..commands import SaliencyTubesError, first_line

    _PENDING.clear()
    try:
        result = run()
        for line in dict.fromkeys(_PENDING):  # each model's once
            click.echo(line, err=True)
        return result
    except SaliencyTubesError as exc:
        if was_interrupted():  # Ctrl-C that a library turned into its own error (a blocked
            interrupted()  # open of a FIFO, a decoder): an interrupt, exit 130
        fail(printable(first_line(exc)))
    except OSError as exc:  # outside the output folder: reading a file, say
        if was_interrupted():
            interrupted()
        where = f" ({exc.filename})" if exc.filename else ""
        fail(
            f"expected to read and write files{where}, but got {exc.strerror or exc}; "
            "check the path, its permissions and the free space"
        )
    return None


def printable(text: str) -> str:
    """``text`` with control characters (newlines, escapes) shown escaped, on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Interrupted(BaseException):
    """Ctrl-C, carried past click's own handler (which would print a blank line)."""


_SIGINT = {"seen": False}


def _on_sigint(signum: int, frame: Any) -> None:
    _SIGINT["seen"] = True
    raise KeyboardInterrupt


def watch_interrupts() -> Any:
    """Record Ctrl-C from now on (it still raises ``KeyboardInterrupt``); return the handler
    to restore, or None when this thread cannot or need not install it."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGINT) is _on_sigint:
        return None
    _SIGINT["seen"] = False
    return signal.signal(signal.SIGINT, _on_sigint)


def was_interrupted() -> bool:
    """Whether Ctrl-C came since :func:`watch_interrupts`."""
    return _SIGINT["seen"]


def interrupted() -> NoReturn:
    """The one line of a Ctrl-C, and its exit code."""
    click.echo("interrupted", err=True)
    sys.exit(130)


class Group(click.Group):
    """The command group, with every failure as one line.

    Usage errors (a missing argument, an unknown option) print ``error: ...`` and exit 2
    instead of click's usage block; Ctrl-C at any moment prints ``interrupted`` and exits
    130, with no traceback (the command has removed what it had written), also when the
    interrupt lands inside an import and surfaces as another exception.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted from None

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        previous = watch_interrupts()
        try:
            result = super().main(*args, **kwargs)
        except (Interrupted, KeyboardInterrupt, click.exceptions.Abort):
            interrupted()
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f"; see {exc.ctx.command_path} --help"
            fail(printable(exc.format_message()).rstrip(".") + hint)
        except Exception:
            if was_interrupted():  # an interrupt inside an import can surface as another error
                interrupted()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if isinstance(result, int) and result:  # --help and --version return 0
            sys.exit(result)
        return result


def wrote(result: Any) -> None:
    """The last line of a command: how many outputs, where, how long."""
    click.echo(
        f"wrote {result.count} output(s) and manifest.json to {result.out_dir} "
        f"in {result.seconds:.1f} s"
    )


def echo(text: str) -> None:
    """Print ``text`` on stdout, control characters in names escaped (line by line)."""
    click.echo("\n".join(printable(line) for line in str(text).split("\n")))


def report_classes(result: Any) -> None:
    for c in result.manifest["classes"]:
        echo(f"class {c['index']} {c['name']}: p={probability(c['score'], 3)}")
    wrote(result)


def report_contrast(result: Any) -> None:
    """compare-classes with --contrast: what the contrast's colours mean, and its scale."""
    c = result.manifest["contrast"]
    if c:
        echo(
            f"contrast {c['a']['name']} vs {c['b']['name']}: red where the model sees "
            f"{c['a']['name']} more, blue where {c['b']['name']}; full colour at the largest "
            f"raw difference ({c['scale']:.4g})"
        )


def report_models(result: Any) -> None:
    """compare-models: per model, its class, the tube's mass above 0.5 and its spread."""
    for row in result.manifest["summary"]:
        echo(
            f"{row['model']}: {row['class']} p={probability(row['score'], 3)}  "
            f"above 0.5: {100 * row['fraction_above']:.1f}% of voxels  "
            f"spread {row['spread']:.3f} (y {row['spread_y']:.3f}, x {row['spread_x']:.3f})"
        )
    wrote(result)


def report_batch(result: Any) -> None:
    """The last lines of a batch; exit code 1 when a video failed."""
    s = result.summary
    if s["random_weights"]:
        click.echo(
            "warning: the model has random weights: the batch explains an untrained network; "
            "pass --weights PATH (or a named release) for a trained one",
            err=True,
        )
    model = s.get("model") or {}
    if model.get("caveat"):
        click.echo(caveat_line(str(model.get("name")), str(model["caveat"])), err=True)
    accuracy = (
        ""
        if s["accuracy"] is None
        else f", accuracy {s['accuracy']:.3f} ({s['labelled']} labelled)"
    )
    echo(
        f"{s['videos']} videos: {s['ok']} ok, {s['failed']} failed ({result.ran} explained now, "
        f"{result.skipped} done before){accuracy}"
    )
    unknown = s.get("unknown_labels") or {}
    if unknown.get("videos"):
        echo(
            f"note: {unknown['videos']} of {s['ok']} videos have labels the model does not "
            f"know ({', '.join(map(repr, unknown['labels']))}): left out of the accuracy; label them with "
            "the model's class names or indices"
        )
    for note in result.notes:
        echo(f"note: {note}")
    echo(f"wrote {result.index} and {result.out / 'summary.md'}")
    if result.kept:
        first = result.kept[0]
        echo(
            f"{len(result.kept)} videos could not be redone, their earlier results stand in "
            f"{result.index} (first: {first['path']}: {first['error']}); fix that and run the "
            "same command again"
        )
    if result.failed:
        for f in s["failures"][:5]:
            echo(f"failed: {f['path']}: {f['error']}")
        echo(
            f"{result.failed} of {s['videos']} videos failed: their rows in {result.index} have "
            "status 'error' and the message; fix them and run the same command again"
        )
    if result.failed or result.kept:
        sys.exit(1)


def on_video(
    command: Callable[..., Any],
    video: Path,
    params: dict[str, Any],
    options: Any,
    specs: list[Any] | None = None,
) -> Any:
    """Check the model flags, probe VIDEO (a bad video is reported before any model is
    built), load the model and run ``command`` on it; with ``specs`` (model options, one per
    model: compare-models), load each and run ``command`` on the list."""
    from ..commands import probe

    several = specs is not None
    specs = specs if specs is not None else [parse.model_options(params)]
    info = probe(video, min_frames=2)
    models = [loaded(spec) for spec in specs]
    return command(
        video,
        params["out_dir"],
        models if several else models[0],
        options,
        info=info,
        on_stage=stages(params["quiet"]),
    )
