"""Records (dataclasses) as plain, JSON-able dicts and back, by their fields' types.

:class:`Plain` gives a dataclass ``to_dict`` (tuples and lists as lists, paths as text,
nested records as dicts) and ``from_dict`` (the same values back: lists become tuples where
the field's type says tuple, dicts become the nested record, text becomes a path where the
type is a path only), so ``type(x).from_dict(x.to_dict()) == x`` for records whose paths
are given as text (a ``str | Path`` field cannot tell which it was given). Values that are
neither (a callable class selector, say) are kept as they are.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

from ..errors import InputError

__all__ = ["Plain", "plain"]

R = TypeVar("R", bound="Plain")


def plain(value: Any) -> Any:
    """``value`` as JSON-able data: records as dicts, tuples and lists as lists, paths as
    text; other values as they are."""
    if isinstance(value, Plain):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _members(hint: Any) -> tuple[Any, ...]:
    """The types a hint allows (the members of a union, or the hint itself)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _typed(hint: Any, value: Any) -> Any:
    """``value`` (plain data) as the type ``hint`` asks for, where plain data lost it."""
    if value is None:
        return None
    kinds = _members(hint)
    if isinstance(value, list):
        for kind in kinds:
            if typing.get_origin(kind) is tuple:
                args = typing.get_args(kind)
                if len(args) == 2 and args[1] is Ellipsis:
                    return tuple(_typed(args[0], v) for v in value)
                if len(args) == len(value):
                    return tuple(_typed(a, v) for a, v in zip(args, value, strict=True))
                return tuple(value)
        return value
    if isinstance(value, dict):
        for kind in kinds:
            if isinstance(kind, type) and dataclasses.is_dataclass(kind):
                if issubclass(kind, Plain):
                    return kind.from_dict(value)
                return kind(
                    **{k: _typed(h, value[k]) for k, h in _hints(kind).items() if k in value}
                )
        return value
    if isinstance(value, str) and Path in kinds and str not in kinds:
        return Path(value)
    return value


def _hints(cls: type) -> dict[str, Any]:
    """The record's fields and their types (annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


class Plain:
    """A dataclass with :meth:`to_dict` and :meth:`from_dict` (see the module)."""

    #: What the record is called in errors ("explain options", ...).
    what: ClassVar[str] = "record"

    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain JSON-able data (in field order)."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """The record of :meth:`to_dict`'s data (missing fields take their defaults).

        Raises:
            InputError: a key that is not a field (one line, naming the fields).
        """
        hints = _hints(cls)
        unknown = sorted(set(data) - set(hints))
        if unknown:
            raise InputError(
                f"expected {cls.what} among {', '.join(hints)}, but got {', '.join(unknown)}; "
                "drop or rename them"
            )
        return cls(**{k: _typed(hints[k], v) for k, v in data.items()})
