"""Least-squares refinement of a model against measured intensities, as SHELXL does it for a
first isotropic model: positions, isotropic U (Å²) and one scale refined against F², weighted
by w = 1 / [σ²(Fo²) + (aP)² + bP] with P = (max(Fo², 0) + 2Fc²)/3, by damped Gauss–Newton
(Levenberg–Marquardt) on analytic derivatives of the structure factors.

Atoms on special positions keep their site symmetry: a shift is projected onto the fixed
subspace of the site-symmetry group (the mean of its rotation parts), so x + PΔ stays on the
site. Occupancies are not refined. The figures reported are SHELXL's: R1 = Σ||Fo| − |Fc||/Σ|Fo|
for Fo² > 2σ(Fo²) (Fo > 4σ(Fo)) and for all data, wR2 = √[Σw(Fo² − Fc²)²/Σw(Fo²)²] and
GooF = √[Σw(Fo² − Fc²)²/(n − p)].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xtalforge.crystal.elements import form_factors
from xtalforge.crystal.model import SPECIAL_POSITION_TOL, Crystal
from xtalforge.diffraction.reflections import Reflections
from xtalforge.errors import XtalforgeError

__all__ = ["Agreement", "Refinement", "agreement", "refine", "shelxl_weights"]

#: SHELXL's starting weighting scheme WGHT a b.
DEFAULT_WEIGHTS = (0.1, 0.0)
#: Complex terms (reflections × atoms × symmetry images) held at once.
CHUNK_TERMS = 1 << 21
#: Bounds (Å²) kept on refined isotropic U, so that one bad cycle cannot run away.
U_BOUNDS = (0.0005, 1.0)
#: Bounds on a refined scattering factor q.
Q_BOUNDS = (0.05, 5.0)


@dataclass(frozen=True)
class Agreement:
    """SHELXL's figures of a model against the data: R1 for Fo > 4σ(Fo) and for all data, the
    numbers of reflections in each, wR2 and GooF (with ``n_params`` parameters), and the scale
    k that puts Fc² on the data (Fo² ≈ k Fc²)."""

    r1_gt: float
    n_gt: int
    r1_all: float
    n_all: int
    wr2: float
    goof: float
    scale: float
    n_params: int


@dataclass(frozen=True)
class Refinement:
    """A refined model, its :class:`Agreement`, the cycles run, the largest position shift of
    the last cycle (Å), the estimated standard deviations of positions (Å, per atom, the
    largest of the three) and U (Å²), and the refined scattering factors q (ones unless
    refined)."""

    crystal: Crystal
    agreement: Agreement
    cycles: int
    last_shift: float
    esd_position: np.ndarray
    esd_u: np.ndarray
    scatter: np.ndarray


def shelxl_weights(
    i_obs: np.ndarray,
    sigma: np.ndarray,
    i_calc: np.ndarray,
    a: float = DEFAULT_WEIGHTS[0],
    b: float = DEFAULT_WEIGHTS[1],
) -> np.ndarray:
    """SHELXL's weights 1/[σ²(Fo²) + (aP)² + bP], P = (max(Fo², 0) + 2Fc²)/3 (Fc² on the scale
    of the data)."""
    p = (np.maximum(i_obs, 0.0) + 2.0 * i_calc) / 3.0
    return 1.0 / (sigma**2 + (a * p) ** 2 + b * p)


def _ops(crystal: Crystal) -> tuple[np.ndarray, np.ndarray, int]:
    sym = crystal.symmetry
    return sym.rotations.astype(np.float64), sym.translations, len(sym.centrings)


def _site_projectors(crystal: Crystal) -> np.ndarray:
    """(N, 3, 3) projectors onto the shifts that keep each atom on its site."""
    rots, trans = crystal.symmetry.all_ops()
    orth = crystal.orthogonalization_matrix
    out = np.empty((crystal.n_atoms, 3, 3))
    for j, x in enumerate(crystal.frac):
        diff = rots @ x + trans - x
        diff -= np.rint(diff)
        on_site = np.linalg.norm(diff @ orth.T, axis=1) < SPECIAL_POSITION_TOL
        out[j] = rots[on_site].mean(axis=0)
    return out


def _calc(
    crystal: Crystal, refl: Reflections, derivatives: bool, scatter: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Fc² (n,) and, with ``derivatives``, d(Fc²)/d(x, y, z, U, q) of each atom (n, N, 5) with
    fractional positions (before the site projection); q multiplies an atom's scattering
    (``scatter``, default 1)."""
    rots, trans, n_cen = _ops(crystal)
    q = np.ones(crystal.n_atoms) if scatter is None else np.asarray(scatter, float)
    weight = n_cen * crystal.occ / crystal.site_symmetry_order() * q
    hkl = refl.hkl.astype(np.float64)
    stol2 = refl.stol2
    elements, idx = np.unique(crystal.z, return_inverse=True)
    f_el = form_factors(elements, stol2)[idx]  # (N, n)
    images = np.einsum("sij,nj->nsi", rots, crystal.frac) + trans[None]  # (N, S, 3)
    n_atoms, n_img = images.shape[:2]
    fc2 = np.empty(len(refl))
    deriv = np.empty((len(refl), n_atoms, 5)) if derivatives else None
    step = max(1, CHUNK_TERMS // max(1, n_atoms * n_img))
    for lo in range(0, len(refl), step):
        sl = slice(lo, min(lo + step, len(refl)))
        phase = np.einsum("rk,nsk->rns", hkl[sl], images)
        phase -= np.round(phase)
        e = np.exp(2j * np.pi * phase)  # (r, N, S)
        g = (f_el[:, sl] * np.exp(-8 * np.pi**2 * np.outer(crystal.u_iso, stol2[sl]))).T
        g = g * weight  # (r, N)
        per_atom = g * e.sum(axis=2)  # (r, N)
        f = per_atom.sum(axis=1)
        fc2[sl] = np.abs(f) ** 2
        if deriv is not None:
            h_rot = np.einsum("rk,skl->rsl", hkl[sl], rots)  # (r, S, 3): h·R_s
            dfdx = 2j * np.pi * g[:, :, None] * np.einsum("rns,rsl->rnl", e, h_rot)
            dfdu = -8 * np.pi**2 * stol2[sl, None] * per_atom
            conj = np.conj(f)[:, None, None]
            deriv[sl, :, :3] = 2 * (conj * dfdx).real
            deriv[sl, :, 3] = 2 * (conj[:, :, 0] * dfdu).real
            deriv[sl, :, 4] = 2 * (conj[:, :, 0] * per_atom).real / np.maximum(q, 1e-6)
    return fc2, deriv


def _stats(
    i_obs: np.ndarray, sigma: np.ndarray, fc2: np.ndarray, k: float, w: np.ndarray, n_params: int
) -> Agreement:
    fo = np.sqrt(np.maximum(i_obs, 0.0))
    fc = np.sqrt(k * fc2)
    gt = i_obs > 2.0 * sigma
    diff = i_obs - k * fc2

    def r1(mask: np.ndarray) -> float:
        den = fo[mask].sum()
        return float(np.abs(fo[mask] - fc[mask]).sum() / den) if den > 0 else math.nan

    n = len(i_obs)
    return Agreement(
        r1(gt),
        int(gt.sum()),
        r1(np.ones(n, bool)),
        n,
        float(np.sqrt((w * diff**2).sum() / (w * i_obs**2).sum())),
        float(np.sqrt((w * diff**2).sum() / max(1, n - n_params))),
        float(k),
        n_params,
    )


def _best_scale(i_obs: np.ndarray, fc2: np.ndarray, w: np.ndarray) -> float:
    den = float((w * fc2 * fc2).sum())
    return float((w * i_obs * fc2).sum() / den) if den > 0 else 1.0


def _check(crystal: Crystal, refl: Reflections, i_obs: np.ndarray, sigma: np.ndarray) -> None:
    if refl.spacegroup.hall != crystal.spacegroup.hall:
        raise XtalforgeError(
            f"the model is in {crystal.spacegroup.xhm()}, the data in {refl.spacegroup.xhm()}"
        )
    if not (len(i_obs) == len(sigma) == len(refl)):
        raise XtalforgeError("intensities, sigmas and reflections differ in length")
    if not (np.isfinite(i_obs).all() and np.isfinite(sigma).all() and (sigma > 0).all()):
        raise XtalforgeError("intensities and sigmas must be finite, sigmas positive")


def agreement(
    crystal: Crystal,
    refl: Reflections,
    i_obs: np.ndarray,
    sigma: np.ndarray,
    weights: tuple[float, float] = DEFAULT_WEIGHTS,
    n_params: int | None = None,
) -> Agreement:
    """R1, wR2 and GooF of ``crystal`` against intensities Fo² (σ) of ``refl``, on the
    least-squares scale. ``n_params`` defaults to those an isotropic refinement has
    (4 per atom and the scale)."""
    _check(crystal, refl, i_obs, sigma)
    fc2, _ = _calc(crystal, refl, False)
    k = _best_scale(i_obs, fc2, 1.0 / sigma**2)
    w = shelxl_weights(i_obs, sigma, k * fc2, *weights)
    k = _best_scale(i_obs, fc2, w)
    n_params = 4 * crystal.n_atoms + 1 if n_params is None else n_params
    return _stats(i_obs, sigma, fc2, k, w, n_params)


def refine(
    crystal: Crystal,
    refl: Reflections,
    i_obs: np.ndarray,
    sigma: np.ndarray,
    cycles: int = 8,
    fixed: np.ndarray | None = None,
    weights: tuple[float, float] = DEFAULT_WEIGHTS,
    tolerance: float = 1e-4,
    scatter: bool = False,
) -> Refinement:
    """Refine positions, isotropic U and the scale of ``crystal`` against intensities Fo² with
    σ(Fo²) of the reflections ``refl`` (merged, in the crystal's space group). ``fixed``: a mask
    of atoms kept as they are (e.g. riding H). Stops after ``cycles`` or when the largest
    position shift is below ``tolerance`` Å. ``scatter``: also refine a factor q per atom on its
    scattering (q·Z estimates its electrons on a relative scale, since the overall scale
    takes any common factor: how elements are told apart); the model returned
    keeps q = 1, the factors are in :attr:`Refinement.scatter`."""
    _check(crystal, refl, i_obs, sigma)
    free = np.ones(crystal.n_atoms, bool) if fixed is None else ~np.asarray(fixed, bool)
    free_idx = np.flatnonzero(free)
    per = 5 if scatter else 4
    state = _State(crystal, np.ones(crystal.n_atoms), refl, i_obs, sigma, weights)
    proj = _site_projectors(crystal)
    damping, shift, done = 1e-3, math.inf, 0
    normal = np.eye(1 + per * len(free_idx))
    for cycle in range(1, cycles + 1):
        done = cycle
        normal, rhs = state.normal_equations(free_idx, proj, per)
        diag = np.diag(normal).copy()
        diag[diag <= 0] = 1.0
        while True:
            step = np.linalg.lstsq(normal + damping * np.diag(diag), rhs, rcond=1e-12)[0]
            trial = state.moved(step, free_idx, proj, per)
            # accepted on this cycle's weights (the objective the step minimises); the next
            # cycle weights with the new Fc², as SHELXL does
            if state.chi2_with(trial) <= state.chi2 or damping > 1e6:
                break
            damping *= 10.0
        moved = (trial.model.frac - state.model.frac) @ crystal.orthogonalization_matrix.T
        shift = float(np.linalg.norm(moved, axis=1).max()) if len(moved) else 0.0
        state = trial
        damping = max(damping / 10.0, 1e-6)
        if shift < tolerance:
            break
    n_par = 1 + per * len(free_idx)
    stats = _stats(i_obs, sigma, state.fc2, _best_scale(i_obs, state.fc2, state.w), state.w, n_par)
    orth = crystal.orthogonalization_matrix
    esd_xyz, esd_u = _esds(normal, stats.goof, free_idx, crystal.n_atoms, orth, per)
    return Refinement(state.model, stats, done, shift, esd_xyz, esd_u, state.scatter)


class _State:
    """A model with its scattering factors q, Fc², derivatives, scale, weights and χ²."""

    def __init__(
        self,
        model: Crystal,
        scatter: np.ndarray,
        refl: Reflections,
        i_obs: np.ndarray,
        sigma: np.ndarray,
        weights: tuple[float, float],
        k: float | None = None,
    ) -> None:
        self.model, self.scatter, self.refl = model, scatter, refl
        self.i_obs, self.sigma, self.weights = i_obs, sigma, weights
        fc2, deriv = _calc(model, refl, True, scatter)
        assert deriv is not None
        self.fc2, self.deriv = fc2, deriv
        if k is None:
            k = _best_scale(i_obs, fc2, 1.0 / sigma**2)
            k = _best_scale(i_obs, fc2, shelxl_weights(i_obs, sigma, k * fc2, *weights))
        self.k = k
        self.w = shelxl_weights(i_obs, sigma, k * fc2, *weights)
        self.chi2 = float((self.w * (i_obs - k * fc2) ** 2).sum())

    def chi2_with(self, other: _State) -> float:
        """χ² of ``other``'s Fc² and scale with this state's weights."""
        return float((self.w * (self.i_obs - other.k * other.fc2) ** 2).sum())

    def normal_equations(
        self, free_idx: np.ndarray, proj: np.ndarray, per: int
    ) -> tuple[np.ndarray, np.ndarray]:
        d = self.deriv[:, free_idx, :per].copy()
        d[:, :, :3] = np.einsum("rnk,nkl->rnl", d[:, :, :3], proj[free_idx])
        jac = np.concatenate([self.fc2[:, None], self.k * d.reshape(len(self.refl), -1)], axis=1)
        resid = self.i_obs - self.k * self.fc2
        return jac.T @ (jac * self.w[:, None]), jac.T @ (self.w * resid)

    def moved(self, step: np.ndarray, free_idx: np.ndarray, proj: np.ndarray, per: int) -> _State:
        shifts = step[1:].reshape(len(free_idx), per)
        frac = self.model.frac.copy()
        u = self.model.u_iso.copy()
        q = self.scatter.copy()
        frac[free_idx] += np.einsum("nkl,nl->nk", proj[free_idx], shifts[:, :3])
        u[free_idx] = np.clip(u[free_idx] + shifts[:, 3], *U_BOUNDS)
        if per == 5:
            q[free_idx] = np.clip(q[free_idx] + shifts[:, 4], *Q_BOUNDS)
        return _State(
            self.model.copy(frac=frac, u_iso=u),
            q,
            self.refl,
            self.i_obs,
            self.sigma,
            self.weights,
            self.k + step[0],
        )


def _esds(
    normal: np.ndarray, goof: float, free_idx: np.ndarray, n_atoms: int, orth: np.ndarray, per: int
) -> tuple[np.ndarray, np.ndarray]:
    """Largest position esd (Å) and U esd (Å²) per atom from the inverse normal matrix."""
    cov = np.linalg.pinv(normal) * goof**2
    esd_xyz, esd_u = np.zeros(n_atoms), np.zeros(n_atoms)
    for i, j in enumerate(free_idx):
        at = 1 + per * i
        cart = orth @ cov[at : at + 3, at : at + 3] @ orth.T
        esd_xyz[j] = float(np.sqrt(max(np.diag(cart).max(), 0.0)))
        esd_u[j] = float(np.sqrt(max(cov[at + 3, at + 3], 0.0)))
    return esd_xyz, esd_u
