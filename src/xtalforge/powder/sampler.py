"""Random instruments for training data (ranges as in the thesis generator, all configurable)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from xtalforge.crystal.model import Crystal
from xtalforge.powder.instrument import Instrument

__all__ = ["InstrumentSampler", "training_sample"]

Range = tuple[float, float]


class InstrumentSampler(BaseModel):
    """Uniform ranges for every instrument parameter; ``sample(seed)`` gives an :class:`Instrument`.

    Sampled instruments normalise the diffraction part to a maximum of 1, so ``scale`` is the
    height of the strongest peak in counts, as in the thesis generator.
    The Chebyshev background has a random order in ``background_order``; its shape is random and
    it is scaled so that its values span ``background_level`` (counts) over the grid.
    """

    model_config = ConfigDict(extra="forbid")

    wavelengths: str = "CuKa12"
    U: Range = (1.0, 6.0)
    V: Range = (-1.0, 0.0)
    W: Range = (1.0, 11.0)
    X: Range = (1.0, 21.0)
    Y: Range = (0.0, 20.0)
    shl: Range = (0.0005, 0.1)
    hl: Range = (0.0005, 0.1)
    zero: Range = (0.0, 0.0)
    scale: Range = (100.0, 20000.0)
    background_order: tuple[int, int] = (2, 12)
    background_level: Range = (500.0, 7500.0)
    two_theta_min: float = 3.0
    two_theta_max: float = 90.0
    n_points: int = 4351

    @model_validator(mode="after")
    def _ordered(self) -> InstrumentSampler:
        for name in (
            "U",
            "V",
            "W",
            "X",
            "Y",
            "shl",
            "hl",
            "zero",
            "scale",
            "background_level",
            "background_order",
        ):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: lower bound {lo} exceeds upper bound {hi}")
        return self

    def sample(self, seed: int) -> Instrument:
        """A random instrument; the same seed always gives the same one."""
        rng = np.random.default_rng(seed)
        vals = {
            k: float(rng.uniform(*getattr(self, k)))
            for k in ("U", "V", "W", "X", "Y", "shl", "hl", "zero", "scale")
        }
        order = int(rng.integers(self.background_order[0], self.background_order[1] + 1))
        coef = rng.normal(size=order + 1) / (1 + np.arange(order + 1))
        x = np.linspace(-1, 1, 256)
        shape = np.polynomial.chebyshev.chebval(x, coef)
        lo, hi = sorted(rng.uniform(*self.background_level, size=2))
        span = shape.max() - shape.min()
        coef = coef * ((hi - lo) / span if span > 0 else 0.0)
        coef[0] += lo - (shape.min() * ((hi - lo) / span if span > 0 else 0.0))
        vals["W"] = max(vals["W"], 1e-6 - min(0.0, vals["V"]))  # keep σ² > 0 at low angle
        return Instrument(
            wavelengths=self.wavelengths,
            background=coef.tolist(),
            normalize=True,
            two_theta_min=self.two_theta_min,
            two_theta_max=self.two_theta_max,
            n_points=self.n_points,
            **vals,
        )


def training_sample(
    crystal: Crystal, sampler: InstrumentSampler, seed: int, noise: bool = True
) -> dict:
    """One training example: a fixed-length float32 pattern (``n_points``) with the instrument
    that made it, as plain values ready to store in a dataset row."""
    from xtalforge.powder.pattern import simulate

    ins = sampler.sample(seed)
    _, y = simulate(crystal, ins, noise=noise, seed=seed)
    params = ins.model_dump()
    params["wavelengths"] = [list(w) for w in ins.wavelengths]
    return {"pattern": y.astype(np.float32), "instrument": params, "seed": seed}
