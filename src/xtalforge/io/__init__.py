"""Reflection-file input and output: SHELX .hkl/.ins, MTZ, XDS_ASCII and CIF ``_refln`` (gemmi)."""

from xtalforge.io.calculated import write_calculated_cif, write_calculated_mtz
from xtalforge.io.reflection_data import (
    ReflectionData,
    read_cif_refln,
    read_mtz,
    read_reflections,
    read_xds_ascii,
)
from xtalforge.io.shelx import InsFile, parse_hkl_text, read_hkl, read_ins, write_hkl, write_ins

__all__ = [
    "InsFile",
    "ReflectionData",
    "parse_hkl_text",
    "read_cif_refln",
    "read_hkl",
    "read_ins",
    "read_mtz",
    "read_reflections",
    "read_xds_ascii",
    "write_calculated_cif",
    "write_calculated_mtz",
    "write_hkl",
    "write_ins",
]
