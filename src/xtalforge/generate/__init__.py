"""Structure generators: cells, atom placement, artificial molecules, presets."""

from xtalforge.generate.config import (
    CellConfig,
    CompositionConfig,
    ConfigError,
    GeneratorConfig,
    PlacementConfig,
    load_config,
)
from xtalforge.generate.generator import Generator
from xtalforge.generate.samples import write_samples

__all__ = [
    "CellConfig",
    "CompositionConfig",
    "ConfigError",
    "Generator",
    "GeneratorConfig",
    "PlacementConfig",
    "load_config",
    "write_samples",
]
