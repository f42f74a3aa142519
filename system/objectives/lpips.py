"""LPIPS perceptual distance (Zhang et al. 2018) with a VGG16 backbone, loaded from local weight files only.

    lpips = load_lpips(backbone_path, linear_path)   # None (and one warning) when no paths are given
    d = lpips(x, y)                                  # x, y (N, 3, H, W) in [0, 1] -> (N,) distances

Two files, both read with `torch.load(weights_only=True)`:
- backbone_path: torchvision's VGG16 ImageNet state dict (e.g. `vgg16-397923af.pth`); the `features.*` keys
  are used, the classifier is ignored.
- linear_path: the LPIPS v0.1 linear-layer weights for VGG (`vgg.pth` of the `lpips` package, keys
  `lin0.model.1.weight` ... `lin4.model.1.weight`, each (1, C, 1, 1)).
Our machines cannot download them, so LPIPS is off unless both paths are configured; the tokenizer then
trains on MSE alone and the run says so once.

Distance: unit-normalise each of the 5 tapped feature maps over channels, square the difference, weight channels
with the linear layer, average over space and sum over layers. Inputs are mapped to [-1, 1] and shifted/scaled
as in the reference implementation.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn as nn

# torchvision VGG16 `features` layout: ints are conv output channels, "M" a max-pool; ReLU after each conv.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_TAPS = (3, 8, 15, 22, 29)            # indices of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in `features`
_CHANNELS = (64, 128, 256, 512, 512)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG16:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.linear = nn.ParameterList(nn.Parameter(torch.ones(1, c, 1, 1) / c) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # a frozen metric: never in training mode
        return super().train(False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x * 2.0 - 1.0) - self.shift) / self.scale
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _TAPS:
                taps.append(x)
            if index == _TAPS[-1]:
                break
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS expects two (N, 3, H, W) images of one shape, got {tuple(x.shape)}, "
                             f"{tuple(y.shape)}")
        total = x.new_zeros(x.shape[0])
        for fx, fy, weight in zip(self._taps(x), self._taps(y), self.linear):
            fx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            fy = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + ((fx - fy).pow(2) * weight).sum(1).mean((1, 2))
        return total

    def load_weights(self, backbone_path: str | Path, linear_path: str | Path) -> "LPIPS":
        backbone = _load_state(backbone_path)
        wanted = {k: v for k, v in self.features.state_dict().items()}
        missing = [f"features.{k}" for k in wanted if f"features.{k}" not in backbone]
        if missing:
            raise ValueError(f"{backbone_path}: not a torchvision VGG16 state dict (missing key {missing[0]!r})")
        self.features.load_state_dict({k: backbone[f"features.{k}"] for k in wanted})
        linear = _load_state(linear_path)
        for i, c in enumerate(_CHANNELS):
            key = f"lin{i}.model.1.weight"
            if key not in linear:
                raise ValueError(f"{linear_path}: not LPIPS v0.1 VGG linear weights (missing key {key!r})")
            if tuple(linear[key].shape) != (1, c, 1, 1):
                raise ValueError(f"{linear_path}: {key} has shape {tuple(linear[key].shape)}, expected (1, {c}, 1, 1)")
            self.linear[i].data.copy_(linear[key])
        return self


def _load_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a corrupt or foreign file: say which one
        raise ValueError(f"{path}: cannot be read as a weights-only torch state dict ({error})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


_warned = False


def load_lpips(backbone_path: str = "", linear_path: str = "") -> LPIPS | None:
    """The LPIPS metric from local weights, or None with a single warning when they are not configured."""
    global _warned
    if not backbone_path or not linear_path:
        if not _warned:
            warnings.warn("LPIPS is off: no local VGG16/LPIPS weights configured (tokenizer.train.lpips_backbone, "
                          "tokenizer.train.lpips_linear); the tokenizer trains on MSE alone", stacklevel=2)
            _warned = True
        return None
    return LPIPS().load_weights(backbone_path, linear_path)
