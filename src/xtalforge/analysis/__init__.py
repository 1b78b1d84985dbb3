"""Interpretability and reporting: Grad-CAM for the U-Nets, transformer attention maps and their
statistics, input-noise sensitivity, reconstruction / Patterson / density slices, training
curves, solve-benchmark and powder plots (the HTML run report is
:mod:`xtalforge.workflows.report`)."""

from xtalforge.analysis.attention import attention_maps, attention_statistics
from xtalforge.analysis.gradcam import grad_cam
from xtalforge.analysis.sensitivity import sensitivity_map

__all__ = ["attention_maps", "attention_statistics", "grad_cam", "sensitivity_map"]
