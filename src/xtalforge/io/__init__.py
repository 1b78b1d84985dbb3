"""Every file format, one module each, and two entry points that tell formats apart by content:
:func:`read_structure` (small-molecule CIF, SHELX .res, PDB, mmCIF) and
:func:`read_reflections` (SHELX .hkl, MTZ, XDS_ASCII, CIF ``_refln``). Writers:
CIF models, SHELX .ins/.res/.hkl, calculated structure factors as MTZ or CIF ``_refln``."""

from xtalforge.io.calculated import (
    write_calculated_cif,
    write_calculated_mtz,
    write_structure_factors,
)
from xtalforge.io.cif_refln import read_cif_refln
from xtalforge.io.cif_structure import cif_entries, entry_name, read_cif, write_cif
from xtalforge.io.detect import file_kind, holds_a_model
from xtalforge.io.merge import load_measured, merged_amplitudes, merged_intensities
from xtalforge.io.mtz import read_mtz
from xtalforge.io.pdb import read_pdb
from xtalforge.io.readers import from_gemmi, read_reflections, read_structure
from xtalforge.io.shelx_hkl import parse_hkl_text, read_hkl, write_hkl
from xtalforge.io.shelx_ins import InsFile, read_ins, write_ins
from xtalforge.io.shelx_model import read_res, write_res
from xtalforge.io.types import HklfInstruction, ReflectionData
from xtalforge.io.xds_ascii import read_xds_ascii

__all__ = [
    "HklfInstruction",
    "InsFile",
    "ReflectionData",
    "cif_entries",
    "entry_name",
    "file_kind",
    "from_gemmi",
    "holds_a_model",
    "load_measured",
    "merged_amplitudes",
    "merged_intensities",
    "parse_hkl_text",
    "read_cif",
    "read_cif_refln",
    "read_hkl",
    "read_ins",
    "read_mtz",
    "read_pdb",
    "read_reflections",
    "read_res",
    "read_structure",
    "read_xds_ascii",
    "write_calculated_cif",
    "write_calculated_mtz",
    "write_cif",
    "write_hkl",
    "write_ins",
    "write_res",
    "write_structure_factors",
]
