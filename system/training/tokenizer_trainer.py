"""Tokenizer training step: one optimizer step on the objective of paper Eq. 5 (system/objectives/tokenizer_loss.py).

    trainer = TokenizerTrainer(model_cfg, train_cfg, device)
    metrics = trainer.step(frames)        # frames (B, T, H, W, 3) float in [0, 1]; one optimizer step
    metrics = trainer.evaluate(frames)    # no masking (p = 0), no update: {"mse", "psnr", "retrieval", ...}

Training draws a fresh MAE mask per image (p ~ U(0, mask_prob_max)) and reconstructs every patch, masked or
not; learning rate: linear warm-up, then cosine decay (system/training/optim.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from system.model.tokenizer import Tokenizer, TokenizerConfig
from system.objectives.image_metrics import psnr, retrieval_accuracy
from system.objectives.lpips import load_lpips
from system.objectives.tokenizer_loss import TokenizerLoss
from system.training.optim import make_optimizer, warmup_cosine


@dataclass
class TokenizerTrainConfig:
    steps: int = 10000
    batch_size: int = 16
    seq_len: int = 8            # frames per training sequence (the tokenizer is causal in time)
    lr: float = 3e-4
    min_lr_ratio: float = 0.1   # cosine decay to this fraction of lr
    warmup_steps: int = 500
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    lpips_backbone: str = ""    # local torchvision VGG16 state dict; empty: LPIPS off (warned once)
    lpips_linear: str = ""      # local LPIPS v0.1 VGG linear weights


def lr_at(step: int, cfg: TokenizerTrainConfig) -> float:
    return warmup_cosine(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)


class TokenizerTrainer:
    def __init__(self, model_cfg: TokenizerConfig, train_cfg: TokenizerTrainConfig, device: torch.device | str,
                 generator: torch.Generator | None = None):
        self.cfg, self.train_cfg, self.device = model_cfg, train_cfg, torch.device(device)
        self.model = Tokenizer(model_cfg).to(self.device)
        lpips = load_lpips(train_cfg.lpips_backbone, train_cfg.lpips_linear)
        self.loss_fn = TokenizerLoss(model_cfg, lpips.to(self.device) if lpips is not None else None).to(self.device)
        self.optimizer = make_optimizer(self.model, train_cfg.lr, train_cfg.weight_decay)
        self.generator = generator
        self.step_count = 0
        self.grad_sync = None  # data parallel: called on the model between backward and clipping

    def data_parallel_parts(self) -> tuple[nn.Module, nn.Module]:
        """(trained module, module holding the RunningRMS normalisers): system/training/data_parallel.py."""
        return self.model, self.loss_fn

    def step(self, frames: torch.Tensor) -> dict[str, float]:
        self.model.train()
        self.loss_fn.train()
        frames = frames.to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step_count, self.train_cfg)
        mask = self.model.sample_mask(*frames.shape[:2], device=self.device, generator=self.generator)
        recon, _ = self.model(frames, mask)
        loss, metrics = self.loss_fn(recon, frames)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(self.model)
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.train_cfg.grad_clip)
        self.optimizer.step()
        self.step_count += 1
        metrics.update(grad_norm=grad_norm, mask_fraction=mask.float().mean(), lr=self.optimizer.param_groups[0]["lr"],
                       psnr=psnr(recon.detach().clamp(0, 1), frames))
        return {k: float(v) for k, v in metrics.items()}

    @torch.no_grad()
    def evaluate(self, frames: torch.Tensor, retrieval_stride: int = 8, chunk: int = 8) -> dict[str, float]:
        """Reconstructions of (N, T, H, W, 3) frames with no masking: mse, psnr (mean over frames of the
        per-frame PSNR), and retrieval: the share of frames t = 0, stride, 2 stride, ... of every sequence whose
        reconstruction is nearer to its own frame than to any other of them (chance: 1 / their number)."""
        self.model.eval()
        frames = frames.to(self.device)
        recon = torch.cat([self.reconstruct(frames[i:i + chunk]) for i in range(0, len(frames), chunk)])
        picked = slice(0, None, retrieval_stride)
        shown, truth = recon[:, picked].flatten(0, 1), frames[:, picked].flatten(0, 1)
        return {"mse": float(F.mse_loss(recon, frames)), "psnr": float(psnr(recon, frames)),
                "retrieval": float(retrieval_accuracy(shown, truth)), "retrieval_chance": 1.0 / len(truth)}

    @torch.no_grad()
    def reconstruct(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, T, H, W, 3) -> reconstructions clamped to [0, 1], encoded with no masking."""
        self.model.eval()
        return self.model.decode(self.model.encode(frames)).clamp(0, 1)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "loss_norm": {"mse": self.loss_fn.mse_norm.state_dict(), "lpips": self.loss_fn.lpips_norm.state_dict()},
                "step": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.loss_fn.mse_norm.load_state_dict(state["loss_norm"]["mse"])
        self.loss_fn.lpips_norm.load_state_dict(state["loss_norm"]["lpips"])
        self.step_count = int(state["step"])
