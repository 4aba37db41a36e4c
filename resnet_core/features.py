"""The feature map ``f_theta``: a fully connected network, its parameters and activations.

``f(x) = act(W_L act(... act(W_1 x + b_1) ...) + b_L)``: the activation is applied on every
layer, the last included (the "full pre-activation" residual unit whose last weight layer is
``V``).  ``W_l`` has shape ``(h_l, h_{l-1})`` with ``h_0 = d``; ``theta`` is the flat vector
``[W_1 (row-major), b_1, ..., W_L, b_L]`` (no ``b_l`` when ``bias=False``).

Activations ``act(z)`` (with the derivatives the kernels use):
``"tanh"``; ``"relu"`` ``max(z, 0)`` (derivative 1 for ``z > 0``, else 0; second derivative
0); ``"sigmoid"`` ``1 / (1 + e^{-z})``; ``"softplus"`` ``log(1 + e^z)``; ``"identity"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._schema import check
from ._validation import check_alloc, check_choice, check_size, largest_fitting

# Names and kernel codes of the activations.
ACTIVATIONS = dict(_kernels.ACTIVATION_CODES)


def _n_params(d: int, widths, bias: bool) -> int:
    """Entries of ``theta``: ``sum_l h_l h_{l-1} (+ h_l with biases)``, ``h_0 = d``."""
    return sum(h * f for h, f in zip(widths, (d,) + tuple(widths[:-1]))) + (
        sum(widths) if bias else 0)


@dataclass(frozen=True)
class MLPLayout:
    """Shapes and flat offsets of an MLP's parameters.

    Parameters
    ----------
    d : int
        Input dimension.
    widths : tuple of int
        Hidden widths ``h_1, ..., h_L``; ``k = widths[-1]``.
    bias : bool
    activation : str
    """

    d: int
    widths: tuple
    bias: bool
    activation: str

    def __post_init__(self):
        object.__setattr__(self, "widths", check("widths", self.widths))
        object.__setattr__(self, "bias", check("bias", self.bias))
        object.__setattr__(self, "activation", check("activation", self.activation))
        if len(self.widths) > _kernels.max_layers():
            raise ValueError(
                f"widths may name at most {_kernels.max_layers()} layers; got {len(self.widths)}"
            )
        check_size(f"theta for widths {self.widths} (d = {self.d}, float64)", 8 * self.n_params,
                   "use narrower or fewer layers")
        # a point and its gradient must fit before anything is computed on them
        check_alloc(f"a point and its gradient for widths {self.widths} (d = {self.d}, "
                    "float64)", 16 * self.n_params, self._widest)
        check_choice("activation", self.activation, ACTIVATIONS)

    def _widest(self, limit: int) -> str:
        """The advice when a point does not fit ``limit`` bytes: the widest network of
        equal widths that does (a bisection, run only then)."""
        L = len(self.widths)
        fit = largest_fitting(lambda h: 16 * _n_params(self.d, (h,) * L, self.bias), limit,
                              max(self.widths))
        return (f"use narrower or fewer layers: widths={(fit,) * L} is the widest {L}-layer "
                "network of equal widths that fits")

    @property
    def k(self) -> int:
        return self.widths[-1]

    @property
    def dims(self) -> np.ndarray:
        """``[d, h_1, ..., h_L]`` as the kernels take it."""
        return np.array((self.d,) + tuple(self.widths), dtype=np.intp)

    @property
    def act_code(self) -> int:
        return ACTIVATIONS[self.activation]

    def layer_slices(self):
        """``[(slice of W_l, slice of b_l or None), ...]`` into ``theta``."""
        out, off, fan_in = [], 0, self.d
        for h in self.widths:
            ws = slice(off, off + h * fan_in)
            off += h * fan_in
            bs = None
            if self.bias:
                bs = slice(off, off + h)
                off += h
            out.append((ws, bs))
            fan_in = h
        return out

    @property
    def n_params(self) -> int:
        return _n_params(self.d, self.widths, self.bias)

    def unpack(self, theta: np.ndarray):
        """Views ``[(W_l, b_l or None), ...]`` of the flat ``theta``."""
        layers, fan_in = [], self.d
        for h, (ws, bs) in zip(self.widths, self.layer_slices()):
            layers.append((theta[ws].reshape(h, fan_in), None if bs is None else theta[bs]))
            fan_in = h
        return layers

    def pack(self, layers, dtype=np.float64) -> np.ndarray:
        """The flat ``theta`` of ``[(W_l, b_l), ...]``."""
        if len(layers) != len(self.widths):
            raise ValueError(f"layers must have {len(self.widths)} entries; got {len(layers)}")
        theta = np.empty(self.n_params, dtype=dtype)
        fan_in = self.d
        for i, ((W, b), h, (ws, bs)) in enumerate(zip(layers, self.widths, self.layer_slices())):
            W = np.asarray(W)
            if W.shape != (h, fan_in):
                raise ValueError(f"layers[{i}] W must have shape {(h, fan_in)}; got {W.shape}")
            theta[ws] = W.ravel()
            if bs is not None:
                if b is None or np.shape(b) != (h,):
                    raise ValueError(f"layers[{i}] b must have shape {(h,)}; got {np.shape(b)}")
                theta[bs] = b
            fan_in = h
        return theta

    def init(self, rng: np.random.Generator, dtype=np.float64) -> np.ndarray:
        """LeCun-normal weights ``W_l ~ N(0, 1 / h_{l-1})``, zero biases."""
        layers, fan_in = [], self.d
        for h in self.widths:
            W = rng.standard_normal((h, fan_in)) / np.sqrt(fan_in)
            layers.append((W, np.zeros(h) if self.bias else None))
            fan_in = h
        return self.pack(layers, dtype=dtype)
