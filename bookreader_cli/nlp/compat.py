"""Small shims for third-party breakage, applied before the libraries that need them are imported."""

from __future__ import annotations

import os
import sys

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def single_thread_math() -> None:
    """One BLAS/OpenMP thread per process: our parallelism is processes, oversubscription only slows it.

    Must run before numpy/torch are first imported to take effect; harmless afterwards.
    """
    for var in _THREAD_VARS:
        os.environ.setdefault(var, "1")


def route_pymorphy2_to_pymorphy3() -> None:
    """Make `import pymorphy2` (used by natasha's MorphVocab) load pymorphy3 instead.

    pymorphy2 finds its dictionaries through `pkg_resources`, which setuptools >= 82 no longer ships;
    pymorphy3 is its maintained fork with the same API. Call this before importing natasha.
    """
    if getattr(sys.modules.get("pymorphy2"), "__name__", "") == "pymorphy3":
        return
    import pymorphy3
    import pymorphy3.analyzer

    sys.modules["pymorphy2"] = pymorphy3
    sys.modules["pymorphy2.analyzer"] = pymorphy3.analyzer
    for name in list(sys.modules):
        if name.startswith("pymorphy3."):
            sys.modules["pymorphy2" + name[len("pymorphy3") :]] = sys.modules[name]
