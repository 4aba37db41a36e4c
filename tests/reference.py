"""Plain-NumPy reference implementation of the ResNet objective of Shamir (2018).

"Are ResNets Provably Better than Linear Predictors?", O. Shamir, NeurIPS 2018.

This module is an *independent* reference used by the test-suite to check the
compiled ``resnet_core`` package.  It is deliberately written with full dense
matrices, float64 everywhere and no tricks, so that it is easy to read and to
audit.  It never imports ``resnet_core``.

Notation
--------
Data ``X`` (n, d), labels ``y`` (n,), sample weights ``s`` (n,), ``s_i >= 0``
(default all ones).  Expectations are weighted means::

    E[h] = sum_i s_i h_i / sum_i s_i.

Feature map (an MLP with the activation on *every* layer, the last included)::

    a_0 = x,   z_l = W_l a_{l-1} + b_l,   a_l = act(z_l),   f(x) = phi = a_L,

with ``W_l`` of shape (h_l, h_{l-1}), ``h_0 = d``, ``k = h_L = widths[-1]``;
the biases ``b_l`` are present only when ``bias=True``.

Heads::

    "residual":  p = w^T (x + V f(x)) = x.w + f(x).(V^T w),   w in R^d, V in R^{d x k}
    "skip":      p = w.x + v.f(x),                            v in R^k

Objective ``F = E[ loss(p; y) ]``.

Constant feature (Remark 1 of the paper, ``feature_bias=True``): the features
are ``phi(x) = [f(x); 1]``, built explicitly here with
``np.column_stack([Phi, ones])``, so ``k = widths[-1] + 1`` (or
``Phi.shape[1] + 1``) and the last column of ``V`` (last entry of ``v``) is a
bias.  The constant does not depend on the layers, so back-propagation uses
only the first ``widths[-1]`` columns of ``dF/dphi``.

Flat parameter vector (C order)::

    [w (d), V (d*k, row-major) | v (k), W_1 (h_1*d, row-major), b_1 (h_1), ...,
     W_L (h_L*h_{L-1}), b_L (h_L)]

(no ``b_l`` entries when ``bias=False``; ``k`` counts the constant column when
``feature_bias=True``).

For the "feature" functions (``feature_value_grad``, ``stats``,
``feature_hessian``, ``feature_hessp``) the feature matrix ``Phi`` (n, k) is
held fixed and only the head parameters ``z = [w, vec(V)]`` (residual, vec
row-major: ``V[i, j]`` sits at ``d + i*k + j``) or ``z = [w, v]`` (skip) vary.
"""

import numpy as np

__all__ = [
    "LOSSES",
    "ACTIVATIONS",
    "HEADS",
    "n_params",
    "unpack",
    "pack",
    "features",
    "with_constant",
    "forward",
    "value",
    "gradient",
    "hessian_fd",
    "hessp_fd",
    "feature_value_grad",
    "stats",
    "feature_hessian",
    "feature_hessp",
    "vector_loss",
    "vector_n_params",
    "vector_unpack",
    "vector_value",
    "vector_gradient",
    "vector_hessp_fd",
    "vector_feature_value_grad_hessian",
]

HEADS = ("residual", "skip")


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _sigmoid(z):
    """Numerically stable logistic sigmoid ``1 / (1 + exp(-z))``.

    Computed as ``exp(-log(1 + exp(-z)))`` with ``np.logaddexp`` so that it
    neither overflows nor loses precision for large ``|z|``.
    """
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def _weights(sample_weight, n):
    """Normalised sample weights ``s_i / sum_j s_j`` as a float64 (n,) array.

    ``E[h] = sum_i q_i h_i`` with the returned ``q``.
    """
    if sample_weight is None:
        s = np.ones(n, dtype=np.float64)
    else:
        s = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if s.shape[0] != n:
            raise ValueError("sample_weight must have length n")
        if np.any(s < 0):
            raise ValueError("sample weights must be non-negative")
    total = s.sum()
    if not total > 0:
        raise ValueError("sample weights must have a positive sum")
    return s / total


def _check_head(head):
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")


# ---------------------------------------------------------------------------
# Losses: function(p, y) -> (l, dl/dp, d2l/dp2), elementwise
# ---------------------------------------------------------------------------


def squared_loss(p, y):
    """Squared loss ``l = (p - y)^2 / 2``.

    Returns
    -------
    l, dl, d2l : ndarray
        ``l = (p - y)^2 / 2``, ``dl/dp = p - y``, ``d2l/dp2 = 1``.
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    r = p - y
    return 0.5 * r * r, r, np.ones_like(r)


def logistic_loss(p, y):
    """Logistic loss ``l = log(1 + exp(-y p))`` (labels ``y`` in {-1, +1}).

    Returns
    -------
    l, dl, d2l : ndarray
        ``l = logaddexp(0, -y p)``,
        ``dl/dp = -y * sigmoid(-y p)``,
        ``d2l/dp2 = y^2 * sigmoid(y p) * sigmoid(-y p)``
        (``y^2 = 1`` for labels in {-1, +1}).
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m = y * p
    l = np.logaddexp(0.0, -m)
    dl = -y * _sigmoid(-m)
    d2l = y * y * _sigmoid(m) * _sigmoid(-m)
    return l, dl, d2l


SMOOTHED_HINGE_H = 0.5


def smoothed_hinge_loss(p, y, h=SMOOTHED_HINGE_H):
    """C^2 cubic smoothing of the hinge loss ``max(0, 1 - y p)``.

    With ``t = 1 - y p`` and ``s = t + h`` (``h = 0.5``)::

        s <= 0         (t <= -h):  l = 0
        0 < s <= h             :   l = s^3 / (6 h^2)
        h < s < 2h             :   l = s - h + (2h - s)^3 / (6 h^2)
        s >= 2h        (t >= h):   l = t

    so ``l = max(0, t)`` outside ``|t| < h``.  In ``t``::

        dl/dt   = 0, s^2/(2h^2), 1 - (2h - s)^2/(2h^2), 1
        d2l/dt2 = 0, s/h^2,      (2h - s)/h^2,          0

    and, by the chain rule with ``dt/dp = -y``,
    ``dl/dp = -y dl/dt`` and ``d2l/dp2 = y^2 d2l/dt2`` (``= d2l/dt2`` for
    labels in {-1, +1}).

    Returns
    -------
    l, dl, d2l : ndarray
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    t = 1.0 - y * p
    s = t + h
    l = np.zeros_like(t)
    dt = np.zeros_like(t)
    d2t = np.zeros_like(t)

    low = (s > 0) & (s <= h)
    mid = (s > h) & (s < 2 * h)
    high = s >= 2 * h

    l[low] = s[low] ** 3 / (6 * h * h)
    dt[low] = s[low] ** 2 / (2 * h * h)
    d2t[low] = s[low] / (h * h)

    q = 2 * h - s[mid]
    l[mid] = s[mid] - h + q ** 3 / (6 * h * h)
    dt[mid] = 1.0 - q ** 2 / (2 * h * h)
    d2t[mid] = q / (h * h)

    l[high] = t[high]
    dt[high] = 1.0
    d2t[high] = 0.0

    return l, -y * dt, y * y * d2t


LOSSES = {
    "squared": squared_loss,
    "logistic": logistic_loss,
    "smoothed_hinge": smoothed_hinge_loss,
}


# ---------------------------------------------------------------------------
# Activations: function(z) -> (a, da/dz, d2a/dz2), elementwise
# ---------------------------------------------------------------------------


def tanh_act(z):
    """``a = tanh z``, ``a' = 1 - a^2``, ``a'' = -2 a (1 - a^2)``."""
    z = np.asarray(z, dtype=np.float64)
    a = np.tanh(z)
    da = 1.0 - a * a
    return a, da, -2.0 * a * da


def relu_act(z):
    """``a = max(0, z)``, ``a' = 1 if z > 0 else 0``, ``a'' = 0``."""
    z = np.asarray(z, dtype=np.float64)
    a = np.maximum(z, 0.0)
    da = (z > 0).astype(np.float64)
    return a, da, np.zeros_like(z)


def softplus_act(z):
    """``a = log(1 + e^z)`` (``logaddexp(0, z)``), ``a' = sigmoid(z)``,
    ``a'' = sigmoid(z) (1 - sigmoid(z))``."""
    z = np.asarray(z, dtype=np.float64)
    a = np.logaddexp(0.0, z)
    sig = _sigmoid(z)
    return a, sig, sig * _sigmoid(-z)


def sigmoid_act(z):
    """``a = sigmoid(z) = 1 / (1 + e^{-z})``, ``a' = a (1 - a)``,
    ``a'' = a (1 - a) (1 - 2a)``."""
    z = np.asarray(z, dtype=np.float64)
    a = _sigmoid(z)
    one_minus_a = _sigmoid(-z)
    da = a * one_minus_a
    return a, da, da * (one_minus_a - a)


def identity_act(z):
    """``a = z``, ``a' = 1``, ``a'' = 0``."""
    z = np.asarray(z, dtype=np.float64)
    return z.copy(), np.ones_like(z), np.zeros_like(z)


ACTIVATIONS = {
    "tanh": tanh_act,
    "relu": relu_act,
    "softplus": softplus_act,
    "sigmoid": sigmoid_act,
    "identity": identity_act,
}


# ---------------------------------------------------------------------------
# Parameter layout
# ---------------------------------------------------------------------------


def n_params(d, widths, head="residual", bias=True, feature_bias=False):
    """Length of the flat parameter vector.

    ``d + (d*k if head == "residual" else k)
    + sum_l (h_l * h_{l-1} + (h_l if bias else 0))`` with ``h_0 = d`` and
    ``k = widths[-1] + (1 if feature_bias else 0)``.
    """
    _check_head(head)
    widths = [int(h) for h in widths]
    if len(widths) == 0:
        raise ValueError("widths must be non-empty")
    k = widths[-1] + (1 if feature_bias else 0)
    total = d + (d * k if head == "residual" else k)
    prev = d
    for h in widths:
        total += h * prev + (h if bias else 0)
        prev = h
    return total


def unpack(x, d, widths, head="residual", bias=True, feature_bias=False):
    """Split the flat parameter vector into its named pieces (copies).

    Parameters
    ----------
    x : array_like, shape (n_params(d, widths, head, bias),)
    d : int
    widths : sequence of int
        ``[h_1, ..., h_L]``; ``k = widths[-1]``.
    head : {"residual", "skip"}
    bias : bool
    feature_bias : bool
        ``k = widths[-1] + 1``: the last column of ``V`` (entry of ``v``) is the bias.

    Returns
    -------
    dict
        ``"w"``: (d,); ``"V"``: (d, k) (residual) or ``"v"``: (k,) (skip);
        ``"layers"``: list of ``(W_l, b_l)`` with ``W_l`` (h_l, h_{l-1}) and
        ``b_l`` (h_l,) or ``None`` when ``bias=False``.
    """
    _check_head(head)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    widths = [int(h) for h in widths]
    expected = n_params(d, widths, head, bias, feature_bias)
    if x.shape[0] != expected:
        raise ValueError(f"x has length {x.shape[0]}, expected {expected}")
    k = widths[-1] + (1 if feature_bias else 0)
    pos = 0
    out = {}
    out["w"] = x[pos:pos + d].copy()
    pos += d
    if head == "residual":
        out["V"] = x[pos:pos + d * k].reshape(d, k).copy()
        pos += d * k
    else:
        out["v"] = x[pos:pos + k].copy()
        pos += k
    layers = []
    prev = d
    for h in widths:
        W = x[pos:pos + h * prev].reshape(h, prev).copy()
        pos += h * prev
        if bias:
            b = x[pos:pos + h].copy()
            pos += h
        else:
            b = None
        layers.append((W, b))
        prev = h
    out["layers"] = layers
    assert pos == x.shape[0]
    return out


def pack(params, head="residual"):
    """Inverse of :func:`unpack`: concatenate ``w, V|v, W_1, b_1, ...`` (C order)."""
    _check_head(head)
    pieces = [np.asarray(params["w"], dtype=np.float64).reshape(-1)]
    if head == "residual":
        pieces.append(np.asarray(params["V"], dtype=np.float64).reshape(-1))
    else:
        pieces.append(np.asarray(params["v"], dtype=np.float64).reshape(-1))
    for W, b in params["layers"]:
        pieces.append(np.asarray(W, dtype=np.float64).reshape(-1))
        if b is not None:
            pieces.append(np.asarray(b, dtype=np.float64).reshape(-1))
    return np.concatenate(pieces)


# ---------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------


def forward(X, layers, activation="tanh"):
    """Run the MLP and keep every intermediate.

    ``A_0 = X``, ``Z_l = A_{l-1} W_l^T + b_l``, ``A_l = act(Z_l)``.

    Returns
    -------
    As : list of ndarray
        ``[A_0, ..., A_L]`` with ``A_l`` of shape (n, h_l).
    dacts : list of ndarray
        ``[act'(Z_1), ..., act'(Z_L)]``.
    """
    act = ACTIVATIONS[activation]
    A = np.asarray(X, dtype=np.float64)
    As = [A]
    dacts = []
    for W, b in layers:
        Z = A @ np.asarray(W, dtype=np.float64).T
        if b is not None:
            Z = Z + np.asarray(b, dtype=np.float64)[None, :]
        A, dA, _ = act(Z)
        As.append(A)
        dacts.append(dA)
    return As, dacts


def features(X, layers, activation="tanh"):
    """Feature matrix ``Phi`` (n, k) with rows ``f(x_i)``.

    ``f(x) = act(W_L act(... act(W_1 x + b_1) ...) + b_L)``.
    """
    As, _ = forward(X, layers, activation)
    return As[-1]


def with_constant(Phi, feature_bias):
    """``[Phi, 1]`` (a new (n, k + 1) array) when ``feature_bias``, else ``Phi``."""
    Phi = np.asarray(Phi, dtype=np.float64)
    if not feature_bias:
        return Phi
    return np.column_stack([Phi, np.ones(Phi.shape[0])])


def _predict(X, Phi, params, head):
    """``p = X w + Phi V^T w`` (residual) or ``p = X w + Phi v`` (skip)."""
    w = params["w"]
    if head == "residual":
        return X @ w + Phi @ (params["V"].T @ w)
    return X @ w + Phi @ params["v"]


# ---------------------------------------------------------------------------
# Full objective
# ---------------------------------------------------------------------------


def value(X, y, x, *, widths, loss="logistic", activation="tanh", bias=True,
          head="residual", sample_weight=None, feature_bias=False):
    """Objective ``F(x) = E[ loss(p(x_i); y_i) ]``.

    Parameters
    ----------
    X : array_like (n, d)
    y : array_like (n,)
    x : array_like (n_params,)
        Flat parameters, layout of :func:`unpack`.
    widths : sequence of int
    loss : {"squared", "logistic", "smoothed_hinge"}
    activation : {"tanh", "relu", "softplus", "sigmoid", "identity"}
    bias : bool
    head : {"residual", "skip"}
    sample_weight : array_like (n,) or None
    feature_bias : bool
        Features ``[f(x); 1]`` (Remark 1).

    Returns
    -------
    float
        ``sum_i s_i l(p_i; y_i) / sum_i s_i``.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = X.shape
    q = _weights(sample_weight, n)
    params = unpack(x, d, widths, head, bias, feature_bias)
    Phi = with_constant(features(X, params["layers"], activation), feature_bias)
    p = _predict(X, Phi, params, head)
    l, _, _ = LOSSES[loss](p, y)
    return float(q @ l)


def gradient(X, y, x, *, widths, loss="logistic", activation="tanh", bias=True,
             head="residual", sample_weight=None, feature_bias=False):
    """Gradient of :func:`value` by plain back-propagation.

    With ``r_i = s_i l'(p_i) / sum_j s_j``:

    * residual head, ``U = X + Phi V^T``, ``c = V^T w``:
      ``dF/dw = U^T r``, ``dF/dV = w (Phi^T r)^T``, ``dF/dPhi = r c^T``;
    * skip head: ``dF/dw = X^T r``, ``dF/dv = Phi^T r``, ``dF/dPhi = r v^T``;
    * layers, from ``l = L`` down to 1, with ``D_L = dF/dPhi`` (its first
      ``widths[-1]`` columns: the constant column of ``feature_bias`` does not
      depend on the layers):
      ``Delta_l = D_l * act'(Z_l)``, ``dF/dW_l = Delta_l^T A_{l-1}``,
      ``dF/db_l = 1^T Delta_l``, ``D_{l-1} = Delta_l W_l``.

    Parameters are as for :func:`value`.

    Returns
    -------
    ndarray (n_params,)
        Flat gradient in the layout of :func:`unpack`.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = X.shape
    q = _weights(sample_weight, n)
    params = unpack(x, d, widths, head, bias, feature_bias)
    layers = params["layers"]
    As, dacts = forward(X, layers, activation)
    Phi = with_constant(As[-1], feature_bias)
    w = params["w"]
    p = _predict(X, Phi, params, head)
    _, dl, _ = LOSSES[loss](p, y)
    r = q * dl  # (n,)

    grads = {}
    if head == "residual":
        V = params["V"]
        U = X + Phi @ V.T  # (n, d)
        grads["w"] = U.T @ r
        grads["V"] = np.outer(w, Phi.T @ r)
        c = V.T @ w  # (k,)
    else:
        v = params["v"]
        grads["w"] = X.T @ r
        grads["v"] = Phi.T @ r
        c = v
    D = np.outer(r, c)[:, :As[-1].shape[1]]  # dF/dPhi, (n, widths[-1])

    layer_grads = [None] * len(layers)
    for l in range(len(layers) - 1, -1, -1):
        W, b = layers[l]
        Delta = D * dacts[l]  # (n, h_l)
        gW = Delta.T @ As[l]  # (h_l, h_{l-1})
        gb = Delta.sum(axis=0) if b is not None else None
        layer_grads[l] = (gW, gb)
        D = Delta @ W  # (n, h_{l-1})
    grads["layers"] = layer_grads
    return pack(grads, head)


def hessian_fd(X, y, x, *, widths, loss="logistic", activation="tanh",
               bias=True, head="residual", sample_weight=None, feature_bias=False,
               eps=1e-5):
    """Dense Hessian by central differences of :func:`gradient`.

    Column ``j`` is ``(g(x + eps e_j) - g(x - eps e_j)) / (2 eps)``.  The
    result is *not* symmetrised, so ``H - H^T`` measures the finite-difference
    error (and any inconsistency in :func:`gradient`).  For tiny problems
    only: it costs ``2 * n_params`` gradient evaluations.

    Returns
    -------
    ndarray (n_params, n_params)
    """
    kw = dict(widths=widths, loss=loss, activation=activation, bias=bias,
              head=head, sample_weight=sample_weight, feature_bias=feature_bias)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    m = x.shape[0]
    H = np.empty((m, m))
    for j in range(m):
        e = np.zeros(m)
        e[j] = eps
        H[:, j] = (gradient(X, y, x + e, **kw) - gradient(X, y, x - e, **kw)) / (2 * eps)
    return H


def hessp_fd(X, y, x, p, *, widths, loss="logistic", activation="tanh",
             bias=True, head="residual", sample_weight=None, feature_bias=False,
             eps=1e-3):
    """Hessian-vector product ``H(x) p`` by 4th-order central differences.

    ``H p ~ (-g(x + 2 eps p) + 8 g(x + eps p) - 8 g(x - eps p)
    + g(x - 2 eps p)) / (12 eps)`` with ``g`` = :func:`gradient`
    (truncation error ``O(eps^4)`` for smooth objectives).

    Returns
    -------
    ndarray (n_params,)
    """
    kw = dict(widths=widths, loss=loss, activation=activation, bias=bias,
              head=head, sample_weight=sample_weight, feature_bias=feature_bias)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)

    def g(t):
        return gradient(X, y, x + t * p, **kw)

    return (-g(2 * eps) + 8 * g(eps) - 8 * g(-eps) + g(-2 * eps)) / (12 * eps)


# ---------------------------------------------------------------------------
# Fixed-feature problem: F(w, V) (or F(w, v)) with Phi held fixed
# ---------------------------------------------------------------------------


def _split_head(z, d, k, head):
    """``z = [w, vec(V)]`` -> ``(w, V)`` (residual) or ``[w, v]`` -> ``(w, v)``."""
    _check_head(head)
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    expected = d + (d * k if head == "residual" else k)
    if z.shape[0] != expected:
        raise ValueError(f"z has length {z.shape[0]}, expected {expected}")
    w = z[:d].copy()
    if head == "residual":
        return w, z[d:].reshape(d, k).copy()
    return w, z[d:].copy()


def _head_pieces(X, Phi, y, z, loss, head, sample_weight, feature_bias=False):
    """Shared work: ``q`` (normalised weights), ``w``, ``V|v``, ``U``, ``l, l', l''``.

    ``U = X + Phi V^T`` (rows ``u_i = x_i + V phi_i``) for the residual head,
    ``U = X`` for the skip head.  The returned ``Phi`` is ``[Phi, 1]`` with
    ``feature_bias``.
    """
    X = np.asarray(X, dtype=np.float64)
    Phi = with_constant(Phi, feature_bias)
    y = np.asarray(y, dtype=np.float64)
    n, d = X.shape
    k = Phi.shape[1]
    q = _weights(sample_weight, n)
    w, M = _split_head(z, d, k, head)
    if head == "residual":
        U = X + Phi @ M.T
        p = U @ w
    else:
        U = X
        p = X @ w + Phi @ M
    l, dl, d2l = LOSSES[loss](p, y)
    return X, Phi, q, w, M, U, l, dl, d2l


def feature_value_grad(X, Phi, y, z, *, loss="logistic", head="residual",
                       sample_weight=None, feature_bias=False):
    """Value and gradient of ``F(w, V) = E[l(w^T (x + V phi); y)]`` for fixed ``Phi``.

    Residual head (``u = x + V phi``, ``g = E[l' phi]``)::

        grad_w = E[l' u],   grad_V = w g^T   (flattened row-major)

    Skip head (``p = w.x + v.phi``)::

        grad_w = E[l' x],   grad_v = E[l' phi] = g

    Parameters
    ----------
    X : array_like (n, d)
    Phi : array_like (n, k)
    y : array_like (n,)
    z : array_like (d + d*k,) or (d + k,)
        ``[w, vec(V)]`` (row-major) or ``[w, v]``; ``k`` counts the constant
        column with ``feature_bias``.
    loss, head, sample_weight : as for :func:`value`.
    feature_bias : bool
        Features ``[Phi, 1]`` (the same for every function below).

    Returns
    -------
    (float, ndarray)
        ``F`` and the flat gradient, same layout as ``z``.
    """
    X, Phi, q, w, M, U, l, dl, d2l = _head_pieces(X, Phi, y, z, loss, head,
                                                  sample_weight, feature_bias)
    r = q * dl
    F = float(q @ l)
    g = Phi.T @ r
    grad_w = U.T @ r
    if head == "residual":
        grad_M = np.outer(w, g).reshape(-1)
    else:
        grad_M = g
    return F, np.concatenate([grad_w, grad_M])


def stats(X, Phi, y, z, *, loss="logistic", head="residual", sample_weight=None,
          feature_bias=False):
    """Second-order statistics of the fixed-feature problem.

    With ``u = x + V phi`` (residual) or ``u = x`` (skip)::

        A = E[l'' u u^T]      (d, d)
        B = E[l'' u phi^T]    (d, k)
        C = E[l'' phi phi^T]  (k, k)
        g = E[l' phi]         (k,)

    Returns
    -------
    (A, B, C, g)
    """
    X, Phi, q, w, M, U, l, dl, d2l = _head_pieces(X, Phi, y, z, loss, head,
                                                  sample_weight, feature_bias)
    c = q * d2l
    A = U.T @ (c[:, None] * U)
    B = U.T @ (c[:, None] * Phi)
    C = Phi.T @ (c[:, None] * Phi)
    g = Phi.T @ (q * dl)
    return A, B, C, g


def feature_hessian(X, Phi, y, z, *, loss="logistic", head="residual",
                    sample_weight=None, feature_bias=False):
    """Dense Hessian of the fixed-feature objective ``F(w, V)`` (or ``F(w, v)``).

    Residual head, ``p = sum_a w_a x_a + sum_{i,j} w_i V_ij phi_j``, so
    ``dp/dw_a = u_a``, ``dp/dV_ij = w_i phi_j`` and
    ``d2p/(dw_a dV_ij) = delta_{ia} phi_j`` (all other second derivatives of
    ``p`` vanish).  Hence, with ``vec(V)`` row-major (index ``i*k + j``)::

        H_ww          = E[l'' u u^T]                          = A
        H_wV[a,(i,j)] = E[l'' u_a w_i phi_j] + delta_ia E[l' phi_j]
                      = w_i B[a,j] + delta_ia g_j
        H_VV          = E[l'' (w w^T) (x) (phi phi^T)]         = kron(w w^T, C)

    Skip head (``p`` linear in ``(w, v)``)::

        H = [[E l'' x x^T,   E l'' x phi^T],
             [E l'' phi x^T, E l'' phi phi^T]]

    Returns
    -------
    ndarray (d + d*k, d + d*k) or (d + k, d + k)
    """
    A, B, C, g = stats(X, Phi, y, z, loss=loss, head=head,
                       sample_weight=sample_weight, feature_bias=feature_bias)
    d = A.shape[0]
    k = C.shape[0]
    w = np.asarray(z, dtype=np.float64).reshape(-1)[:d]
    if head == "skip":
        return np.block([[A, B], [B.T, C]])
    H_wV = np.zeros((d, d * k))
    for a in range(d):
        for i in range(d):
            for j in range(k):
                H_wV[a, i * k + j] = w[i] * B[a, j] + (g[j] if i == a else 0.0)
    H_VV = np.kron(np.outer(w, w), C)
    return np.block([[A, H_wV], [H_wV.T, H_VV]])


def feature_hessp(X, Phi, y, z, p, *, loss="logistic", head="residual",
                  sample_weight=None, feature_bias=False):
    """Hessian-vector product of the fixed-feature objective, no dense Hessian.

    Residual head, direction ``p = [dw, vec(dV)]``::

        H_w = A dw + B dV^T w + dV g
        H_V = w (B^T dw + C dV^T w)^T + dw g^T     (flattened row-major)

    Skip head, direction ``p = [dw, dv]``::

        H_w = A dw + B dv,   H_v = B^T dw + C dv

    Returns
    -------
    ndarray, same shape as ``z``.
    """
    A, B, C, g = stats(X, Phi, y, z, loss=loss, head=head,
                       sample_weight=sample_weight, feature_bias=feature_bias)
    d = A.shape[0]
    k = C.shape[0]
    w = np.asarray(z, dtype=np.float64).reshape(-1)[:d]
    dw, dM = _split_head(p, d, k, head)
    if head == "skip":
        return np.concatenate([A @ dw + B @ dM, B.T @ dw + C @ dM])
    dV = dM
    Hw = A @ dw + B @ (dV.T @ w) + dV @ g
    HV = np.outer(w, B.T @ dw + C @ (dV.T @ w)) + np.outer(dw, g)
    return np.concatenate([Hw, HV.reshape(-1)])


# ---------------------------------------------------------------------------
# c outputs (Remark 2 of the paper): p = W (x + V f(x)) or p = W x + B f(x)
# ---------------------------------------------------------------------------
#
# Scores ``p`` have c entries; ``W`` is (c, d), ``V`` (d, k), ``B`` (c, k).  Flat layout
# (C order): ``[vec(W), vec(V) | vec(B), W_1, b_1, ...]``.  Losses of a score vector:
#
#   "cross_entropy": y an integer label, l = log sum_j exp(p_j) - p_y,
#                    dl/dp = softmax(p) - e_y, d2l/dp2 = diag(pi) - pi pi^T
#   "squared":       y a row of an (n, c) target, l = ||p - y||^2 / 2,
#                    dl/dp = p - y, d2l/dp2 = I


def vector_loss(P, y, loss):
    """Per-sample ``(l (n,), dl/dp (n, c), d2l/dp2 (n, c, c))`` of a score matrix ``P``."""
    P = np.asarray(P, dtype=np.float64)
    n, c = P.shape
    if loss == "squared":
        D = P - np.asarray(y, dtype=np.float64).reshape(n, c)
        return 0.5 * (D ** 2).sum(axis=1), D, np.broadcast_to(np.eye(c), (n, c, c)).copy()
    if loss != "cross_entropy":
        raise ValueError(f"unknown vector loss {loss!r}")
    labels = np.asarray(y).astype(int).reshape(-1)
    lse = np.logaddexp.reduce(P, axis=1)  # log sum_j exp(p_j), overflow-free
    pi = np.exp(P - lse[:, None])
    onehot = np.eye(c)[labels]
    l = lse - (P * onehot).sum(axis=1)
    H = np.stack([np.diag(row) - np.outer(row, row) for row in pi])
    return l, pi - onehot, H


def vector_n_params(d, c, widths, head="residual", bias=True, feature_bias=False):
    """Length of the flat vector: ``c*d + (d*k | c*k) + the layers``."""
    k = int(widths[-1]) + (1 if feature_bias else 0)
    layers = n_params(d, widths, "skip", bias, feature_bias) - d - k
    return c * d + (d * k if head == "residual" else c * k) + layers


def vector_unpack(x, d, c, widths, head="residual", bias=True, feature_bias=False):
    """``{"W": (c, d), "V": (d, k) | "B": (c, k), "layers": [(W_l, b_l), ...]}``."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    k = int(widths[-1]) + (1 if feature_bias else 0)
    rows = d if head == "residual" else c
    out = {"W": x[:c * d].reshape(c, d).copy()}
    out["V" if head == "residual" else "B"] = x[c * d:c * d + rows * k].reshape(rows, k).copy()
    rest = x[c * d + rows * k:]
    # the layers: reuse the scalar unpack on a vector with a dummy head of the right size
    dummy = np.concatenate([np.zeros(d + d * k), rest])
    out["layers"] = unpack(dummy, d, widths, "residual", bias, feature_bias)["layers"]
    return out


def _vector_pack(grads, head):
    pieces = [grads["W"].reshape(-1), grads["V" if head == "residual" else "B"].reshape(-1)]
    for gW, gb in grads["layers"]:
        pieces.append(gW.reshape(-1))
        if gb is not None:
            pieces.append(gb.reshape(-1))
    return np.concatenate(pieces)


def _vector_scores(X, Phi, params, head):
    """``P = X W^T + Phi (W V)^T`` (residual) or ``X W^T + Phi B^T`` (skip); ``M`` such
    that ``P = X W^T + Phi M^T``."""
    W = params["W"]
    M = W @ params["V"] if head == "residual" else params["B"]
    return X @ W.T + Phi @ M.T, M


def vector_value(X, y, x, *, c, widths, loss="cross_entropy", activation="tanh", bias=True,
                 head="residual", sample_weight=None, feature_bias=False):
    """``F = E[l(p_i; y_i)]`` with c outputs."""
    X = np.asarray(X, dtype=np.float64)
    q = _weights(sample_weight, X.shape[0])
    params = vector_unpack(x, X.shape[1], c, widths, head, bias, feature_bias)
    Phi = with_constant(features(X, params["layers"], activation), feature_bias)
    P, _ = _vector_scores(X, Phi, params, head)
    return float(q @ vector_loss(P, y, loss)[0])


def vector_gradient(X, y, x, *, c, widths, loss="cross_entropy", activation="tanh",
                    bias=True, head="residual", sample_weight=None, feature_bias=False):
    """Gradient of :func:`vector_value` by back-propagation.

    With ``R = q * dl/dp`` (n, c), ``U = X + Phi V^T``:
    residual ``dF/dW = R^T U``, ``dF/dV = W^T R^T Phi``, ``dF/dPhi = R W V``;
    skip ``dF/dW = R^T X``, ``dF/dB = R^T Phi``, ``dF/dPhi = R B``; then the layers as in
    :func:`gradient`.
    """
    X = np.asarray(X, dtype=np.float64)
    q = _weights(sample_weight, X.shape[0])
    params = vector_unpack(x, X.shape[1], c, widths, head, bias, feature_bias)
    layers = params["layers"]
    As, dacts = forward(X, layers, activation)
    Phi = with_constant(As[-1], feature_bias)
    P, M = _vector_scores(X, Phi, params, head)
    R = q[:, None] * vector_loss(P, y, loss)[1]
    W = params["W"]
    grads = {}
    if head == "residual":
        V = params["V"]
        grads["W"] = R.T @ (X + Phi @ V.T)
        grads["V"] = W.T @ (R.T @ Phi)
    else:
        grads["W"] = R.T @ X
        grads["B"] = R.T @ Phi
    D = (R @ M)[:, :As[-1].shape[1]]
    layer_grads = [None] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        Wl, b = layers[i]
        Delta = D * dacts[i]
        layer_grads[i] = (Delta.T @ As[i], Delta.sum(axis=0) if b is not None else None)
        D = Delta @ Wl
    grads["layers"] = layer_grads
    return _vector_pack(grads, head)


def vector_hessp_fd(X, y, x, p, eps=1e-3, **kw):
    """``H p`` by 4th-order central differences of :func:`vector_gradient`."""
    x = np.asarray(x, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)

    def g(t):
        return vector_gradient(X, y, x + t * p, **kw)

    return (-g(2 * eps) + 8 * g(eps) - 8 * g(-eps) + g(-2 * eps)) / (12 * eps)


def vector_feature_value_grad_hessian(X, Phi, y, z, *, c, loss="cross_entropy",
                                      head="residual", sample_weight=None,
                                      feature_bias=False):
    """Value, gradient and dense Hessian of ``F(W, V)`` (or ``F(W, B)``) for fixed ``Phi``,
    from the per-sample Jacobian ``J_i = dp_i/dz`` (c x n_z):

        F = E[l],  grad = E[J^T dl/dp],  H = E[J^T (d2l/dp2) J] + E[sum_a (dl/dp)_a d2p_a/dz2]

    Residual head (``u = x + V phi``): ``dp_a/dW_bj = [a = b] u_j``,
    ``dp_a/dV_ij = W_ai phi_j``, and the only second derivatives of ``p`` are
    ``d2p_a/(dW_ai dV_ij) = phi_j``.  Skip head: ``dp_a/dW_bj = [a = b] x_j``,
    ``dp_a/dB_bj = [a = b] phi_j``, ``p`` linear in ``z``.
    """
    X = np.asarray(X, dtype=np.float64)
    Phi = with_constant(Phi, feature_bias)
    n, d = X.shape
    k = Phi.shape[1]
    q = _weights(sample_weight, n)
    z = np.asarray(z, dtype=np.float64)
    W = z[:c * d].reshape(c, d)
    rows = d if head == "residual" else c
    M = z[c * d:].reshape(rows, k)
    nz = z.size
    F, grad, H = 0.0, np.zeros(nz), np.zeros((nz, nz))
    for i in range(n):
        x, phi = X[i], Phi[i]
        J = np.zeros((c, nz))
        if head == "residual":
            u = x + M @ phi
            p = W @ u
            for a in range(c):
                J[a, a * d:(a + 1) * d] = u
                J[a, c * d:] = np.outer(W[a], phi).reshape(-1)
        else:
            p = W @ x + M @ phi
            for a in range(c):
                J[a, a * d:(a + 1) * d] = x
                J[a, c * d + a * k:c * d + (a + 1) * k] = phi
        l, g1, h2 = vector_loss(p[None, :], np.asarray(y)[i:i + 1], loss)
        F += q[i] * l[0]
        grad += q[i] * J.T @ g1[0]
        H += q[i] * J.T @ h2[0] @ J
        if head == "residual":
            for a in range(c):
                for ii in range(d):
                    for j in range(k):
                        H[a * d + ii, c * d + ii * k + j] += q[i] * g1[0, a] * phi[j]
                        H[c * d + ii * k + j, a * d + ii] += q[i] * g1[0, a] * phi[j]
    return F, grad, H
