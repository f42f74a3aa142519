"""Causal tokenizer (paper section 3.1): frames -> tanh bottleneck latents -> frames, causal in time.

    tok = Tokenizer(TokenizerConfig(...))
    z = tok.encode(frames)              # frames (B, T, H, W, 3) float in [0, 1] -> z (B, T, N_b, D_b) in (-1, 1)
    recon = tok.decode(z)               # z (B, T, N_b, D_b) -> (B, T, H, W, 3), unclamped pixel predictions
    recon, z = tok(frames, mask_prob)   # training: MAE-masked encode + decode; mask_prob (B, T) or None

Encoder frame tokens: [patches x N_p | latents x N_b]. Patches read only patches; latents read everything.
The latent outputs go through a linear projection to D_b channels and tanh: the bottleneck.
Decoder frame tokens: [latents x N_b | readouts x N_p]. The bottleneck is projected back to model width;
latents read only latents, readout queries read everything and are projected to pixel patches.
Both transformers are block-causal: frame t is encoded and decoded from frames <= t only, so frames can be
decoded one at a time during interactive generation. Temporal layers see a sliding window of `context` frames,
so the latents of frame t depend on a fixed number of frames (`latent_receptive_field`) whatever the length of
the window encoded: a tokenizer trained on windows at least that long (`temporal_receptive_field`, checked by
the tokenizer config section) gives the dynamics model latents that never drift with the encoding window.

Frames are zero-padded at the bottom/right to a multiple of the patch size (the paper pads 360x640 to
384x640); the padding is cropped off the reconstruction. Masked autoencoding: during training each image
draws p ~ U(0, mask_prob_max) and replaces each patch embedding with a learned mask embedding with
probability p; at inference p = 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from system.model.grid_positions import latent_coords, patch_coords
from system.model.layout import TokenLayout
from system.model.transformer import BlockCausalTransformer, TransformerConfig


def _small_transformer() -> TransformerConfig:
    # context: frames a temporal layer of the tokenizer sees (paper: not given). Short, so training windows
    # can cover the whole temporal receptive field (see latent_receptive_field).
    return TransformerConfig(dim=256, depth=8, num_heads=4, num_kv_heads=1, temporal_every=4, context=2)


@dataclass
class TokenizerConfig:
    image_size: tuple[int, int] = (64, 64)   # (H, W) of input frames; 64x64 for MineRL v0 and Crafter
    channels: int = 3
    patch_size: int = 8                       # paper: 16 at 384x640 (960 patches); 8 at 64x64 gives 64
    num_latents: int = 512                    # N_b (paper App. A: 512 x 16)
    latent_dim: int = 16                      # D_b
    mask_prob_max: float = 0.9                # MAE: p ~ U(0, 0.9) per image (paper 3.1)
    # Hidden width of a per-patch MLP that embeds each patch and of one that reads its pixels out; 0: a single
    # linear layer each. Linear, the decoder's output for a patch lies in a dim-dimensional affine subspace of
    # its patch_pixels values: at dim 64 and 8x8x3 patches even the best such subspace (PCA) caps held-out
    # Crafter PSNR near 28 dB (docs/architecture.md). The paper does not say; 0 keeps the plain linear maps.
    patch_hidden: int = 0
    lpips_weight: float = 0.2                 # L = MSE + 0.2 LPIPS, each RMS-normalised (paper Eq. 5)
    rms_decay: float = 0.99                   # running-RMS loss normaliser decay (not given by the paper)
    encoder: TransformerConfig = field(default_factory=_small_transformer)
    decoder: TransformerConfig = field(default_factory=_small_transformer)

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.num_latents < 1 or self.latent_dim < 1:
            raise ValueError("patch_size, num_latents and latent_dim must be positive")
        if self.patch_hidden < 0:
            raise ValueError(f"patch_hidden must be >= 0 (0: linear patch maps), got {self.patch_hidden}")
        if not 0.0 <= self.mask_prob_max < 1.0:
            raise ValueError(f"mask_prob_max must be in [0, 1), got {self.mask_prob_max}")

    @property
    def grid(self) -> tuple[int, int]:
        """Patches along (H, W) after padding to a multiple of the patch size."""
        h, w = self.image_size
        return -(-h // self.patch_size), -(-w // self.patch_size)

    @property
    def num_patches(self) -> int:
        gh, gw = self.grid
        return gh * gw

    @property
    def patch_pixels(self) -> int:
        return self.patch_size * self.patch_size * self.channels

    @property
    def latent_receptive_field(self) -> int:
        """Frames (its own included) the latents of a frame depend on: each temporal layer of the encoder
        reaches context - 1 frames further back."""
        enc = self.encoder
        return enc.num_temporal_layers * (enc.context - 1) + 1

    @property
    def decoder_receptive_field(self) -> int:
        """Latent frames (its own included) a decoded frame depends on: decoding the last this many latents
        gives the same frame as decoding the whole episode (frame-by-frame display)."""
        dec = self.decoder
        return dec.num_temporal_layers * (dec.context - 1) + 1

    @property
    def temporal_receptive_field(self) -> int:
        """Frames a reconstructed frame depends on, through the encoder and then the decoder."""
        return self.latent_receptive_field + self.decoder_receptive_field - 1


def encoder_layout(cfg: TokenizerConfig) -> TokenLayout:
    return TokenLayout.build({"patches": cfg.num_patches, "latents": cfg.num_latents},
                             {"patches": ["patches"], "latents": "*"})


def decoder_layout(cfg: TokenizerConfig) -> TokenLayout:
    return TokenLayout.build({"latents": cfg.num_latents, "readouts": cfg.num_patches},
                             {"latents": ["latents"], "readouts": "*"})


def tokenizer_grid_coords(cfg: TokenizerConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, 2) patch-grid coordinates of the encoder's and the decoder's tokens (2D space RoPE): patches and
    readouts on their patches, latents on their own grid over the same frame (grid_positions.py)."""
    patches, latents = patch_coords(cfg.grid), latent_coords(cfg.num_latents, cfg.grid)
    return (encoder_layout(cfg).grid_coords({"patches": patches, "latents": latents}),
            decoder_layout(cfg).grid_coords({"latents": latents, "readouts": patches}))


def patchify(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, T, H, W, C) -> (B, T, N_p, patch*patch*C), zero-padding H and W up to multiples of `patch`."""
    b, t, h, w, c = frames.shape
    pad_h, pad_w = -h % patch, -w % patch
    if pad_h or pad_w:
        frames = F.pad(frames, (0, 0, 0, pad_w, 0, pad_h))
    gh, gw = (h + pad_h) // patch, (w + pad_w) // patch
    x = frames.reshape(b, t, gh, patch, gw, patch, c).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, t, gh * gw, patch * patch * c)


def unpatchify(patches: torch.Tensor, patch: int, image_size: tuple[int, int], channels: int) -> torch.Tensor:
    """Inverse of `patchify`, cropping the padding: (B, T, N_p, patch*patch*C) -> (B, T, H, W, C)."""
    b, t, _, _ = patches.shape
    h, w = image_size
    gh, gw = -(-h // patch), -(-w // patch)
    x = patches.reshape(b, t, gh, gw, patch, patch, channels).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, t, gh * patch, gw * patch, channels)[:, :, :h, :w]


def patch_map(in_dim: int, hidden: int, out_dim: int) -> nn.Module:
    """Per-patch map between pixels and model width: linear, or an MLP with one GELU hidden layer."""
    if not hidden:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


class Tokenizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        enc, dec = cfg.encoder, cfg.decoder
        self.enc_layout, self.dec_layout = encoder_layout(cfg), decoder_layout(cfg)
        enc_coords, dec_coords = tokenizer_grid_coords(cfg)
        # encoder
        self.patch_embed = patch_map(cfg.patch_pixels, cfg.patch_hidden, enc.dim)
        self.patch_pos = nn.Parameter(torch.randn(cfg.num_patches, enc.dim) * 0.02)
        self.mask_embed = nn.Parameter(torch.randn(enc.dim) * 0.02)
        self.latent_queries = nn.Parameter(torch.randn(cfg.num_latents, enc.dim) * 0.02)
        self.encoder = BlockCausalTransformer(enc, self.enc_layout, enc_coords)
        self.to_bottleneck = nn.Linear(enc.dim, cfg.latent_dim)
        # decoder
        self.from_bottleneck = nn.Linear(cfg.latent_dim, dec.dim)
        self.latent_pos = nn.Parameter(torch.randn(cfg.num_latents, dec.dim) * 0.02)
        self.readout_queries = nn.Parameter(torch.randn(cfg.num_patches, dec.dim) * 0.02)
        self.decoder = BlockCausalTransformer(dec, self.dec_layout, dec_coords)
        self.to_pixels = patch_map(dec.dim, cfg.patch_hidden, cfg.patch_pixels)

    def _check_frames(self, frames: torch.Tensor) -> None:
        expected = (*self.cfg.image_size, self.cfg.channels)
        if frames.dim() != 5 or tuple(frames.shape[2:]) != expected:
            raise ValueError(f"tokenizer expects frames of shape (B, T, {expected[0]}, {expected[1]}, "
                             f"{expected[2]}) float in [0, 1], got {tuple(frames.shape)}")
        if not frames.is_floating_point():
            raise ValueError(f"tokenizer expects float frames in [0, 1], got dtype {frames.dtype}")

    def sample_mask(self, batch: int, frames: int, device=None, generator=None) -> torch.Tensor:
        """(B, T, N_p) bool: True where a patch is dropped. p ~ U(0, mask_prob_max) per image."""
        p = torch.rand(batch, frames, 1, device=device, generator=generator) * self.cfg.mask_prob_max
        return torch.rand(batch, frames, self.cfg.num_patches, device=device, generator=generator) < p

    def encode(self, frames: torch.Tensor, patch_mask: torch.Tensor | None = None) -> torch.Tensor:
        """frames (B, T, H, W, C) in [0, 1] -> z (B, T, N_b, D_b); patch_mask (B, T, N_p) drops patches."""
        self._check_frames(frames)
        b, t = frames.shape[:2]
        patches = self.patch_embed(patchify(frames * 2.0 - 1.0, self.cfg.patch_size))
        if patch_mask is not None:
            patches = torch.where(patch_mask[..., None], self.mask_embed.to(patches.dtype), patches)
        patches = patches + self.patch_pos
        latents = self.latent_queries.expand(b, t, -1, -1).to(patches.dtype)
        h = self.encoder(torch.cat([patches, latents], dim=2))
        return torch.tanh(self.to_bottleneck(h[:, :, self.enc_layout.slice("latents")]))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, T, N_b, D_b) -> reconstructed frames (B, T, H, W, C), roughly in [0, 1] (not clamped)."""
        cfg = self.cfg
        if z.dim() != 4 or tuple(z.shape[2:]) != (cfg.num_latents, cfg.latent_dim):
            raise ValueError(f"decode expects z of shape (B, T, {cfg.num_latents}, {cfg.latent_dim}), "
                             f"got {tuple(z.shape)}")
        b, t = z.shape[:2]
        latents = self.from_bottleneck(z) + self.latent_pos
        readouts = self.readout_queries.expand(b, t, -1, -1).to(latents.dtype)
        h = self.decoder(torch.cat([latents, readouts], dim=2))
        pixels = self.to_pixels(h[:, :, self.dec_layout.slice("readouts")])
        return (unpatchify(pixels, cfg.patch_size, cfg.image_size, cfg.channels) + 1.0) / 2.0

    def forward(self, frames: torch.Tensor, patch_mask: torch.Tensor | None = None):
        z = self.encode(frames, patch_mask)
        return self.decode(z), z
