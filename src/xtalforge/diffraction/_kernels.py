"""Compiled (numba) loops of the diffraction layer: reflection listing and float32 structure
factor sums on the CPU.

:func:`rows_in_shell` — :func:`xtalforge.diffraction.reflections.reflections` keeps, per space
group, the non-absent ASU indices of an index box with a dense grid of their row numbers.
Listing a crystal's reflections then needs only the grid points inside the sphere
1/d² ≤ 1/d_min²: for each (h, k) the quadratic in l gives the range of l to visit, so the loop
touches about as many points as the sphere holds, not the whole box, and writes the rows in
lexicographic (h, k, l) order.

:func:`structure_factor_sums` — Σ_atoms w Σ_images exp(2πi h·x) of one structure, with the
cosine and sine of each term from one shared range reduction (in turns) and two short
polynomials, in loops the compiler vectorises over reflections.

Compiled on first use and cached on disk; importing this module compiles nothing.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def rows_in_shell(
    grid: np.ndarray,
    span: np.ndarray,
    big: tuple[int, int, int],
    lim: tuple[int, int, int],
    gstar: np.ndarray,
    inv_d2_max: float,
    inv_d2_min: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the candidate grid (``grid[h + big₀, k + big₁, l + big₂]`` ≥ 0) with |h| ≤ lim₀,
    |k| ≤ lim₁, |l| ≤ lim₂ and inv_d2_min ≤ 1/d² ≤ inv_d2_max (Å⁻², reciprocal metric
    ``gstar``), in (h, k, l) order, and their 1/d² (hᵀ G* h summed row by row). ``span``:
    per (h, k) column of the grid the first and last grid position in l that holds a
    candidate (the loop visits no other)."""
    g00, g01, g02 = gstar[0, 0], gstar[0, 1], gstar[0, 2]
    g10, g11, g12 = gstar[1, 0], gstar[1, 1], gstar[1, 2]
    g20, g21, g22 = gstar[2, 0], gstar[2, 1], gstar[2, 2]
    cap = 1024
    rows = np.empty(cap, dtype=np.int64)
    inv = np.empty(cap)
    n = 0
    for h in range(-lim[0], lim[0] + 1):
        for k in range(-lim[1], lim[1] + 1):
            # 1/d² = g22 l² + 2 b l + c for this (h, k): the l range inside the sphere, widened
            # by one on each side (the exact test below decides)
            b = 0.5 * ((g02 + g20) * h + (g12 + g21) * k)
            c = g00 * h * h + (g01 + g10) * h * k + g11 * k * k
            disc = b * b - g22 * (c - inv_d2_max)
            if disc < 0.0:
                continue
            root = math.sqrt(disc)
            first = span[h + big[0], k + big[1], 0] - big[2]
            last = span[h + big[0], k + big[1], 1] - big[2]
            lo = max(-lim[2], math.floor((-b - root) / g22) - 1, first)
            hi = min(lim[2], math.ceil((-b + root) / g22) + 1, last)
            for m in range(lo, hi + 1):
                row = grid[h + big[0], k + big[1], m + big[2]]
                if row < 0:
                    continue
                x0 = h * g00 + k * g10 + m * g20
                x1 = h * g01 + k * g11 + m * g21
                x2 = h * g02 + k * g12 + m * g22
                q = x0 * h + x1 * k + x2 * m
                if q > inv_d2_max or q < inv_d2_min:
                    continue
                if n == cap:
                    cap *= 2
                    rows2 = np.empty(cap, dtype=np.int64)
                    inv2 = np.empty(cap)
                    rows2[:n] = rows[:n]
                    inv2[:n] = inv[:n]
                    rows, inv = rows2, inv2
                rows[n] = row
                inv[n] = q
                n += 1
    return rows[:n], inv[:n]


@njit(cache=True)
def shell_columns(
    hkl: np.ndarray,
    epsilon: np.ndarray,
    centric: np.ndarray,
    multiplicity: np.ndarray,
    rows: np.ndarray,
    inv_d2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The candidate set's columns at ``rows`` (from :func:`rows_in_shell`): indices, d (Å,
    1/√(1/d²)), ε, centric flags and multiplicities, in one pass (numpy's row gathers cost
    about as much as listing the rows)."""
    n = rows.shape[0]
    out_hkl = np.empty((n, 3), hkl.dtype)
    d = np.empty(n)
    eps = np.empty(n, epsilon.dtype)
    cen = np.empty(n, centric.dtype)
    mult = np.empty(n, multiplicity.dtype)
    for i in range(n):
        r = rows[i]
        out_hkl[i, 0], out_hkl[i, 1], out_hkl[i, 2] = hkl[r, 0], hkl[r, 1], hkl[r, 2]
        d[i] = 1.0 / math.sqrt(inv_d2[i])
        eps[i], cen[i], mult[i] = epsilon[r], centric[r], multiplicity[r]
    return out_hkl, d, eps, cen, mult


# Taylor coefficients of sin θ and cos θ on |θ| ≤ π/4 (truncation ≤ 3·10⁻⁷ and 3·10⁻⁸, below the
# float32 rounding of the phase itself) and of eᶠ on |f| ≤ ln 2 / 2 (≤ 1.2·10⁻⁷)
_S3, _S5, _S7 = -1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0
_C2, _C4, _C6, _C8 = -0.5, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40320.0
_E2, _E3, _E4, _E5, _E6 = 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720
# ln 2 in two parts (Cody–Waite): n·ln2_hi is exact in float32 for |n| < 2¹²
_LN2_HI, _LN2_LO = 0.693145751953125, 1.4286067653302226e-06
_FAST = {"contract", "nsz", "nnan", "ninf"}  # no reassociation: sums stay in index order


@njit(cache=True, fastmath=_FAST)
def _exp_into(arg: np.ndarray, out: np.ndarray, bits: np.ndarray) -> None:
    """out = exp(arg) for arg ≤ 0 (float32, relative error ≤ 3·10⁻⁷; below e⁻⁸⁶ it is e⁻⁸⁶):
    n = round(arg / ln 2), eᶠ of the rest by its Taylor polynomial, 2ⁿ from its exponent bits;
    two loops the compiler vectorises (``bits``: int32 scratch of the same length)."""
    inv_ln2, hi, lo = np.float32(1 / math.log(2)), np.float32(_LN2_HI), np.float32(_LN2_LO)
    e2, e3, e4 = np.float32(_E2), np.float32(_E3), np.float32(_E4)
    e5, e6 = np.float32(_E5), np.float32(_E6)
    one, floor_ = np.float32(1), np.float32(-86.0)
    for r in range(arg.shape[0]):
        x = arg[r] if arg[r] > floor_ else floor_
        n = np.floor(x * inv_ln2 + np.float32(0.5))
        f = (x - n * hi) - n * lo
        out[r] = one + f * (one + f * (e2 + f * (e3 + f * (e4 + f * (e5 + f * e6)))))
        bits[r] = (np.int32(n) + 127) << 23
    scale = bits.view(np.float32)
    for r in range(arg.shape[0]):
        out[r] *= scale[r]


@njit(cache=True, fastmath=_FAST)
def structure_factor_sums(
    images: np.ndarray,
    hkl: np.ndarray,
    stol2: np.ndarray,
    z: np.ndarray,
    b_iso: np.ndarray,
    weight: np.ndarray,
    table: np.ndarray,
    expect: np.ndarray,
    re: np.ndarray,
    im: np.ndarray,
    expected: np.ndarray,
) -> None:
    """One structure's F = re + i·im = Σ_a w_a(s) Σ_images exp(2πi h·x) (electrons, float32)
    and, when ``expected`` is not empty, its Σ_a expect_a w_a(s)² (float64: the model's
    ⟨|F|²⟩/ε with ``expect`` = n_ops·m/k² per atom).

    ``images``: (atoms, images, 3) fractional coordinates; ``hkl``: (R, 3) Miller indices;
    ``stol2``: (R,) (sin θ/λ)² in Å⁻²; ``z``, ``b_iso`` (Å²), ``weight`` (occupancy ×
    centring / multiplicity): per atom; ``table``: (Z + 1, 9) IT92 coefficients a₁…a₄, b₁…b₄
    (Å²), c by atomic number. w_a(s) = weight_a f_Z(s) exp(−B_a s²), the form factors once per
    element. The phase t = h·x (turns, float32) is reduced to f = t − q/4 (q the nearest
    quarter turn), cos and sin of 2πf come from their Taylor polynomials and are rotated by q
    quarter turns. Sums run image by image, then atom by atom, in index order, so the result
    does not depend on what else is computed. Writes ``re``, ``im`` (and ``expected``), (R,)."""
    n_at, n_img, _ = images.shape
    nr = hkl.shape[0]
    h = np.empty(nr, np.float32)
    k = np.empty(nr, np.float32)
    l = np.empty(nr, np.float32)
    s2 = np.empty(nr, np.float32)
    for r in range(nr):
        h[r], k[r], l[r], s2[r] = hkl[r, 0], hkl[r, 1], hkl[r, 2], stol2[r]
    arg = np.empty(nr, np.float32)
    val = np.empty(nr, np.float32)
    bits = np.empty(nr, np.int32)
    # the form factor of each element present, in order of first appearance
    row = np.full(table.shape[0], -1, np.int64)
    n_el = 0
    for a in range(n_at):
        if row[z[a]] < 0:
            row[z[a]] = n_el
            n_el += 1
    ff = np.empty((n_el, nr), np.float32)
    for zz in range(table.shape[0]):
        e = row[zz]
        if e < 0:
            continue
        for r in range(nr):
            ff[e, r] = table[zz, 8]
        for j in range(4):
            bj, aj = np.float32(-table[zz, 4 + j]), np.float32(table[zz, j])
            for r in range(nr):
                arg[r] = bj * s2[r]
            _exp_into(arg, val, bits)
            for r in range(nr):
                ff[e, r] += aj * val[r]
    cs = np.empty(nr, np.float32)
    sn = np.empty(nr, np.float32)
    one, half, quarter, four = np.float32(1), np.float32(0.5), np.float32(0.25), np.float32(4)
    tau = np.float32(2 * math.pi)
    s3, s5, s7 = np.float32(_S3), np.float32(_S5), np.float32(_S7)
    c2, c4, c6, c8 = np.float32(_C2), np.float32(_C4), np.float32(_C6), np.float32(_C8)
    with_expected = expected.shape[0] > 0
    for r in range(nr):
        re[r] = 0.0
        im[r] = 0.0
    if with_expected:
        for r in range(nr):
            expected[r] = 0.0
    for a in range(n_at):
        for r in range(nr):
            cs[r] = 0.0
            sn[r] = 0.0
        for s in range(n_img):
            x = np.float32(images[a, s, 0] % 1.0)
            y = np.float32(images[a, s, 1] % 1.0)
            zf = np.float32(images[a, s, 2] % 1.0)
            for r in range(nr):
                t = h[r] * x + k[r] * y + l[r] * zf
                q = np.floor(t * four + half)
                f = (t - q * quarter) * tau
                f2 = f * f
                sin_f = f * (one + f2 * (s3 + f2 * (s5 + f2 * s7)))
                cos_f = one + f2 * (c2 + f2 * (c4 + f2 * (c6 + f2 * c8)))
                quad = np.int32(q)
                odd = np.float32(quad & 1)
                # q mod 4 = 0, 1, 2, 3: (cos, sin) = (c, s), (−s, c), (−c, −s), (s, −c)
                cs[r] += (odd * sin_f + (one - odd) * cos_f) * (one - np.float32((quad + 1) & 2))
                sn[r] += (odd * cos_f + (one - odd) * sin_f) * (one - np.float32(quad & 2))
        # this atom's weight per reflection: weight · f(s) · exp(−B s²)
        minus_b = np.float32(-b_iso[a])
        for r in range(nr):
            arg[r] = minus_b * s2[r]
        _exp_into(arg, val, bits)
        wa, e = np.float32(weight[a]), row[z[a]]
        for r in range(nr):
            w = wa * ff[e, r] * val[r]
            re[r] += w * cs[r]
            im[r] += w * sn[r]
            val[r] = w
        if with_expected:
            ea = expect[a]
            for r in range(nr):
                expected[r] += ea * (np.float64(val[r]) * np.float64(val[r]))


# atan on |a| ≤ tan(π/8) (Cephes atanf; relative error ≤ 2·10⁻⁷)
_A3, _A5, _A7, _A9 = -3.33329491539e-1, 1.99777106478e-1, -1.38776856032e-1, 8.05374449538e-2
_TAN_PI_8 = 0.41421356237309503


@njit(cache=True, fastmath=_FAST)
def polar(f: np.ndarray, amp: np.ndarray, phase: np.ndarray) -> None:
    """|F| and its phase (radians, (−π, π], as ``numpy.angle``) of complex64 ``f``, float32,
    in one loop the compiler vectorises: atan of min/max(|re|, |im|) ≤ 1, reduced by π/4 above
    tan(π/8), then placed in its octant."""
    one, zero = np.float32(1), np.float32(0)
    pi, half_pi, quarter_pi = np.float32(math.pi), np.float32(math.pi / 2), np.float32(math.pi / 4)
    a3, a5, a7, a9 = np.float32(_A3), np.float32(_A5), np.float32(_A7), np.float32(_A9)
    t8 = np.float32(_TAN_PI_8)
    for r in range(f.shape[0]):
        x, y = np.float32(f[r].real), np.float32(f[r].imag)
        amp[r] = np.sqrt(x * x + y * y)
        ax, ay = abs(x), abs(y)
        big = ax if ax > ay else ay
        small = ay if ax > ay else ax
        a = small / big if big > zero else zero
        upper = a > t8
        a = (a - one) / (a + one) if upper else a
        z = a * a
        t = a + a * z * (a3 + z * (a5 + z * (a7 + z * a9)))
        t = t + quarter_pi if upper else t
        t = half_pi - t if ay > ax else t
        t = pi - t if x < zero else t
        phase[r] = -t if y < zero else t
