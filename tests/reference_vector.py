"""Plain-NumPy reference of the vector-output partial objective (issue 11, Remark 2).

Independent of ``resnet_core`` (never imports it): dense matrices, float64, loops over
samples where that is the plainest way to write a formula.

With fixed features ``Phi`` (n, k), ``W`` (c, d), ``V`` (d, k)::

    u_i = x_i + V phi_i,   p_i = W u_i (c),   F(W, V) = sum_i s_i l(p_i; y_i)

(``s`` normalised to sum to one).  Losses:

- ``"cross_entropy"``: ``l = logsumexp(p) - p_y`` (integer labels), gradient
  ``pi - e_y``, Hessian ``diag(pi) - pi pi^T`` with ``pi = softmax(p)``;
- ``"squared"``: ``l = ||p - y||^2 / 2`` (``y`` of shape (n, c)), gradient ``p - y``,
  Hessian ``I``.

Flat point ``z = [W row-major, V row-major]``.  Per sample the Jacobian of ``p`` in ``z`` is
``J = [I_c kron u^T, W kron phi^T]`` and the Hessian of ``F`` is
``E[J^T S J] + E[sum_a r_a d2 p_a]`` with ``d2 p_a / dW_{a j} dV_{j l} = phi_l``.
"""

import numpy as np

LOSSES = ("cross_entropy", "squared")


def weights(sample_weight, n):
    s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    return s / s.sum()


def split(z, c, d, k):
    z = np.asarray(z, dtype=np.float64)
    return z[:c * d].reshape(c, d), z[c * d:c * d + d * k].reshape(d, k)


def loss_terms(p, y, loss):
    """``(l, grad_p l, Hessian_p l)`` of one sample's scores ``p`` (c,)."""
    if loss == "squared":
        r = p - y
        return 0.5 * float(r @ r), r, np.eye(p.size)
    if loss == "cross_entropy":
        m = p.max()
        lse = m + np.log(np.exp(p - m).sum())
        pi = np.exp(p - lse)
        e = np.zeros(p.size)
        e[int(y)] = 1.0
        return float(lse - p[int(y)]), pi - e, np.diag(pi) - np.outer(pi, pi)
    raise ValueError(loss)


def value_grad(X, Phi, y, z, c, loss, sample_weight=None):
    """``(F, grad)`` with ``grad = [E[r u^T], W^T E[r phi^T]]`` flattened."""
    n, d = X.shape
    k = Phi.shape[1]
    W, V = split(z, c, d, k)
    s = weights(sample_weight, n)
    F, gW, gV = 0.0, np.zeros((c, d)), np.zeros((d, k))
    for i in range(n):
        u = X[i] + V @ Phi[i]
        l, r, _ = loss_terms(W @ u, y[i], loss)
        F += s[i] * l
        gW += s[i] * np.outer(r, u)
        gV += s[i] * np.outer(W.T @ r, Phi[i])
    return F, np.concatenate([gW.ravel(), gV.ravel()])


def hessian(X, Phi, y, z, c, loss, sample_weight=None):
    """The dense Hessian over ``z = [W, V]`` (Gauss-Newton part plus the ``r`` term)."""
    n, d = X.shape
    k = Phi.shape[1]
    W, V = split(z, c, d, k)
    s = weights(sample_weight, n)
    m = c * d + d * k
    H = np.zeros((m, m))
    for i in range(n):
        u = X[i] + V @ Phi[i]
        _, r, S = loss_terms(W @ u, y[i], loss)
        J = np.hstack([np.kron(np.eye(c), u[None, :]), np.kron(W, Phi[i][None, :])])
        H += s[i] * J.T @ S @ J
        # sum_a r_a p_a with p_a = sum_{j,l} W[a, j] V[j, l] phi_l: mixed second derivatives
        for a in range(c):
            for j in range(d):
                for l in range(k):
                    H[a * d + j, c * d + j * k + l] += s[i] * r[a] * Phi[i, l]
                    H[c * d + j * k + l, a * d + j] += s[i] * r[a] * Phi[i, l]
    return H


def hessian_fd(grad, z, h=1e-5):
    """Central differences of a gradient function, symmetrised."""
    z = np.asarray(z, dtype=np.float64)
    cols = []
    for j in range(z.size):
        e = np.zeros(z.size)
        e[j] = h
        cols.append((grad(z + e) - grad(z - e)) / (2 * h))
    H = np.column_stack(cols)
    return 0.5 * (H + H.T)


def linear_losses(X, y, W_star, loss):
    """Per-sample ``l(W* x_i; y_i)``."""
    return np.array([loss_terms(W_star @ X[i], y[i], loss)[0] for i in range(X.shape[0])])


def random_problem(rng, n, d, k, c, loss, weighted=True):
    """Inputs, features, targets suited to ``loss`` and weights."""
    X = rng.standard_normal((n, d))
    Phi = np.tanh(rng.standard_normal((n, k)) + X[:, :1])
    if loss == "squared":
        y = X @ rng.standard_normal((d, c)) + 0.3 * rng.standard_normal((n, c))
    else:
        y = np.argmax(X @ rng.standard_normal((d, c)) + rng.standard_normal((n, c)), axis=1)
        y[:min(c, n)] = np.arange(min(c, n))  # every class present where n allows
    s = rng.random(n) + 0.1 if weighted else None
    return X, Phi, y, s
