"""Keep the calling thread's alternate signal stack large enough for the handlers that run on it.

OpenVINO's `compile_model` installs an 11.5 KB alternate signal stack on the thread that compiles. Handlers
registered with SA_ONSTACK, such as torch's SIGCHLD handler for DataLoader workers, then run on it; with the
kernel's AVX-512 signal frame and lazy symbol binding they can overflow it and crash the process (seen: exit 139
when a DataLoader worker exited after an OpenVINO model had compiled). `widen()` replaces a small alternate stack
with a 256 KiB one. Linux only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

MIN_BYTES = 64 * 1024
NEW_BYTES = 256 * 1024
_SS_DISABLE = 2
_buffers: list[ctypes.Array[ctypes.c_char]] = []  # kept alive for as long as the process runs


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def widen() -> None:
    """Give the calling thread a NEW_BYTES alternate signal stack if it has a smaller one."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    current = _StackT()
    if libc.sigaltstack(None, ctypes.byref(current)) != 0:
        return
    if current.ss_flags & _SS_DISABLE or current.ss_size >= MIN_BYTES:
        return
    buffer = ctypes.create_string_buffer(NEW_BYTES)
    wanted = _StackT(ctypes.cast(buffer, ctypes.c_void_p), 0, NEW_BYTES)
    if libc.sigaltstack(ctypes.byref(wanted), None) == 0:
        _buffers.append(buffer)
