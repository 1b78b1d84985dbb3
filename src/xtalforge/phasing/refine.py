"""Least-squares refinement of a model against measured intensities, as SHELXL does it: positions,
isotropic or anisotropic displacement parameters (Å²) and one scale refined against F²,
weighted by w = 1 / [σ²(Fo²) + (aP)² + bP] with P = (max(Fo², 0) + 2Fc²)/3, by damped
Gauss–Newton (Levenberg–Marquardt) on analytic derivatives of the structure factors. Up to
:data:`FULL_MATRIX_MAX` parameters the full normal matrix is used, beyond it one block per atom
(SHELXL's ``BLOC``), which costs little more than the structure factors.

Constraints are linear projections of the shifts: a position moves in the fixed subspace of its
site-symmetry group (the mean of its rotation parts), so it stays on its special position;
anisotropic U_ij obey the site symmetry the same way (the mean of R U Rᵀ); an isotropic atom in
an anisotropic refinement is a tensor held to the isotropic direction. Anisotropic U follow the
CIF/SHELX convention: U_ij on the reciprocal axes, T = exp[−2π² Σ h_i h_j a*_i a*_j U_ij], and
are reported as (U11, U22, U33, U12, U13, U23). Occupancies are not refined.

The figures reported are SHELXL's: R1 = Σ||Fo| − |Fc||/Σ|Fo| for Fo² > 2σ(Fo²) (Fo > 4σ(Fo))
and for all data, wR2 = √[Σw(Fo² − Fc²)²/Σw(Fo²)²] and GooF = √[Σw(Fo² − Fc²)²/(n − p)].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xtalforge.crystal.elements import form_factors
from xtalforge.crystal.model import SPECIAL_POSITION_TOL, Crystal
from xtalforge.diffraction.reflections import Reflections
from xtalforge.errors import XtalforgeError

__all__ = [
    "Agreement",
    "Refinement",
    "agreement",
    "element_costs",
    "isotropic_tensors",
    "refine",
    "shelxl_weights",
    "u_equivalent",
]

#: SHELXL's starting weighting scheme WGHT a b.
DEFAULT_WEIGHTS = (0.1, 0.0)
#: Complex terms (reflections × atoms × symmetry images) held at once.
CHUNK_TERMS = 1 << 21
#: Bounds (Å²) kept on refined isotropic U, so that one bad cycle cannot run away.
U_BOUNDS = (0.0005, 1.0)
#: Bounds on a refined scattering factor q.
Q_BOUNDS = (0.05, 5.0)
#: Most parameters refined with the full normal matrix; more get one block per atom.
FULL_MATRIX_MAX = 600
#: The six U_ij of a tensor, in this order.
TENSOR_INDEX = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


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
    """A refined model (its ``u_iso`` U_eq for anisotropic atoms), its :class:`Agreement`, the
    cycles run, the largest position shift of the last cycle (Å), the estimated standard
    deviations of positions (Å, per atom, the largest of the three) and of U (Å², U_iso or
    the largest U_ij), the refined scattering factors q (ones unless refined), and the
    anisotropic U (N, 6) in Å² — rows of NaN for isotropic atoms — or None."""

    crystal: Crystal
    agreement: Agreement
    cycles: int
    last_shift: float
    esd_position: np.ndarray
    esd_u: np.ndarray
    scatter: np.ndarray
    u_aniso: np.ndarray | None = None


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


def _reciprocal(crystal: Crystal) -> tuple[np.ndarray, np.ndarray]:
    """(a*, b*, c*) lengths (Å⁻¹) and the reciprocal metric G* of the cell."""
    orth = crystal.orthogonalization_matrix
    gstar = np.linalg.inv(orth.T @ orth)
    return np.sqrt(np.diag(gstar)), gstar


def isotropic_tensors(crystal: Crystal, u_iso: np.ndarray | None = None) -> np.ndarray:
    """(N, 6) U_ij of isotropic atoms (U_ij = U_iso G*_ij / (a*_i a*_j))."""
    astar, gstar = _reciprocal(crystal)
    direction = np.array([gstar[i, j] / (astar[i] * astar[j]) for i, j in TENSOR_INDEX])
    u = crystal.u_iso if u_iso is None else np.asarray(u_iso, float)
    return u[:, None] * direction[None, :]


def u_equivalent(crystal: Crystal, u_aniso: np.ndarray) -> np.ndarray:
    """U_eq (Å²) of (N, 6) tensors: a third of the trace of the Cartesian tensor."""
    astar, _ = _reciprocal(crystal)
    orth = crystal.orthogonalization_matrix
    out = np.empty(len(u_aniso))
    for n, u6 in enumerate(u_aniso):
        u = _full(u6)
        cart = orth @ (astar[:, None] * u * astar[None, :]) @ orth.T
        out[n] = np.trace(cart) / 3.0
    return out


def _full(u6: np.ndarray) -> np.ndarray:
    u = np.empty((3, 3))
    for m, (i, j) in enumerate(TENSOR_INDEX):
        u[i, j] = u[j, i] = u6[m]
    return u


def _positive_definite(crystal: Crystal, u_aniso: np.ndarray) -> np.ndarray:
    astar, _ = _reciprocal(crystal)
    orth = crystal.orthogonalization_matrix
    out = np.ones(len(u_aniso), bool)
    for n, u6 in enumerate(u_aniso):
        cart = orth @ (astar[:, None] * _full(u6) * astar[None, :]) @ orth.T
        out[n] = bool(np.linalg.eigvalsh(cart).min() > 1e-5)
    return out


class _Geometry:
    """What does not change while a model refines: symmetry, site-symmetry projectors of the
    positions and tensors, and the isotropic direction of a tensor."""

    def __init__(self, crystal: Crystal) -> None:
        sym = crystal.symmetry
        self.rots = sym.rotations.astype(np.float64)
        self.trans = sym.translations
        self.weight = len(sym.centrings) * crystal.occ / crystal.site_symmetry_order()
        astar, _ = _reciprocal(crystal)
        self.c6 = np.array([2 * np.pi**2 * astar[i] * astar[j] for i, j in TENSOR_INDEX])
        self.c6 *= np.array([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])  # off-diagonal terms appear twice
        self.iso_dir = isotropic_tensors(crystal, np.ones(1))[0]
        all_rots, all_trans = sym.all_ops()
        orth = crystal.orthogonalization_matrix
        n = crystal.n_atoms
        self.pos_proj = np.empty((n, 3, 3))
        self.u_proj = np.empty((n, 6, 6))
        for j, x in enumerate(crystal.frac):
            diff = all_rots @ x + all_trans - x
            diff -= np.rint(diff)
            site = all_rots[np.linalg.norm(diff @ orth.T, axis=1) < SPECIAL_POSITION_TOL]
            self.pos_proj[j] = site.mean(axis=0)
            self.u_proj[j] = np.mean([self._tensor_map(r, astar) for r in site], axis=0)

    @staticmethod
    def _tensor_map(rot: np.ndarray, astar: np.ndarray) -> np.ndarray:
        """The 6×6 map of U_ij under a rotation (β' = R β Rᵀ with β = 2π² D U D)."""
        d, d_inv = np.diag(astar), np.diag(1 / astar)
        out = np.empty((6, 6))
        for m in range(6):
            basis = np.zeros(6)
            basis[m] = 1.0
            u = d_inv @ rot @ d @ _full(basis) @ d @ rot.T @ d_inv
            out[:, m] = [u[i, j] for i, j in TENSOR_INDEX]
        return out

    def iso_projector(self) -> np.ndarray:
        v = self.iso_dir
        return np.outer(v, v) / (v @ v)


def _calc(
    crystal: Crystal,
    refl: Reflections,
    geo: _Geometry,
    derivatives: bool,
    scatter: np.ndarray | None = None,
    u_aniso: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Fc² (n,) and, with ``derivatives``, d(Fc²)/dp of each atom (n, N, 3 + n_u + 1): the
    fractional position, U (U_iso, or the six U_ij with ``u_aniso``) and q, the factor on the
    atom's scattering (``scatter``, default 1)."""
    n_atoms = crystal.n_atoms
    q = np.ones(n_atoms) if scatter is None else np.asarray(scatter, float)
    weight = geo.weight * q
    hkl = refl.hkl.astype(np.float64)
    stol2 = refl.stol2
    elements, idx = np.unique(crystal.z, return_inverse=True)
    f_el = form_factors(elements, stol2)[idx]  # (N, n)
    images = np.einsum("sij,nj->nsi", geo.rots, crystal.frac) + geo.trans[None]  # (N, S, 3)
    n_img = images.shape[1]
    n_u = 1 if u_aniso is None else 6
    fc2 = np.empty(len(refl))
    deriv = np.empty((len(refl), n_atoms, 4 + n_u)) if derivatives else None
    beta = None if u_aniso is None else np.asarray(u_aniso) * geo.c6  # (N, 6)
    step = max(1, CHUNK_TERMS // max(1, n_atoms * n_img))
    flat_images = images.reshape(-1, 3).T  # (3, N·S)
    rots_cat = geo.rots.transpose(1, 0, 2).reshape(3, -1)  # (3, S·3): h·R_s for every s at once
    for lo in range(0, len(refl), step):
        sl = slice(lo, min(lo + step, len(refl)))
        phase = (hkl[sl] @ flat_images).reshape(-1, n_atoms, n_img)
        phase -= np.round(phase)
        e = np.exp(2j * np.pi * phase)  # (r, N, S)
        h_rot = (hkl[sl] @ rots_cat).reshape(-1, n_img, 3)  # (r, S, 3): h·R_s
        if beta is None:
            g = (f_el[:, sl] * np.exp(-8 * np.pi**2 * np.outer(crystal.u_iso, stol2[sl]))).T
            hh = None
        else:
            g = f_el[:, sl].T
            hh = np.stack([h_rot[:, :, i] * h_rot[:, :, j] for i, j in TENSOR_INDEX], axis=-1)
            e = e * np.exp(-np.matmul(beta[None], hh.transpose(0, 2, 1)))
        g = g * weight  # (r, N)
        per_atom = g * e.sum(axis=2)  # (r, N)
        f = per_atom.sum(axis=1)
        fc2[sl] = np.abs(f) ** 2
        if deriv is None:
            continue
        conj = np.conj(f)[:, None]
        dfdx = 2j * np.pi * g[:, :, None] * _image_sum(e, h_rot)
        deriv[sl, :, :3] = 2 * (conj[:, :, None] * dfdx).real
        if hh is None:
            dfdu = -8 * np.pi**2 * stol2[sl, None] * per_atom
            deriv[sl, :, 3] = 2 * (conj * dfdu).real
        else:
            dfdu6 = -g[:, :, None] * _image_sum(e, hh) * geo.c6
            deriv[sl, :, 3:9] = 2 * (conj[:, :, None] * dfdu6).real
        deriv[sl, :, 3 + n_u] = 2 * (conj * per_atom).real / np.maximum(q, 1e-6)
    return fc2, deriv


def _image_sum(e: np.ndarray, per_image: np.ndarray) -> np.ndarray:
    """Σ_s e[r, n, s] · v[r, s, k] → (r, n, k), one vectorised product per image (a batched
    matmul of tiny matrices is slower)."""
    out = e[:, :, 0, None] * per_image[:, None, 0, :]
    for s in range(1, e.shape[2]):
        out += e[:, :, s, None] * per_image[:, None, s, :]
    return out


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


def best_scale(i_obs: np.ndarray, fc2: np.ndarray, w: np.ndarray) -> float:
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


def _tensors(crystal: Crystal, u_aniso: np.ndarray | None) -> np.ndarray | None:
    """(N, 6) tensors with the isotropic atoms (NaN rows) filled in, or None."""
    if u_aniso is None:
        return None
    u = np.array(u_aniso, float, copy=True)
    iso = np.isnan(u).any(axis=1)
    u[iso] = isotropic_tensors(crystal)[iso]
    return u


def agreement(
    crystal: Crystal,
    refl: Reflections,
    i_obs: np.ndarray,
    sigma: np.ndarray,
    weights: tuple[float, float] = DEFAULT_WEIGHTS,
    n_params: int | None = None,
    u_aniso: np.ndarray | None = None,
) -> Agreement:
    """R1, wR2 and GooF of ``crystal`` against intensities Fo² (σ) of ``refl``, on the
    least-squares scale. ``u_aniso``: (N, 6) anisotropic U (NaN rows: isotropic atoms).
    ``n_params`` defaults to those an isotropic refinement has (4 per atom and the scale)."""
    _check(crystal, refl, i_obs, sigma)
    fc2, _ = _calc(crystal, refl, _Geometry(crystal), False, None, _tensors(crystal, u_aniso))
    k = best_scale(i_obs, fc2, 1.0 / sigma**2)
    w = shelxl_weights(i_obs, sigma, k * fc2, *weights)
    k = best_scale(i_obs, fc2, w)
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
    anisotropic: bool | np.ndarray = False,
    u_aniso: np.ndarray | None = None,
) -> Refinement:
    """Refine positions, displacement parameters and the scale of ``crystal`` against
    intensities Fo² with σ(Fo²) of the reflections ``refl`` (merged, in the crystal's space
    group). ``fixed``: a mask of atoms kept as they are (e.g. riding H). Stops after ``cycles``
    or when the largest position shift is below ``tolerance`` Å.

    ``anisotropic``: True (every free atom) or a mask of the atoms given anisotropic U, started
    from ``u_aniso`` (N, 6; NaN rows and atoms without a tensor start from their U_iso); a
    tensor that refines to non-positive definite goes back to isotropic (reported in
    :attr:`Refinement.u_aniso` as NaN). ``scatter``: also refine a factor q per atom on its
    scattering (q·Z estimates its electrons on a relative scale, since the overall scale takes
    any common factor: how elements are told apart); the model returned keeps q = 1, the
    factors are in :attr:`Refinement.scatter`."""
    _check(crystal, refl, i_obs, sigma)
    free = np.ones(crystal.n_atoms, bool) if fixed is None else ~np.asarray(fixed, bool)
    aniso_mask = np.broadcast_to(np.asarray(anisotropic, bool), (crystal.n_atoms,)) & free
    geo = _Geometry(crystal)
    tensors = None
    if aniso_mask.any():
        start = np.full((crystal.n_atoms, 6), np.nan) if u_aniso is None else u_aniso
        tensors = _tensors(crystal, np.where(aniso_mask[:, None], start, np.nan))
        iso = geo.iso_projector()
        geo.u_proj[~aniso_mask] = iso  # isotropic atoms: the tensor keeps its isotropic shape
    problem = _Problem(refl, i_obs, sigma, weights, geo, np.flatnonzero(free), scatter, tensors)
    state = problem.state(crystal, np.ones(crystal.n_atoms), tensors)
    damping, shift, done = 1e-3, math.inf, 0
    normal: tuple = (np.eye(1),)
    for cycle in range(1, cycles + 1):
        done = cycle
        normal, rhs = problem.normal_equations(state)
        while True:
            step = problem.solve(normal, rhs, damping)
            trial = problem.moved(state, step)
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
    return problem.result(state, normal, done, shift, aniso_mask)


class _State:
    """A model with its scattering factors q and tensors, Fc², derivatives, scale, weights and
    χ²."""

    def __init__(
        self,
        problem: _Problem,
        model: Crystal,
        scatter: np.ndarray,
        tensors: np.ndarray | None,
        k: float | None = None,
    ) -> None:
        p = problem
        self.model, self.scatter, self.tensors = model, scatter, tensors
        self.fc2, deriv = _calc(model, p.refl, p.geo, True, scatter, tensors)
        assert deriv is not None
        self.deriv = deriv
        if k is None:
            k = best_scale(p.i_obs, self.fc2, 1.0 / p.sigma**2)
            k = best_scale(p.i_obs, self.fc2, p.weights_for(k * self.fc2))
        self.k = k
        self.w = p.weights_for(k * self.fc2)
        self.resid = p.i_obs - k * self.fc2
        self.chi2 = float((self.w * self.resid**2).sum())

    def chi2_with(self, other: _State) -> float:
        """χ² of ``other``'s Fc² and scale with this state's weights."""
        return float((self.w * other.resid**2).sum())


class _Problem:
    """The data, weighting, constraints and parameter layout of one refinement."""

    def __init__(
        self,
        refl: Reflections,
        i_obs: np.ndarray,
        sigma: np.ndarray,
        weights: tuple[float, float],
        geo: _Geometry,
        free_idx: np.ndarray,
        scatter: bool,
        tensors: np.ndarray | None,
    ) -> None:
        self.refl, self.i_obs, self.sigma, self.weights, self.geo = refl, i_obs, sigma, weights, geo
        self.free_idx = free_idx
        self.n_u = 1 if tensors is None else 6
        self.per = 3 + self.n_u + (1 if scatter else 0)
        self.n_params = 1 + self.per * len(free_idx)
        self.blocks = self.n_params > FULL_MATRIX_MAX

    def weights_for(self, i_calc: np.ndarray) -> np.ndarray:
        return shelxl_weights(self.i_obs, self.sigma, i_calc, *self.weights)

    def state(
        self,
        model: Crystal,
        scatter: np.ndarray,
        tensors: np.ndarray | None,
        k: float | None = None,
    ) -> _State:
        return _State(self, model, scatter, tensors, k)

    def _jacobian(self, state: _State) -> np.ndarray:
        """(n, N_free, per) derivatives of k·Fc² with the constraints applied."""
        f = self.free_idx
        d = state.deriv[:, f, : self.per] * state.k
        # (N, r, k) @ (N, k, k): each atom's constraint projector on its derivatives
        by_atom = d.transpose(1, 0, 2)
        by_atom[:, :, :3] = np.matmul(by_atom[:, :, :3], self.geo.pos_proj[f])
        if self.n_u == 6:
            by_atom[:, :, 3:9] = np.matmul(by_atom[:, :, 3:9], self.geo.u_proj[f])
        return d

    def normal_equations(self, state: _State) -> tuple[tuple, np.ndarray]:
        d = self._jacobian(state)
        w, r = state.w, state.resid
        jac = np.concatenate([state.fc2[:, None], d.reshape(len(r), -1)], axis=1)
        rhs = jac.T @ (w * r)
        if self.blocks:
            scale = float((w * state.fc2**2).sum())
            dn = d.transpose(1, 0, 2)  # (N, r, per)
            return ("blocks", scale, np.matmul(dn.transpose(0, 2, 1), dn * w[None, :, None])), rhs
        return ("full", jac.T @ (jac * w[:, None])), rhs

    def solve(self, normal: tuple, rhs: np.ndarray, damping: float) -> np.ndarray:
        if normal[0] == "full":
            a = normal[1]
            diag = np.diag(a).copy()
            diag[diag <= 0] = 1.0
            return np.linalg.lstsq(a + damping * np.diag(diag), rhs, rcond=1e-12)[0]
        scale, blocks = normal[1], normal[2]
        out = np.empty_like(rhs)
        out[0] = rhs[0] / (scale * (1 + damping)) if scale > 0 else 0.0
        diag = np.einsum("npp->np", blocks).copy()
        ridge = 1e-12 * diag.sum(axis=1, keepdims=True) + 1e-30
        a = blocks + np.einsum("np,pq->npq", damping * diag + ridge, np.eye(self.per))
        out[1:] = np.linalg.solve(a, rhs[1:].reshape(-1, self.per, 1))[:, :, 0].ravel()
        return out

    def moved(self, state: _State, step: np.ndarray) -> _State:
        f, geo = self.free_idx, self.geo
        shifts = step[1:].reshape(len(f), self.per)
        frac = state.model.frac.copy()
        u = state.model.u_iso.copy()
        q = state.scatter.copy()
        tensors = None if state.tensors is None else state.tensors.copy()
        frac[f] += np.einsum("nkl,nl->nk", geo.pos_proj[f], shifts[:, :3])
        if tensors is None:
            u[f] = np.clip(u[f] + shifts[:, 3], *U_BOUNDS)
        else:
            tensors[f] += np.einsum("nkl,nl->nk", geo.u_proj[f], shifts[:, 3:9])
            u = np.clip(u_equivalent(state.model, tensors), *U_BOUNDS)
        if self.per > 3 + self.n_u:
            q[f] = np.clip(q[f] + shifts[:, -1], *Q_BOUNDS)
        model = state.model.copy(frac=frac, u_iso=u)
        return self.state(model, q, tensors, state.k + step[0])

    def result(
        self, state: _State, normal: tuple, cycles: int, shift: float, aniso_mask: np.ndarray
    ) -> Refinement:
        k = best_scale(self.i_obs, state.fc2, state.w)
        stats = _stats(self.i_obs, self.sigma, state.fc2, k, state.w, self.n_params)
        esd_xyz, esd_u = self._esds(normal, stats.goof, state.model)
        model, tensors = state.model, None
        if state.tensors is not None:
            tensors = np.where(aniso_mask[:, None], state.tensors, np.nan)
            bad = aniso_mask & ~_positive_definite(model, state.tensors)
            tensors[bad] = np.nan  # non-positive definite: reported isotropic (its U_eq)
        return Refinement(model, stats, cycles, shift, esd_xyz, esd_u, state.scatter, tensors)

    def _esds(self, normal: tuple, goof: float, model: Crystal) -> tuple[np.ndarray, np.ndarray]:
        """Largest position esd (Å) and U esd (Å²) per atom from the inverse normal matrix."""
        n, per, orth = model.n_atoms, self.per, model.orthogonalization_matrix
        if normal[0] == "full" and normal[1].shape[0] == self.n_params:
            cov = np.linalg.pinv(normal[1]) * goof**2
            at = [slice(1 + per * i, 1 + per * (i + 1)) for i in range(len(self.free_idx))]
            blocks = [cov[sl, sl] for sl in at]
        elif normal[0] == "blocks":
            blocks = [np.linalg.pinv(b) * goof**2 for b in normal[2]]
        else:
            blocks = [np.zeros((per, per))] * len(self.free_idx)
        esd_xyz, esd_u = np.zeros(n), np.zeros(n)
        for i, j in enumerate(self.free_idx):
            cart = orth @ blocks[i][:3, :3] @ orth.T
            esd_xyz[j] = float(np.sqrt(max(np.diag(cart).max(), 0.0)))
            u_var = np.diag(blocks[i])[3 : 3 + self.n_u]
            esd_u[j] = float(np.sqrt(max(u_var.max(), 0.0)))
        return esd_xyz, esd_u


#: Isotropic U (Å²) tried for each element in :func:`element_costs`.
U_TRIALS = np.geomspace(0.004, 0.2, 16)


def element_costs(
    crystal: Crystal,
    refl: Reflections,
    i_obs: np.ndarray,
    sigma: np.ndarray,
    elements: list[int],
    weights: tuple[float, float] = DEFAULT_WEIGHTS,
    d_max: float | None = None,
    hydrogen_f: Callable[[int, int], np.ndarray] | None = None,
) -> np.ndarray:
    """(N, len(elements)) χ² of the model with one atom at a time given each element, at the
    best of :data:`U_TRIALS` for it (the rest of the model, the scale and the weights as they
    are): the likelihood of each element at each site, which ranks elements one electron apart
    better than a refined scattering factor (that trades off against U).

    ``d_max`` (Å): only reflections with d ≤ ``d_max`` count in the χ² (the scale still comes
    from all). The low-angle data carry the hydrogen atoms that the model lacks, which makes a
    CH₂ look like an O there; the outer data see the cores only.

    ``hydrogen_f(j, z)``: F (one per reflection) of the H atoms that site j carries when it
    is element z (see :mod:`~xtalforge.phasing.hydrogens`): the model's Fc then holds the H of
    every site as typed, and each trial swaps the site's H with those of the trial element,
    so that a CH₂ is weighed against an O as a CH₂."""
    _check(crystal, refl, i_obs, sigma)
    geo = _Geometry(crystal)
    hkl = refl.hkl.astype(np.float64)
    stol2 = refl.stol2
    images = np.einsum("sij,nj->nsi", geo.rots, crystal.frac) + geo.trans[None]  # (N, S, 3)
    flat = images.reshape(-1, 3).T
    geometric = np.empty((len(refl), crystal.n_atoms), complex)  # (r, N): Σ_s weight·e^{2πih·x}
    step = max(1, CHUNK_TERMS // max(1, flat.shape[1]))
    for lo in range(0, len(refl), step):
        phase = (hkl[lo : lo + step] @ flat).reshape(-1, *images.shape[:2])
        phase -= np.round(phase)
        geometric[lo : lo + step] = np.exp(2j * np.pi * phase).sum(axis=2) * geo.weight
    table = sorted(set(elements) | set(int(z) for z in crystal.z))
    f_tab = dict(zip(table, form_factors(np.array(table), stol2)))
    own = np.stack([f_tab[int(z)] for z in crystal.z], axis=1)  # (r, N)
    own = own * np.exp(-8 * np.pi**2 * np.outer(stol2, crystal.u_iso)) * geometric
    f = own.sum(axis=1)
    carried = np.zeros_like(own)
    if hydrogen_f is not None:
        for j, z in enumerate(crystal.z):
            carried[:, j] = hydrogen_f(j, int(z))
        f = f + carried.sum(axis=1)
    fc2 = np.abs(f) ** 2
    k = best_scale(i_obs, fc2, 1.0 / sigma**2)
    w = shelxl_weights(i_obs, sigma, k * fc2, *weights)
    k = best_scale(i_obs, fc2, w)
    if d_max is not None:
        w = w * (stol2 >= 1.0 / (4.0 * d_max**2))
    damp = np.exp(-8 * np.pi**2 * np.outer(stol2, U_TRIALS))  # (r, T)
    out = np.empty((crystal.n_atoms, len(elements)))
    for j in range(crystal.n_atoms):
        rest = (f - own[:, j] - carried[:, j])[:, None]
        for m, el in enumerate(elements):
            trial = rest + (f_tab[el] * geometric[:, j])[:, None] * damp  # (r, T)
            if hydrogen_f is not None:
                h = carried[:, j] if el == crystal.z[j] else hydrogen_f(j, el)
                trial = trial + h[:, None]
            resid = i_obs[:, None] - k * np.abs(trial) ** 2
            out[j, m] = float((w[:, None] * resid**2).sum(axis=0).min())
    return out
