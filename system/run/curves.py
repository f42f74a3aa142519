"""Learning curves as one PNG, drawn with Pillow (no plotting library is a dependency).

    write_curves(path, metrics_lines, [("tokenizer", "psnr"), ("dynamics", "loss"), ...])

metrics_lines: the records of metrics.jsonl ({"phase", "step", <scalar>: value}). One panel per (phase, scalar)
that has at least one value: the values against the step, the first and last value and the step range written
on it. Panels sit in a grid of three columns.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

PANEL = (320, 180)
MARGIN = 28


def series(lines: list[dict], phase: str, key: str) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r[key])) for r in lines
            if r.get("phase") == phase and isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]


def draw_panel(draw: ImageDraw.ImageDraw, origin: tuple[int, int], title: str, points: list[tuple[int, float]]):
    x0, y0 = origin
    w, h = PANEL
    draw.rectangle([x0, y0, x0 + w - 1, y0 + h - 1], outline=(200, 200, 200))
    draw.text((x0 + 6, y0 + 4), title, fill=(0, 0, 0))
    steps, values = [p[0] for p in points], [p[1] for p in points]
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    first, last = min(steps), max(steps)
    left, right, top, bottom = x0 + MARGIN, x0 + w - 8, y0 + 20, y0 + h - 18

    def at(step: int, value: float) -> tuple[float, float]:
        x = left + (right - left) * ((step - first) / (last - first) if last > first else 0.5)
        return x, bottom - (bottom - top) * (value - lo) / span

    draw.line([left, top, left, bottom, right, bottom], fill=(120, 120, 120))
    xy = [at(s, v) for s, v in points]
    if len(xy) == 1:
        draw.ellipse([xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 2, xy[0][1] + 2], fill=(30, 90, 200))
    else:
        draw.line(xy, fill=(30, 90, 200), width=2)
    draw.text((left + 2, top - 2), f"{hi:.4g}", fill=(90, 90, 90))
    draw.text((left + 2, bottom - 12), f"{lo:.4g}", fill=(90, 90, 90))
    draw.text((left, bottom + 3), f"step {first}..{last}: {values[0]:.4g} -> {values[-1]:.4g}", fill=(60, 60, 60))


def write_curves(path: str | Path, lines: list[dict], panels: list[tuple[str, str]]) -> Path | None:
    """Writes the panels that have data; None (and no file) when none has."""
    drawn = [(f"{phase}/{key}", points) for phase, key in panels if (points := series(lines, phase, key))]
    if not drawn:
        return None
    columns = min(3, len(drawn))
    rows = math.ceil(len(drawn) / columns)
    image = Image.new("RGB", (columns * PANEL[0], rows * PANEL[1]), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for i, (title, points) in enumerate(drawn):
        draw_panel(draw, ((i % columns) * PANEL[0], (i // columns) * PANEL[1]), title, points)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
