"""Allocator settings that keep an ingest's resident memory close to what it holds.

Measured on the 10^6-member benchmark root (``benchmarks/memory.py``), the pass
ended at 480 MB RSS while Arrow held 224 MB and the interpreter 107 MB:

* Arrow's default mimalloc pool keeps freed segments for reuse; the system pool
  hands buffers back to malloc.
* glibc raises its mmap threshold each time a large block (a 16 MiB read buffer, a
  decoded column) is freed, so later blocks of that size come from the heap, whose
  freed pages stay resident. Fixing the threshold low instead made the pass 1.7×
  slower (every big buffer freshly mapped and zero-filled by the kernel), so
  :func:`trim` hands the heap's free pages back (``malloc_trim``) at the points
  where a lot was just freed: after each merge of the member index, after the pass,
  per batch or window where the loaders rebuild or scan the files table, per slice
  of the case write.

:func:`bound_memory` applies the pool choice once per process; :func:`trim` is a
no-op where glibc is not the C library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

import pyarrow as pa

_done = False
_malloc_trim: Any = None


def bound_memory() -> None:
    """Use Arrow's system memory pool, and find glibc's ``malloc_trim`` (once)."""
    global _done, _malloc_trim
    if _done:
        return
    _done = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _malloc_trim = libc.malloc_trim
        _malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        _malloc_trim = None
    pa.set_memory_pool(pa.system_memory_pool())


def trim() -> None:
    """Return freed memory to the kernel: Arrow's pool, then the C heap (glibc only).
    Called where a large structure was just freed (a few ms each)."""
    pa.default_memory_pool().release_unused()
    if _malloc_trim is not None:
        _malloc_trim(0)


__all__ = ["bound_memory", "trim"]
