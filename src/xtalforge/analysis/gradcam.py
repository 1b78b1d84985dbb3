"""Grad-CAM (Selvaraju et al. 2017) for any convolution layer of the grid models.

The score is the sum of the network's raw predictions over the target shell; the map is
ReLU(Σ_k α_k A_k) with α_k the spatial mean of ∂score/∂A_k, upsampled (trilinear) to the hkl
grid and normalised to a maximum of 1.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xtalforge.errors import XtalforgeError

__all__ = ["conv_layers", "grad_cam"]


def conv_layers(net: nn.Module) -> list[str]:
    """Names of the network's 3D convolution layers (valid ``layer`` arguments)."""
    return [name for name, m in net.named_modules() if isinstance(m, nn.Conv3d)]


def grad_cam(module: Any, batch: dict[str, torch.Tensor], layer: str) -> torch.Tensor:
    """Grad-CAM heat map (B, *grid) in [0, 1] for a grid model (``module``: the Lightning
    module) and the named layer of ``module.net`` (a Conv3d or a block containing them)."""
    if module.input_mode != "grid":
        raise XtalforgeError("Grad-CAM needs a convolutional (grid) model")
    modules = dict(module.net.named_modules())
    if layer not in modules:
        raise XtalforgeError(
            f"no layer {layer!r}; convolution layers: {', '.join(conv_layers(module.net))}"
        )
    store: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        out.retain_grad()
        store["act"] = out

    handle = modules[layer].register_forward_hook(hook)
    was_training = module.training
    module.eval()
    try:
        with torch.enable_grad():
            # the raw network output (before clipping at 0), so an untrained or pessimistic
            # model still has gradients
            pred = module.raw(batch)
            score = (pred * batch["target_mask"]).sum()
            module.zero_grad(set_to_none=True)
            score.backward()
    finally:
        handle.remove()
        module.train(was_training)
    act = store["act"]
    assert act.grad is not None  # the backward pass reached the layer
    weights = act.grad.mean(dim=(2, 3, 4), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=batch["input"].shape[-3:], mode="trilinear", align_corners=False)[
        :, 0
    ]
    top = cam.flatten(1).amax(dim=1).clamp_min(1e-12)
    return cam / top.view(-1, 1, 1, 1)
