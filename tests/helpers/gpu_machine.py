"""What the GPU machine lacks: the prepared GPU suites (benchmarks/gpu_*.py) must import without these."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ABSENT_ON_GPU_MACHINE = ("ray", "redis", "crafter", "gymnasium", "yaml", "wandb")


def absent_packages_imported(module: str) -> list[str]:
    """Which of ABSENT_ON_GPU_MACHINE importing `module` loads, in a fresh interpreter at the repository root."""
    code = f"import sys, {module}; print(','.join(m for m in {ABSENT_ON_GPU_MACHINE!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    return [name for name in out.stdout.strip().split(",") if name]
