"""Import torchvision, also where its compiled operators cannot load.

Some torchvision wheels do not load their compiled extension (``torchvision/_C.so``) next
to a CPU build of torch they were not built against: on this project's CPU torch 2.13.0,
``import torchvision`` 0.28.0 stops with ``RuntimeError: operator torchvision::nms does not
exist`` (pytorch/vision#9085). The extension is missing, so ``torchvision.extension``
reports no ops and skips registering them, but ``torchvision/_meta_registrations.py``
still registers fake (meta) kernels for ``torchvision::nms`` and ``torchvision::qnms``
unconditionally, and that fails for an operator that was never defined.

:func:`import_torchvision` imports torchvision normally. Only when that fails with this
error does it define the schemas of those two operators through :mod:`torch.library`,
with kernels that raise a clear error when called, and import torchvision again. The
video classifiers (``torchvision.models.video``) use none of the compiled ops; detection
ops (``torchvision.ops.nms``, ``roi_align`` ...) stay unavailable and say so.

It is public as ``saliency_tubes.import_torchvision`` (and ``saliency_tubes.zoo``): call it
before your own ``import torchvision`` (or pytorchvideo, timm, transformers, which import
torchvision themselves). The documentation's Troubleshooting page and DEVELOPERS.md say more.

Nothing here runs at ``import saliency_tubes``: only when a torchvision-based adapter is
built (or another optional module, e.g. pytorchvideo's, calls :func:`import_torchvision`
before importing its own package, which imports torchvision).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType
from typing import Any

import torch

from ...errors import ModelLoadError, first_line

MISSING_OPERATOR = "operator torchvision::nms does not exist"
"""The error text of the failed import that the workaround answers (pytorch/vision#9085)."""

_PLACEHOLDER_OPS = ("nms", "qnms")
_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"

# The torch.library.Library that holds the placeholder definitions: the definitions live
# as long as this object, so it is kept for the life of the process (None: never applied).
_placeholder_library: torch.library.Library | None = None


def workaround_applied() -> bool:
    """Whether :func:`import_torchvision` had to define the placeholder operators."""
    return _placeholder_library is not None


def import_torchvision() -> ModuleType:
    """Import and return ``torchvision``, working around a missing compiled extension.

    1. ``import torchvision``; if it succeeds (the usual case) nothing else happens.
    2. If it fails with ``operator torchvision::nms does not exist``: drop the
       half-imported ``torchvision*`` modules from ``sys.modules``, define
       ``torchvision::nms`` and ``torchvision::qnms`` (kernels that raise when called),
       warn once that the compiled ops are unavailable, and import again.

    Call it once before your own torchvision import; afterwards ``import torchvision``
    (and ``from torchvision.models.video import r2plus1d_18``) finds the module it left in
    ``sys.modules``. Where torchvision imports normally, it is a plain import.

    Example:
        >>> import saliency_tubes as st
        >>> torchvision = st.import_torchvision()   # doctest: +SKIP
        >>> from torchvision.models.video import r2plus1d_18   # doctest: +SKIP

    Returns:
        The ``torchvision`` module.

    Raises:
        ModelLoadError: torchvision is not installed, or fails to import for another
            reason (the message says which and how to install it).
    """
    try:
        return importlib.import_module("torchvision")
    except ImportError as exc:
        raise ModelLoadError(
            f"the torchvision models need torchvision, but importing it failed ({exc}); "
            "install it with: pip install 'saliency-tubes[torchvision]'"
        ) from None
    except RuntimeError as exc:
        if MISSING_OPERATOR not in str(exc):
            raise ModelLoadError(
                f"importing torchvision failed: {first_line(exc)}; "
                "install the torchvision build that matches your torch (see help(saliency_tubes.import_torchvision))"
            ) from None
    _forget_torchvision()
    _define_placeholders()
    warnings.warn(
        "torchvision's compiled operators could not be loaded with this torch build "
        "(pytorch/vision#9085); saliency_tubes defined placeholders for torchvision::nms/qnms "
        "so that torchvision imports. Video classifiers work; detection ops (nms, roi_align, "
        "...) will not. See help(saliency_tubes.import_torchvision).",
        RuntimeWarning,
        stacklevel=2,
    )
    try:
        return importlib.import_module("torchvision")
    except (ImportError, RuntimeError) as exc:
        _forget_torchvision()
        raise ModelLoadError(
            "importing torchvision failed even with the missing-operator workaround: "
            f"{first_line(exc)}; install the torchvision build that matches "
            "your torch (see help(saliency_tubes.import_torchvision))"
        ) from None


def _forget_torchvision() -> None:
    """Remove ``torchvision`` and its submodules from ``sys.modules`` (a failed import)."""
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def _define_placeholders() -> None:
    """Define ``torchvision::nms``/``qnms`` with kernels that raise a clear error."""
    global _placeholder_library
    if _placeholder_library is not None:
        return
    library = torch.library.Library("torchvision", "DEF")
    for op in _PLACEHOLDER_OPS:
        library.define(f"{op}{_SCHEMA}")
        library.impl(op, _unavailable(op), "CompositeExplicitAutograd")
    _placeholder_library = library


def _unavailable(op: str) -> Any:
    def kernel(*args: Any, **kwargs: Any) -> torch.Tensor:
        del args, kwargs
        raise RuntimeError(
            f"torchvision::{op} is a placeholder defined by saliency_tubes because torchvision's "
            "compiled operators could not be loaded with this torch build (pytorch/vision#9085); "
            "install a torchvision build that matches your torch to use detection ops"
        )

    return kernel
