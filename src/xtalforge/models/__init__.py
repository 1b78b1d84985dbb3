"""Neural networks as plain ``nn.Module`` s, picked by name (no training code here).

``build_model(name, size="small" | "thesis", **overrides)``; ``MODELS[name].input_mode`` says
whether a model reads hkl-grid tensors (``"grid"``), reflection lists (``"list"``), periodic
maps (``"map"``: Patterson and density models) or hkl grids with a phase channel (``"phase"``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from xtalforge.errors import XtalforgeError
from xtalforge.models.density_unet import DensityUNet
from xtalforge.models.fft_unet import FFTUNet
from xtalforge.models.patterson_unet import PattersonUNet
from xtalforge.models.phai import PhaseNet
from xtalforge.models.unet3d import UNet3D
from xtalforge.models.xrd_transformer import XRDTransformer

__all__ = [
    "MODELS",
    "DensityUNet",
    "FFTUNet",
    "PattersonUNet",
    "PhaseNet",
    "UNet3D",
    "XRDTransformer",
    "build_model",
]

MODELS: dict[str, type[nn.Module]] = {
    "unet3d": UNet3D,
    "fft_unet": FFTUNet,
    "xrd_transformer": XRDTransformer,
    "patterson_unet": PattersonUNet,
    "density_unet": DensityUNet,
    "phai": PhaseNet,
}


def build_model(name: str, size: str = "small", **overrides: Any) -> nn.Module:
    """A model from the registry with its ``size`` preset and keyword overrides."""
    if name not in MODELS:
        raise XtalforgeError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    cls = MODELS[name]
    sizes = getattr(cls, "SIZES", {})
    if size not in sizes:
        raise XtalforgeError(
            f"model {name!r} has no size {size!r}; choose one of {', '.join(sizes)}"
        )
    kwargs = {**sizes[size], **overrides}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise XtalforgeError(f"model {name!r}: {exc}") from None
