"""Powder diffraction patterns with a real instrument profile."""

from xtalforge.powder.instrument import WAVELENGTHS, Instrument, PowderError, load_instrument
from xtalforge.powder.pattern import (
    PeakList,
    background,
    lorentz_polarization,
    peak_list,
    simulate,
    simulate_batch,
    simulate_mixture,
    write_xy,
)
from xtalforge.powder.profiles import fcj_nodes, pseudo_voigt, tch_parameters
from xtalforge.powder.sampler import InstrumentSampler, training_sample

__all__ = [
    "WAVELENGTHS",
    "Instrument",
    "InstrumentSampler",
    "PeakList",
    "PowderError",
    "background",
    "fcj_nodes",
    "load_instrument",
    "lorentz_polarization",
    "peak_list",
    "pseudo_voigt",
    "simulate",
    "simulate_batch",
    "simulate_mixture",
    "tch_parameters",
    "training_sample",
    "write_xy",
]
