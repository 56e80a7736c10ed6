"""The plain twins of the numba kernels: every kernel replaced by its plain-Python function (``py_func``)."""

from __future__ import annotations

import importlib

import pytest


def swap_in_plain_twins(monkeypatch: pytest.MonkeyPatch) -> int:
    """Replace every numba kernel in the globals of every kernel module (``wattbill.warm.KERNEL_MODULES``)
    by its ``py_func``, so that a kernel's plain twin calls the plain twins of its helpers too (a
    ``py_func`` alone would call the compiled helpers). Undone with ``monkeypatch``. Returns how many
    names were replaced."""
    from numba.core.registry import CPUDispatcher

    from wattbill.warm import KERNEL_MODULES

    swapped = 0
    for name in KERNEL_MODULES:
        module = importlib.import_module(name)
        for attr, value in list(vars(module).items()):
            if isinstance(value, CPUDispatcher):
                monkeypatch.setattr(module, attr, value.py_func)
                swapped += 1
    return swapped
