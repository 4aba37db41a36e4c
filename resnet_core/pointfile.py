"""The point file: an objective and a point on it, in one ``.npz`` archive.

A point file states everything needed to rebuild exactly the objective it came from;
:func:`load_point` assumes nothing.  Keys (``np.savez``, no pickles):

- always: ``X`` (n, d), ``y`` (n,) (or (n, c): the squared loss with c outputs),
  ``loss`` (a built-in loss's name), ``head`` (``"residual"`` or ``"skip"``),
  ``feature_bias`` (a boolean: Remark 1's constant feature, appended to the MLP's output
  or to ``Phi``);
- an :class:`~resnet_core.Objective` (an MLP's parameters): ``params`` (the flat point),
  ``widths`` (integers), ``activation`` (a name), ``bias`` (a boolean);
- a :class:`~resnet_core.FeatureObjective` (features given): ``Phi`` (n, k), ``w`` (d,)
  and ``V`` (d, k) for the residual head, or ``v`` (k,) for the skip head (``Phi``
  without the constant column: ``k`` counts it when ``feature_bias``); with c outputs
  ``W`` (c, d) and ``V`` (d, k), or ``B`` (c, k) for the skip head;
- ``n_classes`` (an integer, the number of outputs ``c``): with the cross-entropy loss
  (written by :func:`save_point`; absent, ``c`` is the largest label plus one);
- optional: ``sample_weight`` (n,) (absent: uniform weights) and ``format_version``
  (written by :func:`save_point`; absent is accepted, for files written by hand).

Any other key is refused, so that a misspelt ``sample_weight`` is not silently ignored.
"""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._schema import validated
from ._validation import as_float_array
from .features import ACTIVATIONS
from .heads import HEADS
from .losses import BUILTIN_LOSSES, VECTOR_LOSSES
from .objective import FeatureObjective, Objective

__all__ = ["FORMAT_VERSION", "PointFileError", "load_point", "save_point"]

FORMAT_VERSION = 1

_COMMON = ("X", "y", "loss", "head", "feature_bias")
_OPTIONAL = ("sample_weight", "format_version")
# every loss a file may name: the one-output losses and those of c outputs
_LOSSES = {**BUILTIN_LOSSES, **VECTOR_LOSSES}
_MLP = ("params", "widths", "activation", "bias")
_WHAT = {
    "X": "the inputs, an (n, d) array",
    "y": "the targets, an (n,) array (or (n, c): the squared loss with c outputs)",
    "loss": f"the loss's name, one of {sorted(_LOSSES)}",
    "head": f"the head, one of {sorted(HEADS)}",
    "params": "the MLP objective's flat point [w, V or v, W_1, b_1, ...]",
    "widths": "the MLP's layer widths, integers",
    "activation": f"the MLP's activation, one of {sorted(ACTIVATIONS)}",
    "bias": "whether the MLP's layers have biases, True or False",
    "feature_bias": "whether a constant feature is appended (Remark 1), True or False",
    "Phi": "the features, an (n, k) array",
    "w": "the output weights, a (d,) array",
    "V": "the residual head's (d, k) matrix",
    "v": "the skip head's (k,) vector",
    "W": "the output weights with c outputs, a (c, d) array",
    "B": "the skip head's (c, k) matrix with c outputs",
    "n_classes": "the number of classes c of the cross-entropy loss, an integer",
}
_ZIP = b"PK\x03\x04"
_NPY = b"\x93NUMPY"


class PointFileError(ValueError):
    """A point file that cannot be read or does not describe an objective and a point.

    ``str(err)`` is one line, ``"<path>: <reason>"``; ``err.path`` and ``err.reason`` hold
    the two parts.
    """

    def __init__(self, path, reason: str):
        self.path = os.fspath(path)
        self.reason = " ".join(str(reason).split())  # one line
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):
        return type(self), (self.path, self.reason)


@validated
def save_point(path: str | os.PathLike, objective: Objective | FeatureObjective,
               x) -> Path:
    """Write ``objective`` and the point ``x`` to ``path`` in the format of
    :func:`load_point` (and of ``resnet-core certify``).

    Parameters
    ----------
    path : str or path-like
        Where to write; used as given (no ``.npz`` is appended).
    objective : Objective or FeatureObjective
        Its data, loss, head, sample weights and (Objective) widths, activation and bias
        are stored; thread and chunk settings are not (they do not change the problem).
    x : array
        The point: all parameters (Objective) or ``[w, vec(V)]`` / ``[w, v]``
        (FeatureObjective; ``[vec(W), vec(V)]`` / ``[vec(W), vec(B)]`` with c outputs).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        If the objective's loss is a custom one (a file holds a loss by name only), or
        ``x`` does not fit the objective.
    TypeError
        If ``objective`` is neither an Objective nor a FeatureObjective.
    """
    if not isinstance(objective, (Objective, FeatureObjective)):
        raise TypeError("objective must be an Objective or a FeatureObjective; got "
                        f"{type(objective).__name__}")
    loss = objective.loss
    if (VECTOR_LOSSES if loss.vector else BUILTIN_LOSSES).get(loss.name) is not loss:
        raise ValueError(f"cannot store the custom loss {loss.name!r}: a point file holds "
                         f"a built-in loss by name, one of {sorted(_LOSSES)}")
    parts = objective.unpack(x)  # checks x's length and values
    s = objective.sample_weight
    arrays = {"format_version": np.array(FORMAT_VERSION), "X": objective.X, "y": objective.y,
              "loss": np.array(loss.name), "head": np.array(objective.head),
              "feature_bias": np.array(bool(objective.feature_bias))}
    if objective.n_classes is not None:
        arrays["n_classes"] = np.array(objective.n_classes, dtype=np.int64)
    if not np.all(s == s[0]):
        # the weights as given (validated, not normalised): load_point normalises them
        # again and gets exactly this objective's s (s itself would be off in the last bit)
        given = getattr(objective.engine, "given_weight", None)
        arrays["sample_weight"] = s if given is None else given
    if isinstance(objective, Objective):
        arrays.update(params=np.asarray(x, dtype=objective.dtype),
                      widths=np.asarray(objective.widths, dtype=np.int64),
                      activation=np.array(objective.activation),
                      bias=np.array(bool(objective.bias)))
    else:
        Phi = objective.Phi
        arrays["Phi"] = Phi[:, :-1] if objective.feature_bias else Phi
        arrays.update(parts)
    path = Path(path)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


@validated
def load_point(path: str | os.PathLike
               ) -> tuple[Objective | FeatureObjective, np.ndarray, dict]:
    """Read a point file written by :func:`save_point` (or by hand with the same keys).

    Parameters
    ----------
    path : str or path-like
        A ``.npz`` archive (see the module docstring for its keys).

    Returns
    -------
    objective : Objective or FeatureObjective
        The objective the file describes.
    x : ndarray
        The point on it.
    meta : dict
        What the problem is, in plain Python values: ``kind`` (``"Objective"`` or
        ``"FeatureObjective"``), ``loss``, ``head``, ``n``, ``d``, ``k``, ``n_outputs``
        (``c``), ``weighted``,
        ``format_version`` (None if absent) and ``activation``, ``widths``, ``bias``
        (Objective) or ``features="given"`` (FeatureObjective).

    Raises
    ------
    PointFileError
        (a ValueError) With a one-line message, if the file is missing, empty, not an
        ``.npz`` archive (a ``.npy`` file, text, a damaged zip), holds object arrays,
        lacks a key (named, with what it should hold), has an unexpected key, or its arrays
        do not make an objective and a point.
    """
    data = _read(path)
    keys = set(data)
    kind = _kind(path, keys)
    W = "W" if "W" in keys and "w" not in keys else "w"  # c outputs: the head's W
    required = _COMMON + {"Objective": _MLP, "FeatureObjective": ("Phi", W), None: ()}[kind]
    missing = [f"key {k!r} ({_WHAT[k]})" for k in required if k not in keys]
    if kind is None:
        missing.append(f"key 'params' ({_WHAT['params']}) or 'Phi' ({_WHAT['Phi']})")
    if missing:
        raise PointFileError(path, "missing " + "; ".join(missing) + "; nothing is assumed "
                                   f"(the file has {sorted(keys)})")

    loss = _choice(path, data, "loss", _LOSSES)
    head = _choice(path, data, "head", HEADS)
    allowed = set(required) | set(_OPTIONAL)
    if loss in VECTOR_LOSSES and VECTOR_LOSSES[loss].labels:
        allowed.add("n_classes")
    if kind == "FeatureObjective":
        M = "V" if head == "residual" else "B" if W == "W" else "v"
        if M not in keys:
            raise PointFileError(path, f"missing key {M!r} ({_WHAT[M]}), which the {head} "
                                       "head needs")
        allowed.add(M)
    extra = sorted(keys - allowed)
    if extra:
        raise PointFileError(path, f"unexpected key(s) {extra} for {kind} with the {head} "
                                   f"head and the {loss} loss; a point file holds only "
                                   f"{sorted(allowed)}")
    version = None
    if "format_version" in keys:
        version = _scalar(path, data, "format_version", "iu", "an integer")
        if version != FORMAT_VERSION:
            raise PointFileError(path, f"format_version {version} is not supported (this "
                                       f"resnet_core reads version {FORMAT_VERSION})")
    for k in keys - {"loss", "head", "activation", "bias", "feature_bias", "format_version"}:
        if data[k].dtype.kind not in "biuf":
            raise PointFileError(path, f"key {k!r} must hold real numbers; got dtype "
                                       f"{data[k].dtype}")
    n_classes = (_scalar(path, data, "n_classes", "iu", "an integer")
                 if "n_classes" in keys else None)
    weights = data.get("sample_weight")
    meta = {"kind": kind, "loss": loss, "head": head, "format_version": version,
            "weighted": weights is not None,
            "feature_bias": _flag(path, data, "feature_bias")}
    if kind == "Objective":
        meta.update(_mlp_settings(path, data))
    else:
        meta["features"] = "given"
    common = dict(loss=loss, head=head, feature_bias=meta["feature_bias"],
                  sample_weight=weights, n_classes=n_classes)
    try:  # the constructors check shapes and values, naming the argument (= the key)
        if kind == "Objective":
            obj = Objective(data["X"], data["y"], widths=tuple(meta["widths"]),
                            activation=meta["activation"], bias=meta["bias"], **common)
            x = as_float_array("params", data["params"], ndim=1, dtype=obj.dtype,
                               shape=(obj.n_params,))
        else:
            obj = FeatureObjective(data["X"], data["Phi"], data["y"], **common)
            x = obj.pack(data[W], data[M])
    except (ValueError, TypeError) as err:
        raise PointFileError(path, f"its arrays do not make {kind}: {err}") from err
    meta.update(n=obj.n_samples, d=obj.d, k=obj.k, n_outputs=obj.n_outputs)
    return obj, x, meta


def _read(path) -> dict:
    """Every array of the archive at ``path``, loaded without pickles."""
    p = Path(path)
    if not p.exists():
        raise PointFileError(path, "no such file")
    if p.is_dir():
        raise PointFileError(path, "is a directory, not a .npz file")
    kind = _special_file(p)
    if kind:  # opening a FIFO blocks until a writer comes; a device may never end
        raise PointFileError(path, f"is {kind}, not a regular file; a point file is a .npz "
                                   "archive on disk")
    try:
        with open(p, "rb") as f:
            head = f.read(len(_NPY))
    except OSError as err:
        raise PointFileError(path, f"cannot be read: {err.strerror or err}") from err
    if not head:
        raise PointFileError(path, "is empty, not a .npz file")
    if head.startswith(_NPY):
        raise PointFileError(path, "is a .npy file (one array), not a .npz archive of named "
                                   "arrays; write it with resnet_core.save_point")
    if not head.startswith(_ZIP):
        raise PointFileError(path, "is not a .npz archive (no zip signature); write it "
                                   "with resnet_core.save_point or numpy.savez")
    key = None
    try:
        with np.load(p, allow_pickle=False) as npz:
            out = {}
            for key in npz.files:
                out[key] = npz[key]
                if not isinstance(out[key], np.ndarray):  # a member that is not a .npy
                    raise PointFileError(path, f"member {key!r} of the archive is not a "
                                               "numpy array (.npy)")
            return out
    except PointFileError:
        raise
    except ValueError as err:
        if "allow_pickle" in str(err) and key is not None:
            raise PointFileError(path, f"key {key!r} holds an object array (pickled Python "
                                       "objects), which a point file may not; store numbers "
                                       "or strings") from err
        where = f" (key {key!r})" if key is not None else ""
        raise PointFileError(path, f"damaged .npz archive{where}: {err}") from err
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as err:
        where = f" (key {key!r})" if key is not None else ""
        raise PointFileError(path, f"damaged .npz archive{where}: {err}") from err


def _special_file(p: Path) -> str | None:
    """What ``p`` is when it is not a regular file (``"a FIFO (named pipe)"``, ...), else
    None; decided by ``os.stat``, without opening it."""
    try:
        mode = os.stat(p).st_mode
    except OSError as err:
        raise PointFileError(p, f"cannot be read: {err.strerror or err}") from err
    if stat.S_ISREG(mode):
        return None
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "a special file"


def _mlp_settings(path, data) -> dict:
    """``activation``, ``widths`` (a list) and ``bias`` of an Objective's file, checked."""
    activation = _choice(path, data, "activation", ACTIVATIONS)
    widths = data["widths"]
    if widths.dtype.kind not in "iu" or widths.ndim > 1 or widths.size == 0:
        raise PointFileError(path, "key 'widths' must be one or more integers; got dtype "
                                   f"{widths.dtype}, shape {widths.shape}")
    return {"activation": activation, "widths": [int(h) for h in widths.ravel()],
            "bias": _flag(path, data, "bias")}


def _flag(path, data, key) -> bool:
    """A boolean key (True/False, or 1/0)."""
    value = _scalar(path, data, key, "biu", "True or False")
    if value not in (0, 1):
        raise PointFileError(path, f"key {key!r} must be True or False; got {value}")
    return bool(value)


def _kind(path, keys) -> str | None:
    """``"Objective"`` (``params``), ``"FeatureObjective"`` (``Phi``) or None (neither)."""
    if "params" in keys and "Phi" in keys:
        raise PointFileError(path, "holds both 'params' (an MLP's parameters) and 'Phi' "
                                   "(given features); a point file holds one of them")
    return "Objective" if "params" in keys else "FeatureObjective" if "Phi" in keys else None


def _scalar(path, data, key, kinds, what):
    a = data[key]
    if a.ndim != 0 or a.dtype.kind not in kinds:
        raise PointFileError(path, f"key {key!r} must be {what}; got dtype {a.dtype}, "
                                   f"shape {a.shape}")
    return a.item()


def _choice(path, data, key, choices) -> str:
    a = data[key]
    if a.ndim != 0 or a.dtype.kind not in "US":
        raise PointFileError(path, f"key {key!r} must be a string, {_WHAT[key]}; got dtype "
                                   f"{a.dtype}, shape {a.shape}")
    value = a.item()
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError as err:
            raise PointFileError(path, f"key {key!r} is not an ASCII string") from err
    if value not in choices:
        raise PointFileError(path, f"key {key!r} must be one of {sorted(choices)}; got "
                                   f"{value!r}")
    return value
