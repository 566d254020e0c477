"""Exceptions raised by saliency-tubes.

Every error a user can cause derives from :class:`SaliencyTubesError` and also from the
builtin it specialises (``ValueError`` or ``TypeError``), so ``except ValueError`` keeps
working. Messages are one line: what was expected, what was got, and what to do.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name if it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SaliencyTubesError(Exception):
    """Base class of every error raised on bad user input."""


class InputError(SaliencyTubesError, ValueError):
    """A clip, map or option has the wrong shape, type or value."""


class LayerNotFoundError(SaliencyTubesError, ValueError):
    """The target layer or the classifier head could not be found or decided."""


class ClassSelectionError(SaliencyTubesError, ValueError):
    """A requested class index or name does not exist in the model."""


class VideoError(SaliencyTubesError, ValueError):
    """A video is missing, unreadable, corrupt, empty or too short."""


class ModelLoadError(SaliencyTubesError, ValueError):
    """A model name, factory or checkpoint could not be resolved or loaded."""


def check_choices(
    what: str, values: Sequence[str], known: Collection[str], *, allow_empty: bool = False
) -> None:
    """Raise one :class:`InputError` line unless every one of ``values`` is in ``known``.

    Args:
        what: what the values are, as the message names them (``"formats"``).
        values: the values given.
        known: the values allowed.
        allow_empty: whether giving none is allowed.
    """
    bad = [str(v) for v in values if v not in known]
    if bad or (not values and not allow_empty):
        raise InputError(
            f"expected {what} among {', '.join(known)}, but got {', '.join(bad) or 'none'}"
        )


def check_choice(what: str, value: object, known: Sequence[str]) -> None:
    """Raise one :class:`InputError` line unless ``value`` is one of ``known``."""
    if value not in known:
        raise InputError(f"expected {what} one of {', '.join(known)}, but got {value!r}")


def missing_extra(what: str, package: str, extra: str, instead: str = "") -> InputError:
    """The one line for an optional package that is not installed: ``what`` needs
    ``package``; install the ``extra``, or do ``instead`` (said in parentheses)."""
    return InputError(
        f"{what} needs {package}, which is not installed; install it with "
        f"pip install 'saliency-tubes[{extra}]'" + (f" ({instead})" if instead else "")
    )
