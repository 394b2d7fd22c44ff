"""numba where its wheels exist; elsewhere the same kernels run as ordinary Python.

numba has no wheel for Intel macOS with the pinned numpy, so requirements.txt leaves it out there.
Without it the kernels of ``features.native`` and ``features.streamed_labels`` run uncompiled
(the same rows, at about the speed of the Python specification) and ``features.scan`` hands every
line to ``features.ticks.parse_line``.
"""

from __future__ import annotations

from typing import Any, Callable

try:
    import numba
except ImportError:  # pragma: no cover - exercised in a subprocess by the tests
    numba = None

COMPILED = numba is not None


def njit(**options: Any) -> Callable:
    """``numba.njit`` with its machine code cached beside the sources, or the function itself without numba."""
    if numba is None:
        return lambda function: function
    return numba.njit(cache=True, nogil=True, **options)
