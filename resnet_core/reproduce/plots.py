"""Figures of ``resnet-core demo`` (matplotlib, an optional dependency: ``pip install
resnet-core[demo]``).  Each function takes the numbers of :mod:`.paper` and writes one
PNG."""

from __future__ import annotations

import numpy as np

from .. import theory
from .paper import FIGURE1_BOX


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure1(panels: list[dict], path) -> None:
    """The three panels of Figure 1 as contour plots on the searched window, stationary
    points marked."""
    plt = _pyplot()
    box = FIGURE1_BOX
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), constrained_layout=True)
    g = np.linspace(-box, box, 401)
    W, V = np.meshgrid(g, g)
    for ax, info in zip(axes, panels):
        panel = theory.figure1(info["panel"])
        Z = panel.fun(np.stack([W, V], axis=-1))
        levels = np.quantile(Z, np.linspace(0.0, 0.97, 30))
        cs = ax.contourf(W, V, Z, levels=np.unique(levels), cmap="viridis")
        fig.colorbar(cs, ax=ax, shrink=0.85)
        if info["reg"] == 0:
            for branch in (g[g > 0.05], g[g < -0.05]):  # the valley w (1 + v) = 1
                ax.plot(branch, 1 / branch - 1, color="white", lw=1.5,
                        label="global minima w(1+v) = 1" if branch[0] > 0 else None)
        if info["radius"] is not None:
            t = np.linspace(0, 2 * np.pi, 400)
            ax.plot(info["radius"] * np.cos(t), info["radius"] * np.sin(t), "w--", lw=1.5,
                    label=f"constraint ||(w, v)|| <= {info['radius']:g}")
        for s in info["saddles"]:
            ax.plot(*s["z"], "X", color="orange", ms=12, mec="k",
                    label=f"saddle ({s['z'][0]:.2f}, {s['z'][1]:.2f})")
        for m in info["spurious_minima"]:
            ax.plot(m["w"], m["v"], "*", color="red", ms=16, mec="k",
                    label=f"spurious local min ({m['w']:.2f}, {m['v']:.2f}), F = {m['F']:.3f}")
        if info["reg"] > 0:
            ax.plot(*info["global_min"], "o", color="white", ms=9, mec="k",
                    label=f"global min ({info['global_min'][0]:.2f}, "
                          f"{info['global_min'][1]:.2f})")
        ax.set(xlim=(-box, box), ylim=(-box, box), xlabel="w", ylabel="v",
               title=f"({info['panel']}) {info['title']}")
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    fig.suptitle("Figure 1 of Shamir (2018), recomputed: regularisation and constraints "
                 "create spurious local minima")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def escape_trajectory(traj: dict, path) -> None:
    """GD and PGD from the saddle of Example 1: the path on the contours, F per iteration."""
    plt = _pyplot()
    eps = traj["eps"]
    obj, z0 = theory.example1(eps)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    P = np.array(traj["pgd_path"])
    wl = max(1.2 * np.abs(P[:, 0]).max(), 1.0)
    vl = (z0[1] - 0.5 * wl, max(P[:, 1].max(), z0[1]) + 0.5 * wl)
    W, V = np.meshgrid(np.linspace(-wl, wl, 300), np.linspace(*vl, 300))
    Z = 0.5 * (W * (1 + eps * V) - 1) ** 2
    cs = ax1.contourf(W, V, Z, levels=30, cmap="viridis")
    fig.colorbar(cs, ax=ax1, label="F(w, v)")
    ax1.plot(P[:, 0], P[:, 1], "-", color="red", lw=1.5, label="perturbed GD")
    ax1.plot(*traj["gd_final"], "s", mfc="none", mec="white", mew=2.5, ms=22,
             label="plain GD (never moves)")
    ax1.plot(*z0, "X", color="orange", mec="k", ms=12, label=f"saddle (0, {z0[1]:g})")
    ax1.plot(*traj["pgd_final"], "*", color="red", mec="k", ms=15,
             label=f"PGD end, F = {traj['pgd_final_F']:.1e}")
    ax1.set(xlabel="w", ylabel="v", title=f"Example 1, eps = {eps:g}: paths from the saddle")
    ax1.legend(fontsize=8, loc="lower right")
    ax2.semilogy(np.maximum(traj["pgd_fun"], 1e-32), color="red", label="perturbed GD")
    ax2.semilogy(np.maximum(traj["gd_fun"], 1e-32), color="k", ls="--", label="plain GD")
    ax2.set(xlabel="iteration", ylabel="F (log scale)", title="objective per iteration")
    ax2.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def escape_vs_eps(study: dict, path) -> None:
    """Median and quartiles of the escape iterations against eps, log-log."""
    plt = _pyplot()
    rows = [r for r in study["rows"] if np.isfinite(r["median"])]
    e = np.array([r["eps"] for r in rows])
    med = np.array([r["median"] for r in rows])
    lo = med - np.array([r["q25"] for r in rows])
    hi = np.array([r["q75"] for r in rows]) - med
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    ax.errorbar(e, med, yerr=[lo, hi], fmt="o-", capsize=4,
                label=f"PGD, median and quartiles of {study['n_runs']} seeds")
    ax.loglog(e, med[0] * e[0] / e, "k--", label="reference ~ 1/eps")
    ax.set(xscale="log", yscale="log", xlabel="eps (curvature at the saddle: -eps)",
           ylabel="iterations to escape (F < 1/2 - 0.05)",
           title=f"Escaping Example 1's saddle: fitted slope {study['slope']:.2f}")
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def second_order(race: dict, path) -> None:
    """Iterations and wall time to a certified eps-SOPSP against eps, PGD against
    find_sopsp, on Example 1 (x axis: target eps = c^2 / 4) and on the real data set."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    styles = {"pgd": ("PGD", "o-"), "newton-nc": ("find_sopsp newton-nc", "s-"),
              "cubic": ("find_sopsp cubic", "^--")}
    for col, (key, title) in enumerate((("example1", "Example 1's saddle (0, -1/c)"),
                                        ("real", f"{race['data']}: Theorem 2 saddle"))):
        rows = race[key]
        e = np.array([r["eps"] for r in rows])
        for m, (label, fmt) in styles.items():
            for row, what in enumerate(("iter", "time")):
                v = np.maximum(np.array([r[f"{m}_{what}"] for r in rows], float), 1e-6
                               if what == "time" else 1)
                axes[row, col].loglog(e, v, fmt, label=label)
        axes[0, col].set(title=title, ylabel="iterations to a certified eps-SOPSP")
        axes[1, col].set(xlabel="eps (threshold -sqrt(mu2 eps), mu2 = 1)",
                         ylabel="wall time (s), certificate included")
        for ax in axes[:, col]:
            ax.invert_xaxis()
            ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def theorem4(curves: dict, path) -> None:
    """Best-iterate gap of projected SGD against T, log-log, with a 1/sqrt(T) line
    (:func:`theorem4_figure`), written to ``path``."""
    plt = _pyplot()
    fig = theorem4_figure(curves)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def theorem4_figure(curves: dict):
    """The Theorem 4 figure.  A gap ``<= 0`` (SGD's best iterate at or below the linear
    baseline) has no place on a log axis: it is drawn as a downward triangle on the bottom
    edge, at its ``T``, and a note under the plot gives its value."""
    from matplotlib.transforms import blended_transform_factory

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.6), constrained_layout=True)
    edge = blended_transform_factory(ax.transData, ax.transAxes)
    hidden, n_marked = [], 0
    for name, c in curves.items():
        T = np.array([r["T"] for r in c["rows"]], dtype=np.float64)
        gap = np.array([r["gap"] for r in c["rows"]], dtype=np.float64)
        pos = gap > 0
        line, = ax.loglog(T[pos], gap[pos], "o-",
                          label=f"{name} ({c['loss']}), slope {c['slope']:.2f}")
        if pos.any():
            ax.loglog(T, gap[pos][0] * np.sqrt(T[pos][0] / T), ":", color="gray")
        if not pos.all():
            # curves side by side at the same T: each moved right by 8% of a decade
            ax.plot(T[~pos] * 10 ** (0.08 * n_marked), np.zeros(int((~pos).sum())), "v",
                    transform=edge, clip_on=False, color=line.get_color(), markersize=9)
            n_marked += 1
            hidden += [f"{name} T = {t:.0e}: {g:.2g}" for t, g in zip(T[~pos], gap[~pos])]
    ax.plot([], [], ":", color="gray", label="reference 1/sqrt(T)")
    if hidden:
        ax.plot([], [], "v", color="gray", label="gap <= 0 (at the bottom edge)")
        ax.text(0.02, 0.05, "gap <= 0, not drawable on a log axis\n(triangles on the bottom "
                "edge): " + "; ".join(hidden), transform=ax.transAxes, fontsize=7,
                va="bottom", bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "gray"})
    ax.set(xlabel="SGD steps T", ylabel="gap F(best iterate) - min_{||u||<=b} F_lin(u)",
           title="Theorem 4: projected SGD on the skip head vs the best linear predictor")
    ax.legend()
    return fig
