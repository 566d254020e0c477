"""How the command line runs a command: one-line failures, progress messages, the report."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

__all__ = ["Group", "fail", "guarded", "printable", "report_classes", "say", "stages", "wrote"]


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def say(message: str) -> None:
    click.echo(f"- {message}", err=True)


def stages(quiet: bool) -> Callable[[str], None] | None:
    return None if quiet else say


def guarded(run: Callable[[], Any]) -> Any:
    """``run()``; a user error ends with one ``error:`` line and exit code 2."""
    from ..commands import SaliencyTubesError, first_line

    try:
        return run()
    except SaliencyTubesError as exc:
        fail(printable(first_line(exc)))
    except OSError as exc:  # outside the output folder: reading a file, say
        where = f" ({exc.filename})" if exc.filename else ""
        fail(
            f"expected to read and write files{where}, but got {exc.strerror or exc}; "
            "check the path, its permissions and the free space"
        )
    return None


def printable(text: str) -> str:
    """``text`` with control characters (newlines, escapes) shown escaped, on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Group(click.Group):
    """The command group, with every failure as one line.

    Usage errors (a missing argument, an unknown option) print ``error: ...`` and exit 2
    instead of click's usage block; Ctrl-C at any moment prints ``interrupted`` and exits
    130, with no traceback (the command has removed what it had written).
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f"; see {exc.ctx.command_path} --help"
            fail(printable(exc.format_message()).rstrip(".") + hint)
        if isinstance(result, int) and result:  # --help and --version return 0
            sys.exit(result)
        return result


def wrote(result: Any) -> None:
    """The last line of a command: how many outputs, where, how long."""
    click.echo(
        f"wrote {result.count} output(s) and manifest.json to {result.out_dir} "
        f"in {result.seconds:.1f} s"
    )


def report_classes(result: Any) -> None:
    for c in result.manifest["classes"]:
        click.echo(f"class {c['index']} {c['name']}: p={c['score']:.3f}")
    wrote(result)
