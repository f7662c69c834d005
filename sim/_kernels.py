"""Numba kernels of the ensemble simulators (private).

Each kernel advances one *block* of particles (state arrays ``x`` (B, d), velocity ``v`` (B, d))
through SGD steps ``t0 .. t1-1``.  EM kernels: time loop outside, particle loop inside, so the
block's state stays cache resident.  SGD kernel: particle loop outside (each particle's
permutation row of N indices then stays in L1).  Kernels are ``nogil`` so that blocks run in
parallel in a thread pool; each block owns its random stream (SFC64 state, below), which makes
results independent of the number of threads.

The landscape kernels (numba dispatchers, see :mod:`theory.landscapes`) are composed into the
simulator kernels by factory functions cached on the dispatchers' identity
(``functools.lru_cache``), so every landscape type is compiled once per process and new
parameter values (read from ``params``) never trigger a recompilation.

Observables computed inside the kernels (no path storage):

* divergence: a step whose result is non-finite or has ``|θ_k| > bound`` is not applied; the
  particle is frozen at its last finite state and ``div_step[i]`` receives the 0-based step index;
* running histogram (1-D or 2-D, of coordinates ``hd0`` / ``hd1``) of the states after steps
  ``s >= max(burn, 1)`` with ``(s - burn) % every == 0``, and over the same samples the running
  sums ``hmom = [Σθ (d), Σθθᵀ (d·d)]`` (time averages without storing paths);
* first passage: the first time (SGD steps, fractional with sub-steps) at which
  ``|θ − target|² < r²``.

Random numbers: each block carries the 4-word state of an SFC64 generator (NumPy's
``np.random.SFC64``; the state is taken from ``SFC64(SeedSequence child).state`` so the raw
64-bit stream is bit-identical to NumPy's) and the kernels advance it in registers.  Normals use
the 256-layer Marsaglia–Tsang ziggurat exactly as NumPy's ``Generator.standard_normal`` does
(same bit usage, tail and wedge tests; the tables are recomputed here, and agree with NumPy's to
a few ulp, so the normals equal NumPy's SFC64 normals to ~1e-15 relative).  This is ~1.4× faster
than calling a numba ``np.random.Generator`` and the normals are the floor of an EM step.
Uniforms are ``(u64 >> 11)·2⁻⁵³`` (NumPy's ``random()``).  Random integers for minibatch
sampling are ``lo + floor(u·(hi − lo))``; the deviation from exact uniformity is below
``(hi − lo)·2⁻⁵³`` per draw (< 1e-12 for N ≤ 10⁴), far below any statistical resolution.
"""
from __future__ import annotations

import functools
import math

import numba
import numpy as np

__all__ = ["em_kernel", "em_kernel_1d", "sgd_kernel", "no_noise_cov", "standard_normals", "uniforms", "raw_uint64"]


# --------------------------------------------------------------------------------------------
# SFC64 generator and ziggurat normals, state held in registers (a, b, c, w)
# --------------------------------------------------------------------------------------------
def _ziggurat_tables():
    """Tables of the 256-layer ziggurat for exp(−x²/2) (Marsaglia & Tsang 2000), with 52-bit
    magnitudes as in NumPy: right-most layer edge r, layer area v = r f(r) + ∫_r^∞ f."""
    from scipy.special import erfc

    r = 3.6541528853610088
    v = r * math.exp(-0.5 * r * r) + math.sqrt(math.pi / 2.0) * erfc(r / math.sqrt(2.0))
    m1 = 2.0**52
    q = v / math.exp(-0.5 * r * r)
    ki = np.zeros(256, dtype=np.uint64)
    wi = np.zeros(256)
    fi = np.zeros(256)
    ki[0] = np.uint64(int((r / q) * m1))
    wi[0] = q / m1
    wi[255] = r / m1
    fi[0] = 1.0
    fi[255] = math.exp(-0.5 * r * r)
    dn = tn = r
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(v / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64(int((dn / tn) * m1))
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m1
    return ki, wi, fi, r, 1.0 / r


_ZKI, _ZWI, _ZFI, _ZR, _ZINV_R = _ziggurat_tables()
_U1 = np.uint64(1)
_U3 = np.uint64(3)
_U8 = np.uint64(8)
_U11 = np.uint64(11)
_U24 = np.uint64(24)
_U40 = np.uint64(40)
_U255 = np.uint64(255)
_MASK52 = np.uint64(0x000FFFFFFFFFFFFF)
_TWO_M53 = 1.0 / 9007199254740992.0


@numba.njit(nogil=True, inline="always")
def _sfc(a, b, c, w):
    """One SFC64 step: returns (output, a', b', c', w')."""
    tmp = a + b + w
    return tmp, b ^ (b >> _U11), c + (c << _U3), ((c << _U24) | (c >> _U40)) + tmp, w + _U1


@numba.njit(nogil=True, inline="always")
def _uniform(a, b, c, w):
    r, a, b, c, w = _sfc(a, b, c, w)
    return float(r >> _U11) * _TWO_M53, a, b, c, w


@numba.njit(nogil=True, inline="always")
def _normal(a, b, c, w):
    """Standard normal by NumPy's ziggurat (random_standard_normal) on the SFC64 state."""
    while True:
        r, a, b, c, w = _sfc(a, b, c, w)
        idx = r & _U255
        r = r >> _U8
        rabs = (r >> _U1) & _MASK52
        x = float(rabs) * _ZWI[idx]
        if r & _U1:
            x = -x
        if rabs < _ZKI[idx]:
            return x, a, b, c, w
        if idx == 0:
            while True:
                r1, a, b, c, w = _sfc(a, b, c, w)
                r2, a, b, c, w = _sfc(a, b, c, w)
                xx = -_ZINV_R * math.log1p(-(float(r1 >> _U11) * _TWO_M53))
                yy = -math.log1p(-(float(r2 >> _U11) * _TWO_M53))
                if yy + yy > xx * xx:
                    if (rabs >> _U8) & _U1:
                        return -(_ZR + xx), a, b, c, w
                    return _ZR + xx, a, b, c, w
        else:
            r1, a, b, c, w = _sfc(a, b, c, w)
            if (_ZFI[idx - 1] - _ZFI[idx]) * (float(r1 >> _U11) * _TWO_M53) + _ZFI[idx] < math.exp(-0.5 * x * x):
                return x, a, b, c, w


@numba.njit(nogil=True, cache=True)
def standard_normals(state, n):
    """n standard normals from the SFC64 ``state`` (uint64 (4,), advanced in place)."""
    a, b, c, w = state[0], state[1], state[2], state[3]
    out = np.empty(n)
    for i in range(n):
        out[i], a, b, c, w = _normal(a, b, c, w)
    state[0], state[1], state[2], state[3] = a, b, c, w
    return out


@numba.njit(nogil=True, cache=True)
def uniforms(state, n):
    """n uniforms in [0, 1) from the SFC64 ``state`` (advanced in place)."""
    a, b, c, w = state[0], state[1], state[2], state[3]
    out = np.empty(n)
    for i in range(n):
        out[i], a, b, c, w = _uniform(a, b, c, w)
    state[0], state[1], state[2], state[3] = a, b, c, w
    return out


@numba.njit(nogil=True, cache=True)
def raw_uint64(state, n):
    """n raw 64-bit outputs of the SFC64 ``state`` (equal to ``np.random.SFC64.random_raw``)."""
    a, b, c, w = state[0], state[1], state[2], state[3]
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        out[i], a, b, c, w = _sfc(a, b, c, w)
    state[0], state[1], state[2], state[3] = a, b, c, w
    return out


@numba.njit(nogil=True, cache=True)
def no_noise_cov(theta, params, data, out):  # pragma: no cover - placeholder, never called
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = 0.0


@numba.njit(nogil=True, cache=True, inline="always")
def _bin(xv, edges, uniform, inv_w):
    nb = edges.shape[0] - 1
    if not (xv >= edges[0] and xv <= edges[nb]):  # also rejects NaN
        return -1
    if uniform:
        j = int((xv - edges[0]) * inv_w)
        if j >= nb:
            j = nb - 1
        if j > 0 and xv < edges[j]:
            j -= 1
        elif j + 1 < nb and xv >= edges[j + 1]:
            j += 1
        return j
    j = np.searchsorted(edges, xv, side="right") - 1
    if j >= nb:
        j = nb - 1
    return j


@numba.njit(nogil=True, cache=True)
def _chol_psd(c, lo, d):
    """Lower Cholesky factor of a symmetric PSD matrix, zero pivots (up to round-off) give a zero
    column; lo @ lo.T == c for PSD c."""
    scale = 0.0
    for j in range(d):
        if abs(c[j, j]) > scale:
            scale = abs(c[j, j])
    tol = 1e-13 * scale
    for j in range(d):
        s = c[j, j]
        for k in range(j):
            s -= lo[j, k] * lo[j, k]
        for i in range(j):
            lo[i, j] = 0.0
        if s <= tol:
            for i in range(j, d):
                lo[i, j] = 0.0
            continue
        ljj = math.sqrt(s)
        lo[j, j] = ljj
        for i in range(j + 1, d):
            s2 = c[i, j]
            for k in range(j):
                s2 -= lo[i, k] * lo[j, k]
            lo[i, j] = s2 / ljj


@numba.njit(nogil=True, cache=True)
def _hist_add(xrow, hist_mode, hd0, hd1, e0, e1, uni0, uni1, inv0, inv1, hist, hist_out, hmom):
    # running first and second moments of all coordinates: hmom = [Σθ (d), Σθθᵀ (d*d)]
    d = xrow.shape[0]
    for k in range(d):
        hmom[k] += xrow[k]
        for j in range(d):
            hmom[d + k * d + j] += xrow[k] * xrow[j]
    j0 = _bin(xrow[hd0], e0, uni0, inv0)
    if hist_mode == 1:
        if j0 >= 0:
            hist[j0, 0] += 1
        else:
            hist_out[0] += 1
    else:
        j1 = _bin(xrow[hd1], e1, uni1, inv1)
        if j0 >= 0 and j1 >= 0:
            hist[j0, j1] += 1
        else:
            hist_out[0] += 1


@functools.lru_cache(maxsize=None)
def em_kernel_1d(grad, momentum: bool = False):
    """Euler–Maruyama block kernel, fast path for d = 1 and isotropic noise (σ folded into
    ``nc_arr``).  Same arguments and update as :func:`em_kernel` (``mode``, ``bmat``, ``data`` are
    accepted and ignored).  ``momentum`` selects the heavy-ball variant at compile time (the
    plain variant then has no momentum branch in its inner loop; ``mu`` must be 0 for it)."""
    MOM = bool(momentum)

    @numba.njit(nogil=True)
    def advance(x, v, params, data, t0, t1, n_sub, dc_arr, nc_arr, mu, mode, bmat, st, bound,
                div_step, hist_mode, burn, every, hd0, hd1, e0, e1, uni0, uni1, inv0, inv1,
                hist, hist_out, hmom, fp_on, fp_target, fp_r2, fp_time):
        B = x.shape[0]
        inv_sub = 1.0 / n_sub
        th = np.empty(1)
        g = np.empty(1)
        tgt = fp_target[0]
        ra, rb, rc, rw = st[0], st[1], st[2], st[3]
        for t in range(t0, t1):
            dc = dc_arr[t]
            nc = nc_arr[t]
            s_done = t + 1
            do_hist = hist_mode > 0 and s_done >= burn and s_done >= 1 and (s_done - burn) % every == 0
            for sub in range(n_sub):
                hist_now = do_hist and sub == n_sub - 1
                tnow = t + (sub + 1) * inv_sub
                for i in range(B):
                    if div_step[i] >= 0:
                        continue
                    x0 = x[i, 0]
                    th[0] = x0
                    grad(th, params, g)
                    zz, ra, rb, rc, rw = _normal(ra, rb, rc, rw)
                    if MOM:
                        vv = mu * v[i, 0] - dc * g[0] + nc * zz
                        x1 = x0 + vv
                        if not (abs(x1) <= bound and abs(x1) < np.inf and abs(vv) < np.inf):
                            div_step[i] = t
                            continue
                        v[i, 0] = vv
                    else:
                        x1 = x0 - dc * g[0] + nc * zz
                        if not (abs(x1) <= bound and abs(x1) < np.inf):
                            div_step[i] = t
                            continue
                    x[i, 0] = x1
                    if fp_on and fp_time[i] == np.inf:
                        dd = x1 - tgt
                        if dd * dd < fp_r2:
                            fp_time[i] = tnow
                    if hist_now:
                        hmom[0] += x1
                        hmom[1] += x1 * x1
                        j0 = _bin(x1, e0, uni0, inv0)
                        if j0 >= 0:
                            hist[j0, 0] += 1
                        else:
                            hist_out[0] += 1

        st[0], st[1], st[2], st[3] = ra, rb, rc, rw

    return advance


@functools.lru_cache(maxsize=None)
def em_kernel(grad, noise_cov=no_noise_cov):
    """Euler–Maruyama block kernel for the landscape gradient kernel ``grad`` (and, for
    state-dependent noise, its ``noise_cov`` kernel), any dimension d.

    Update (time in SGD steps, sub-step ``dt``; ``dc[t] = η_t·dt``, ``nc[t] = η_t·√dt/√S_t``;
    noise ``B ξ`` with ξ ~ N(0, I)):

        plain:      θ ← θ − dc·∇L(θ) + nc·B ξ
        heavy ball: v ← μ v − dc·∇L(θ) + nc·B ξ;  θ ← θ + v

    ``mode`` 0: isotropic, B = σ I with σ folded into ``nc``;
    1: constant B = ``bmat`` (a square root of C); 2: B = chol C(θ) from ``noise_cov`` each step.
    """

    @numba.njit(nogil=True)
    def advance(x, v, params, data, t0, t1, n_sub, dc_arr, nc_arr, mu, mode, bmat, st, bound,
                div_step, hist_mode, burn, every, hd0, hd1, e0, e1, uni0, uni1, inv0, inv1,
                hist, hist_out, hmom, fp_on, fp_target, fp_r2, fp_time):
        B = x.shape[0]
        d = x.shape[1]
        use_mom = mu != 0.0
        inv_sub = 1.0 / n_sub
        th = np.empty(d)
        g = np.empty(d)
        z = np.empty(d)
        xi = np.empty(d)
        xn = np.empty(d)
        vn = np.empty(d)
        cm = np.empty((d, d))
        lm = np.zeros((d, d))
        ra, rb, rc, rw = st[0], st[1], st[2], st[3]
        for t in range(t0, t1):
            dc = dc_arr[t]
            nc = nc_arr[t]
            s_done = t + 1
            do_hist = hist_mode > 0 and s_done >= burn and s_done >= 1 and (s_done - burn) % every == 0
            for sub in range(n_sub):
                hist_now = do_hist and sub == n_sub - 1
                tnow = t + (sub + 1) * inv_sub
                for i in range(B):
                    if div_step[i] >= 0:
                        continue
                    for k in range(d):
                        th[k] = x[i, k]
                    grad(th, params, g)
                    if mode == 0:
                        for k in range(d):
                            zz, ra, rb, rc, rw = _normal(ra, rb, rc, rw)
                            xi[k] = nc * zz
                    else:
                        for k in range(d):
                            zz, ra, rb, rc, rw = _normal(ra, rb, rc, rw)
                            z[k] = zz
                        if mode == 2:
                            noise_cov(th, params, data, cm)
                            _chol_psd(cm, lm, d)
                            for k in range(d):
                                s = 0.0
                                for j in range(k + 1):
                                    s += lm[k, j] * z[j]
                                xi[k] = nc * s
                        else:
                            for k in range(d):
                                s = 0.0
                                for j in range(d):
                                    s += bmat[k, j] * z[j]
                                xi[k] = nc * s
                    ok = True
                    for k in range(d):
                        if use_mom:
                            vn[k] = mu * v[i, k] - dc * g[k] + xi[k]
                            xn[k] = th[k] + vn[k]
                            if not (abs(vn[k]) < np.inf):
                                ok = False
                        else:
                            xn[k] = th[k] - dc * g[k] + xi[k]
                        if not (abs(xn[k]) <= bound and abs(xn[k]) < np.inf):
                            ok = False
                    if not ok:
                        div_step[i] = t
                        continue
                    r2 = 0.0
                    for k in range(d):
                        x[i, k] = xn[k]
                        if use_mom:
                            v[i, k] = vn[k]
                        if fp_on:
                            dd = xn[k] - fp_target[k]
                            r2 += dd * dd
                    if fp_on and fp_time[i] == np.inf and r2 < fp_r2:
                        fp_time[i] = tnow
                    if hist_now:
                        _hist_add(x[i], hist_mode, hd0, hd1, e0, e1, uni0, uni1, inv0, inv1,
                                  hist, hist_out, hmom)

        st[0], st[1], st[2], st[3] = ra, rb, rc, rw

    return advance


def _inline_version(fn):
    """``fn`` recompiled with ``inline="always"`` (numba-IR inlining into the caller): the
    cross-library call of a landscape kernel with five array arguments costs ~45 ns, as much as
    the rest of an SGD step.  Returns ``fn`` itself when it is not a numba dispatcher."""
    py_func = getattr(fn, "py_func", None)
    if py_func is None:
        return fn
    return numba.njit(nogil=True, inline="always")(py_func)


@functools.lru_cache(maxsize=None)
def sgd_kernel(batch_grad, inline: bool = True, replacement: bool = False, momentum: bool = False):
    """Exact minibatch SGD block kernel for the landscape's ``batch_grad`` kernel (inlined into
    the kernel when ``inline``; the caller falls back to ``inline=False`` if that fails to compile).

    Per particle and step t (batch size S = ``bs[t]``, learning rate η = ``lr[t]``):

    * without replacement (``replacement`` False): the particle's index permutation ``perm[i]``
      is consumed S entries at a time from position ``pos[i]``; entries are drawn by an
      incremental Fisher–Yates shuffle (entry p + k is swapped with a uniform entry of
      ``p + k .. N − 1``), which yields exactly the law of a fresh uniform permutation per epoch.
      When fewer than S entries remain, a new epoch starts at position 0 (the N mod S left-over
      samples of the epoch are not used in it, like ``drop_last``);
    * with replacement: S independent uniform indices.

    Update: plain θ ← θ − η g_S(θ); heavy ball v ← μ v − η g_S(θ), θ ← θ + v.

    ``replacement`` and ``momentum`` are compile-time switches (the run-time ``replacement``
    argument is ignored; ``mu`` must be 0 unless ``momentum``): the specialised loops are smaller
    and keep the generator state in registers.
    """
    if inline:
        batch_grad = _inline_version(batch_grad)
    REPL = bool(replacement)
    MOM = bool(momentum)

    @numba.njit(nogil=True)
    def advance(x, v, params, data, t0, t1, lr_arr, bs_arr, mu, replacement, perm, pos, st, bound,
                div_step, hist_mode, burn, every, hd0, hd1, e0, e1, uni0, uni1, inv0, inv1,
                hist, hist_out, hmom, fp_on, fp_target, fp_r2, fp_time):
        B = x.shape[0]
        d = x.shape[1]
        N = data.shape[0]
        th = np.empty(d)
        g = np.empty(d)
        xn = np.empty(d)
        vn = np.empty(d)
        smax = 1
        for t in range(t0, t1):
            if bs_arr[t] > smax:
                smax = bs_arr[t]
        idx = np.empty(smax, dtype=np.int64)
        # particle loop outside, time loop inside: the particle's permutation row (N entries)
        # stays in L1 for all its steps (with the time loop outside every random swap would
        # miss the cache).  Each particle's random numbers are a contiguous run of the block's
        # stream, so results are still independent of the thread count.
        ra, rb, rc, rw = st[0], st[1], st[2], st[3]
        vl = np.zeros(d)
        for i in range(B):
            if div_step[i] >= 0:
                continue
            # the particle's state lives in th / vl during the segment, written back at its end
            for k in range(d):
                th[k] = x[i, k]
                if MOM:
                    vl[k] = v[i, k]
            # with replacement there is no permutation: perm/pos are 1-element placeholders
            p = 0 if REPL else pos[i]
            for t in range(t0, t1):
                eta = lr_arr[t]
                S = bs_arr[t]
                ib = idx[:S]
                if REPL:
                    for k in range(S):
                        u, ra, rb, rc, rw = _uniform(ra, rb, rc, rw)
                        j = int(u * N)
                        if j >= N:
                            j = N - 1
                        ib[k] = j
                else:
                    if p + S > N:
                        p = 0
                    for k in range(S):
                        a = p + k
                        u, ra, rb, rc, rw = _uniform(ra, rb, rc, rw)
                        j = a + int(u * (N - a))
                        if j >= N:
                            j = N - 1
                        tmp = perm[i, a]
                        perm[i, a] = perm[i, j]
                        perm[i, j] = tmp
                        ib[k] = perm[i, a]
                    p += S
                batch_grad(th, params, data, ib, g)
                ok = True
                for k in range(d):
                    if MOM:
                        vn[k] = mu * vl[k] - eta * g[k]
                        xn[k] = th[k] + vn[k]
                        if not (abs(vn[k]) < np.inf):
                            ok = False
                    else:
                        xn[k] = th[k] - eta * g[k]
                    if not (abs(xn[k]) <= bound and abs(xn[k]) < np.inf):
                        ok = False
                if not ok:
                    div_step[i] = t
                    break
                r2 = 0.0
                for k in range(d):
                    th[k] = xn[k]
                    if MOM:
                        vl[k] = vn[k]
                    if fp_on:
                        dd = xn[k] - fp_target[k]
                        r2 += dd * dd
                if fp_on and fp_time[i] == np.inf and r2 < fp_r2:
                    fp_time[i] = t + 1.0
                if hist_mode > 0:
                    s_done = t + 1
                    if s_done >= burn and (s_done - burn) % every == 0:
                        _hist_add(th, hist_mode, hd0, hd1, e0, e1, uni0, uni1, inv0, inv1, hist, hist_out, hmom)
            if not REPL:
                pos[i] = p
            for k in range(d):
                x[i, k] = th[k]
                if MOM:
                    v[i, k] = vl[k]
        st[0], st[1], st[2], st[3] = ra, rb, rc, rw

    return advance
