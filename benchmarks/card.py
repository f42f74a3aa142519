"""What the card (or CPU) in this run can do, and what a step costs: shared by benchmarks/gpu_train.py and
benchmarks/gpu_generate.py (torch only, so they run on a machine with PyTorch and nothing else).

    card = card_rates(device, tiny=False)     # {"matmul_flops_per_s", "matmul_dtype", "copy_bytes_per_s"}
    seconds = timed(fn, device, repeats=10)   # median wall time of fn, synchronised, after one warm-up call
    flops = counted_flops(fn)                 # what torch's FlopCounterMode counts while fn runs
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


class CrafterAction:
    name, kind, num_classes = "action", "categorical", 17


class CrafterLikeSpace:
    """Crafter's action space as the models read it (system/envs imports gymnasium, which a GPU machine with
    PyTorch alone lacks)."""
    name, components = "crafter-like", (CrafterAction(),)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of `repeats` calls of fn (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def card_rates(device: torch.device, tiny: bool) -> dict:
    """The matmul rate (bf16 on CUDA, fp32 on CPU; square matmuls of side 8192, 256 when tiny) and the copy
    bandwidth (a 1 GiB copy, read + write counted; 4 MiB when tiny) this run can reach."""
    n = 256 if tiny else 8192
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    matmul_s = timed(lambda: a @ b, device, 3 if tiny else 20)
    src = torch.empty((4 if tiny else 1024) * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    copy_s = timed(lambda: dst.copy_(src), device, 3 if tiny else 20)
    return {"matmul_flops_per_s": 2 * n**3 / matmul_s, "matmul_dtype": str(dtype).replace("torch.", ""),
            "copy_bytes_per_s": 2 * src.numel() / copy_s}


def counted_flops(fn) -> float:
    """What torch's FlopCounterMode counts while fn runs (forward and, if fn runs it, backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())
