"""Input checks at the Python boundary: each error names the argument and what was expected.

Conversions (documented in the public docstrings): integer and boolean arrays become
float64; float32 stays float32 (the objective then works in float32), other real floats
become float64; a non-C-contiguous array is copied into C order.  Complex, object and
string arrays are rejected with a TypeError.

Arrays of other libraries (:func:`to_numpy`) are read through ``__array__`` or DLPack in
their own dtype, without a copy where the library allows one: a float32 PyTorch tensor or
JAX array stays float32.  A tensor that requires grad is used as data (detached: no
gradient flows back to it); a tensor on a GPU is refused with what to do.  pandas' nullable
columns (``Float64``, ``Int64``, ``boolean``) are refused with the conversion to use.
"""

from __future__ import annotations

import numbers
import os

import numpy as np

from . import _kernels
from ._guards import check_files, mapped_files

# Rows checked per step of the finiteness test: keeps its temporary small for huge X.
FINITE_BLOCK = 1 << 16
# Largest kernel workspace (per thread) and parameter vector accepted, in bytes: beyond any
# machine's memory, and far below the sizes whose index products overflow 64 bits.
MAX_BYTES = 1 << 40
# Up-front allocations below this are not checked against the memory available.
SMALL_ALLOC = 1 << 26


def resolve_dtype(X) -> np.dtype:
    """float32 when X is float32, else float64 (``X`` a NumPy array, or any array
    :func:`to_numpy` reads).  A dtype NumPy understands is read without converting ``X``
    (a dask or zarr array is not computed or loaded)."""
    try:
        dt = np.dtype(X.dtype)
    except (AttributeError, TypeError):  # no dtype, or another library's (torch, pandas)
        dt = getattr(to_numpy("X", X), "dtype", None)
    return np.dtype(np.float32) if dt == np.float32 else np.dtype(np.float64)


def _pandas_nullable(a) -> list[str]:
    """The names of ``a``'s pandas nullable dtypes (a Series, a DataFrame, an extension
    array); empty for anything else, pandas imported or not."""
    dtypes = getattr(a, "dtypes", None)  # a DataFrame: one dtype a column
    if dtypes is None or not hasattr(dtypes, "tolist"):
        dtypes = [getattr(a, "dtype", None)]
    else:
        dtypes = dtypes.tolist()
    return sorted({str(dt) for dt in dtypes
                   if type(dt).__module__.startswith("pandas")
                   and getattr(dt, "kind", "O") in "biuf"
                   and type(getattr(dt, "na_value", None)).__name__ == "NAType"})


def to_numpy(name: str, a):
    """``a`` as a NumPy array in its own dtype (no copy where its library allows), or
    ``a`` itself when it is not an array of another library (lists, scalars).

    Tensors that require grad are detached (used as data); GPU tensors are refused, as are
    pandas nullable columns, with what to do.
    """
    if isinstance(a, np.ndarray):
        return a
    nullable = _pandas_nullable(a)
    if nullable:
        raise TypeError(
            f"{name} holds pandas nullable values (dtype {', '.join(nullable)}), which NumPy "
            f"reads as objects; convert them first, e.g. {name}.to_numpy(dtype=float, "
            f"na_value=np.nan) (missing values are refused: drop or impute them)")
    if getattr(a, "requires_grad", False) and callable(getattr(a, "detach", None)):
        a = a.detach()  # used as data: no gradient flows back to the caller's tensor
    device = getattr(a, "device", None)
    if getattr(device, "type", "cpu") != "cpu":
        raise TypeError(f"{name} is on the device {device}; the kernels read host memory: "
                        f"move it first (e.g. {name}.cpu())")
    if hasattr(a, "__array__"):
        return np.asarray(a)
    if hasattr(a, "__dlpack__"):
        try:
            return np.from_dlpack(a)
        except (TypeError, ValueError, RuntimeError, BufferError) as err:
            raise TypeError(f"{name} could not be read through DLPack ({err}); give a "
                            "NumPy array or an object with __array__") from None
    return a


def check_finite(name: str, a: np.ndarray) -> None:
    """Raise ValueError if ``a`` holds NaN or inf (checked block by block)."""
    if a.size == 0:
        return
    flat = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1)
    for start in range(0, flat.shape[0], FINITE_BLOCK):
        block = flat[start : start + FINITE_BLOCK]
        if not np.isfinite(block).all():
            bad = np.argwhere(~np.isfinite(block))[0]
            where = tuple(int(i) for i in (start + bad[0], *bad[1:a.ndim]))
            raise ValueError(f"{name} must be finite; found {block[tuple(bad)]} at index {where}")


def as_float_array(name: str, a, *, ndim: int, dtype: np.dtype, shape=None) -> np.ndarray:
    """``a`` as a finite, C-contiguous ``dtype`` array of ``ndim`` dimensions."""
    if isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array; got a string")
    check_files(mapped_files(**{name: a}))  # a truncated file: an error, not a SIGBUS
    arr = np.asarray(to_numpy(name, a))
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}")
    if arr.ndim != ndim:
        what = {1: "1-D", 2: "2-D"}[ndim]
        raise ValueError(f"{name} must be {what}; got an array of shape {arr.shape}")
    if shape is not None:
        for axis, (got, want) in enumerate(zip(arr.shape, shape)):
            if want is not None and got != want:
                raise ValueError(
                    f"{name} must have shape {shape_str(shape)}; got {arr.shape}"
                    f" (axis {axis} is {got}, expected {want})"
                )
    if arr.dtype != dtype or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=dtype)
    check_finite(name, arr)
    return arr


def shape_str(shape) -> str:
    items = ["any" if s is None else str(s) for s in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def check_inputs(X) -> np.ndarray:
    """Validate the design matrix; return it converted."""
    X = as_float_array("X", X, ndim=2, dtype=resolve_dtype(X))
    if X.shape[0] == 0:
        raise ValueError(f"X must have at least one sample; got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError(f"X must have at least one feature; got shape {X.shape}")
    return X


def check_data(X, y):
    """Validate the design matrix and targets; return them converted."""
    X = check_inputs(X)
    y = as_float_array("y", y, ndim=1, dtype=X.dtype, shape=(X.shape[0],))
    return X, y


def check_sample_weight(sample_weight, n: int, dtype: np.dtype) -> np.ndarray:
    """Normalised weights ``s / sum(s)``; ``None`` means uniform."""
    return normalise_weights(given_weights(sample_weight, n), n, dtype)


def given_weights(sample_weight, n: int) -> np.ndarray | None:
    """The caller's weights validated, as float64, before normalisation (None: uniform)."""
    if sample_weight is None:
        return None
    s = as_float_array("sample_weight", sample_weight, ndim=1, dtype=np.float64, shape=(n,))
    if (s < 0).any():
        raise ValueError(f"sample_weight must be non-negative; found {s.min()}")
    if not s.max() > 0:
        raise ValueError("sample_weight must have a positive sum; got all zeros")
    # kept for save_point: a copy, so that the caller changing its array changes nothing
    return s if (s is not sample_weight and s.base is None) else s.copy()


def normalise_weights(s: np.ndarray | None, n: int, dtype: np.dtype) -> np.ndarray:
    """``s / sum(s)`` of validated weights (:func:`given_weights`), uniform for None."""
    if s is None:
        return np.full(n, 1.0 / n, dtype=dtype)
    s = s / s.max()  # a sum of huge finite weights may overflow; of these it cannot
    return (s / s.sum()).astype(dtype)


def check_n_classes(n_classes, found: int) -> int:
    """``c``: ``n_classes`` (an integer >= 2 and >= ``found``) or ``found = max(y) + 1``."""
    if n_classes is None:
        if found < 2:
            raise ValueError("the cross_entropy loss needs at least 2 classes; the labels "
                             f"go up to {found - 1}: pass n_classes")
        return found
    n_classes = check_positive_int("n_classes", n_classes, minimum=2)
    if n_classes < found:
        raise ValueError(f"n_classes is {n_classes} but the labels go up to {found - 1}: "
                         f"n_classes must be at least max(y) + 1 = {found}")
    return n_classes


def check_label_block(arr: np.ndarray, dtype, row0: int = 0) -> int:
    """Checks of a block of cross-entropy labels (rows ``row0...`` of ``y``, a NumPy array
    of shape (m,)): finite integers ``>= 0`` that ``dtype`` stores exactly; returns
    ``max + 1`` (0 for an empty block).  Errors name the global index."""
    if arr.dtype.kind not in "iuf":
        raise TypeError("y must hold integer class labels 0..c-1 for the cross_entropy "
                        f"loss; got dtype {arr.dtype}")
    if arr.size == 0:
        return 0
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(f"y must be finite; found {arr[bad][0]} at index "
                             f"({row0 + int(np.argmax(bad))},)")
        frac = arr != np.round(arr)
        if frac.any():
            raise ValueError("y must hold integer class labels for the cross_entropy loss; "
                             f"found {arr[frac][0]} at index {row0 + int(np.argmax(frac))}")
    if (arr < 0).any():
        raise ValueError("y must hold class labels 0..c-1 (>= 0) for the cross_entropy loss; "
                         f"found {arr[arr < 0][0]} at index {row0 + int(np.argmax(arr < 0))}")
    top = int(arr.max())
    if top >= 1 << 24 and dtype == np.float32 or top >= 1 << 53:
        raise ValueError(f"y holds a class label {top}: too large to be stored exactly")
    return top + 1


def check_classes(y, n_classes, n: int | None) -> tuple[np.ndarray, int]:
    """Integer class labels ``0..c-1`` (int64) and ``c``.

    ``y`` may be of an integer dtype or hold integers in floats; ``c`` is ``n_classes`` (at
    least ``max(y) + 1`` and 2) or ``max(y) + 1`` (the checks of :func:`check_label_block`
    and :func:`check_n_classes`, shared with the objectives).
    """
    if isinstance(y, (str, bytes)):
        raise TypeError("y must be an array of integer class labels; got a string")
    arr = np.asarray(to_numpy("y", y))
    if arr.dtype.kind in "iuf":  # other dtypes: check_label_block's TypeError
        if arr.ndim != 1:
            raise ValueError(f"y must be 1-D class labels of shape (n_samples,) for the "
                             f"cross_entropy loss; got shape {arr.shape}")
        if n is not None and arr.shape[0] != n:
            raise ValueError(f"y must have shape ({n},), one label per row of X; got "
                             f"{arr.shape}")
        if arr.size == 0:
            raise ValueError("y must hold at least one label")
    c = check_n_classes(n_classes, check_label_block(arr, np.float64))
    return arr.astype(np.int64, copy=False), c


def check_point(name: str, x, size: int, dtype: np.dtype) -> np.ndarray:
    """A parameter vector of length ``size``."""
    return as_float_array(name, x, ndim=1, dtype=dtype, shape=(size,))


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def check_choice(name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}; got {value!r}")
    return value


def _size(nbytes: int) -> str:
    """``nbytes`` for a message: ``"1 TiB"``, ``"40 GiB"``."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes >= 1 << shift:
            return f"{nbytes / (1 << shift):.4g} {unit}"
    return f"{nbytes} bytes"


class TooLargeError(ValueError, MemoryError):
    """An allocation refused before it was made: the message names the argument that asked
    for it and the largest value that fits.  Both a ValueError (a bad argument) and a
    MemoryError (what NumPy would have raised, later and without the argument)."""


def _fix(fix, limit: int) -> str:
    """The advice of a refusal: ``fix`` itself, or ``fix(limit)`` (built only on failure)."""
    return fix(limit) if callable(fix) else fix


def check_size(what: str, nbytes: int, fix) -> None:
    """Raise :class:`TooLargeError` when ``what`` would take more than ``MAX_BYTES``
    (``nbytes``, a Python integer: exact at any size).  ``fix``: the advice, a string or a
    function of the limit in bytes that builds it (called only on failure)."""
    if nbytes > MAX_BYTES:
        raise TooLargeError(f"{what} would take {_size(nbytes)}, over the limit of "
                            f"{_size(MAX_BYTES)}; {_fix(fix, MAX_BYTES)}")


def memory_limit() -> int:
    """Bytes an up-front allocation may take: the memory available now (Linux
    ``MemAvailable``; elsewhere the physical memory), at most ``MAX_BYTES``."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return min(int(line.split()[1]) * 1024, MAX_BYTES)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return min(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), MAX_BYTES)
    except (OSError, ValueError, AttributeError):
        return MAX_BYTES


def largest_fitting(nbytes, limit: int, hi: int) -> int:
    """The largest ``v`` in ``[0, hi]`` with ``nbytes(v) <= limit`` (``nbytes`` increasing;
    bisection)."""
    lo = 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if nbytes(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_alloc(what: str, nbytes: int, fix) -> None:
    """Raise :class:`TooLargeError` before an allocation of ``nbytes`` that would not fit
    the memory available (:func:`memory_limit`); ``fix`` names the argument and its largest
    value that fits: a string, or a function of the limit in bytes that builds it (called
    only on failure, so that a search for the largest value costs nothing otherwise).
    Allocations of at most ``SMALL_ALLOC`` bytes are not checked against the memory
    available (no ``/proc/meminfo`` read per call): NumPy's own MemoryError covers them."""
    check_size(what, nbytes, fix)
    if nbytes <= SMALL_ALLOC:
        return
    limit = memory_limit()
    if nbytes > limit:
        raise TooLargeError(f"{what} would take {_size(nbytes)}, more than the memory "
                            f"available ({_size(limit)}); {_fix(fix, limit)}")


def check_chunk_size(chunk_size, default: int, n: int, dims, k: int, itemsize: int,
                     entries=_kernels.workspace_entries) -> int:
    """Samples per chunk of the kernels: ``min(chunk_size, n)`` (``default`` for None; 1 for
    ``n = 0``, an engine over no new inputs), once
    a thread's workspace for it (``entries(chunk, dims, k)``, by default
    ``_kernels.workspace_entries``) is known to fit ``MAX_BYTES``.

    Any positive integer is accepted (``2**64`` too: the chunks never hold more than the
    ``n`` samples); the workspace grows with the chunk times the MLP's widths.
    """
    chunk_size = default if chunk_size is None else chunk_size
    chunk = max(min(check_positive_int("chunk_size", chunk_size), n), 1)
    fixed = entries(0, dims, k)
    per_sample = entries(1, dims, k) - fixed
    fit = (MAX_BYTES // itemsize - fixed) // per_sample
    fix = (f"use a smaller chunk_size (at most {fit} here)" if fit >= 1
           else "use narrower or fewer layers")
    check_size(f"the kernels' workspace for chunks of {chunk} samples and widths "
               f"{tuple(int(h) for h in dims[1:])}", itemsize * (fixed + chunk * per_sample),
               fix)
    return chunk
