"""The hashing loops. They run inside the engine's worker processes, never on the event loop.

Every kernel scans one chunk ``[start, stop)`` of a nonce space and answers the first hit as
``(nonce, value)`` (``value``: the digest or derived key that matched), or ``None``. A kernel polls
its task's cancel flag (one byte of memory shared with the parent) every few thousand attempts, so
that the first answer, a deadline or a cancelled task stops the rest of that task's work at once.

Kept free of pydantic and of the service so that a worker process starts fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, Final, Literal

from cracker.solvers.pow import _kdf

_native_sha256: ModuleType | None
try:  # the optional C fast path (built by setup.py); the pure-Python loops below are the fallback
    import cracker.solvers.pow._native._sha256pow as _native_sha256
except ImportError:  # pragma: no cover - depends on the build
    _native_sha256 = None

#: A hit: the nonce (or counter) and the digest / derived key that matched.
Hit = tuple[int, bytes]
#: How a digest is tested: equal to the target, starting with a hex prefix, or (first 16 bytes,
#: big-endian) at least a threshold.
MatchMode = Literal["eq", "hexprefix", "ge16"]
Kernel = Callable[[tuple[Any, ...], int, int, int], "Hit | None"]

#: Scheduling priority of the worker processes (added to the parent's niceness): proof of work
#: yields the CPU to the API's event loop and the OCR thread, which answer clients within
#: milliseconds; a flood of proof of work then slows other work by little.
WORKER_NICENESS: Final = 10

#: Environment switch of the fast path: ``0`` forces the pure-Python loops, ``portable`` the C
#: loop without SHA-NI (tests, comparisons); unset or ``1``: the fastest available.
NATIVE_ENV: Final = "CRACKER_POW_NATIVE"

_NATIVE_MODES: Final = {"eq": 0, "hexprefix": 1, "ge16": 2}
# Decimal nonces are split as ``str(high) + "%04d" % low``: the prefix plus ``high`` is hashed
# once per 10,000 attempts, and each attempt only appends four precomputed digits.
_LOW_DIGITS: Final = 4
_LOW_SPAN: Final = 10**_LOW_DIGITS
_PADDED_LOWS: Final = [b"%04d" % i for i in range(_LOW_SPAN)]
_PLAIN_LOWS: Final = [b"%d" % i for i in range(_LOW_SPAN)]
# Friendly Captcha polls the cancel flag this often (in attempts); a KDF call polls every time.
_BLAKE_POLL: Final = 4096

_flags: Any = None  # the shared cancel flags: one byte per running search (set by init_worker)
_use_native: bool = False


def native_available() -> bool:
    """Whether the C fast path was built and imports."""
    return _native_sha256 is not None


def _native_wanted(requested: bool | None) -> bool:
    if not native_available():
        return False
    if requested is not None:
        return requested
    return os.environ.get(NATIVE_ENV, "1") != "0"


def init_worker(flags: Any, native: bool | None) -> None:
    """Process-pool initializer: keep the shared cancel flags and the native-path choice."""
    global _flags, _use_native
    with contextlib.suppress(OSError):  # a platform without priorities: run as we are
        os.nice(WORKER_NICENESS)
    _flags = flags
    _use_native = _native_wanted(native)
    if _use_native and _native_sha256 is not None and os.environ.get(NATIVE_ENV) == "portable":
        _native_sha256.set_implementation("portable")


def worker_info() -> dict[str, Any]:
    """What a worker runs with (the engine's warm-up call)."""
    implementation = _native_sha256.implementation() if _use_native and _native_sha256 is not None else "python"
    return {"pid": os.getpid(), "native": _use_native, "implementation": implementation}


def _stopped(slot: int) -> bool:
    return _flags is not None and slot >= 0 and _flags[slot] != 0


def _flag_view(slot: int) -> memoryview | None:
    if _flags is None or slot < 0:
        return None
    return memoryview(_flags).cast("B")[slot : slot + 1]


# --------------------------------------------------------------------------- decimal-nonce SHA


def _matcher(mode: MatchMode, target: bytes | str) -> Callable[[bytes], bool]:
    """The digest test of a mode (built once per chunk; used at each chunk boundary)."""
    if mode == "eq":
        assert isinstance(target, bytes)
        return target.__eq__
    if mode == "ge16":
        assert isinstance(target, bytes)
        # Comparing a 32-byte digest to threshold || 16 zero bytes is the big-endian u128 test.
        floor = target + bytes(16)
        return floor.__le__
    assert isinstance(target, str)
    even = bytes.fromhex(target[: len(target) // 2 * 2])
    if len(target) % 2 == 0:
        return lambda digest: digest.startswith(even)
    nibble = int(target[-1], 16)
    cut = len(even)
    return lambda digest: digest.startswith(even) and digest[cut] >> 4 == nibble


def _scan(mid: Any, lows: Sequence[bytes], lo: int, hi: int, matches: Callable[[bytes], bool]) -> int | None:
    """Hash ``mid || lows[i]`` for i in [lo, hi): the hot loop of the pure-Python path."""
    copy = mid.copy
    for i in range(lo, hi):
        h = copy()
        h.update(lows[i])
        if matches(h.digest()):
            return i
    return None


def _scan_eq(mid: Any, lows: Sequence[bytes], lo: int, hi: int, target: bytes) -> int | None:
    # The same loop with the comparison inlined: ALTCHA v1 spends most of its time here.
    copy = mid.copy
    for i in range(lo, hi):
        h = copy()
        h.update(lows[i])
        if h.digest() == target:
            return i
    return None


def search_decimal_python(
    hash_name: str, prefix: bytes, mode: MatchMode, target: bytes | str, start: int, stop: int, slot: int
) -> Hit | None:
    """Find n in [start, stop) with ``H(prefix || decimal(n))`` matching, in pure Python."""
    base = hashlib.new(hash_name, prefix)
    matches = _matcher(mode, target)
    n = start
    while n < stop:
        if _stopped(slot):
            return None
        high, low = divmod(n, _LOW_SPAN)
        span = min(stop - n, _LOW_SPAN - low)
        if high == 0:
            mid, lows = base, _PLAIN_LOWS
        else:
            mid = base.copy()
            mid.update(b"%d" % high)
            lows = _PADDED_LOWS
        if mode == "eq":
            assert isinstance(target, bytes)
            found = _scan_eq(mid, lows, low, low + span, target)
        else:
            found = _scan(mid, lows, low, low + span, matches)
        if found is not None:
            nonce = high * _LOW_SPAN + found
            return nonce, hashlib.new(hash_name, prefix + b"%d" % nonce).digest()
        n += span
    return None


def search_decimal(args: tuple[Any, ...], start: int, stop: int, slot: int) -> Hit | None:
    """Kernel ``decimal``: args ``(hash_name, prefix, mode, target)``; native for SHA-256 when built."""
    hash_name, prefix, mode, target = args
    if _use_native and hash_name == "sha256" and _native_sha256 is not None:
        if mode == "hexprefix":
            nibbles = len(target)
            raw = bytes.fromhex(target + "0" * (nibbles % 2))
        else:
            nibbles, raw = 0, target
        found = _native_sha256.search(prefix, start, stop, _NATIVE_MODES[mode], raw, nibbles, _flag_view(slot))
        if found < 0:
            return None
        digest = hashlib.sha256(prefix + b"%d" % found).digest()
        # The C loop is checked against hashlib on every hit: a wrong answer never leaves here.
        if not _matcher(mode, target)(digest):  # pragma: no cover - would be a native bug
            raise RuntimeError("native SHA-256 search returned a non-matching nonce")
        return found, digest
    return search_decimal_python(hash_name, prefix, mode, target, start, stop, slot)


# --------------------------------------------------------------------------- ALTCHA v2 KDFs


def search_kdf(args: tuple[Any, ...], start: int, stop: int, slot: int) -> Hit | None:
    """Kernel ``kdf``: ALTCHA v2 counters; args ``(kdf_spec, nonce, salt, key_prefix_hex)``."""
    spec, nonce, salt, key_prefix = args
    derive = _kdf.deriver(_kdf.KdfSpec(*spec))
    even = bytes.fromhex(key_prefix[: len(key_prefix) // 2 * 2])
    odd = len(key_prefix) % 2 == 1
    for counter in range(start, stop):
        if _stopped(slot):
            return None
        key = derive(salt, nonce + counter.to_bytes(4, "big"))
        if key.startswith(even) and (not odd or key.hex().startswith(key_prefix)):
            return counter, key
    return None


# --------------------------------------------------------------------------- Friendly Captcha v1


def search_blake2b(args: tuple[Any, ...], start: int, stop: int, slot: int) -> Hit | None:
    """Kernel ``blake2b``: args ``(block120, threshold)``; counter n fills bytes 120..127.

    ``block120`` already holds the puzzle buffer and the solution index at byte 120; the counter
    is written little-endian into bytes 124..127 and then byte 123 (the 40-bit space of the spec).
    """
    head, threshold = args
    head = bytes(head[:123])
    blake = hashlib.blake2b
    for n in range(start, stop):
        if n % _BLAKE_POLL == 0 and _stopped(slot):
            return None
        block = head + bytes(((n >> 32) & 0xFF,)) + (n & 0xFFFFFFFF).to_bytes(4, "little")
        digest = blake(block, digest_size=32).digest()
        if int.from_bytes(digest[:4], "little") < threshold:
            return n, block[120:128]
    return None


KERNELS: Final[dict[str, Kernel]] = {
    "decimal": search_decimal,
    "kdf": search_kdf,
    "blake2b": search_blake2b,
}


def run_unit(kernel: str, args: tuple[Any, ...], start: int, stop: int, slot: int) -> Hit | None:
    """The one function the engine submits to its pool (by name, so nothing else is pickled)."""
    if _stopped(slot):
        return None
    return KERNELS[kernel](args, start, stop, slot)
