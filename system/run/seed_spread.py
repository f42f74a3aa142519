"""The spread of one config's quality figures across training seeds: `python -m system.run.seed_spread RUN...`.

    python -m system.run.seed_spread runs/crafter-cpu-seed0 runs/crafter-cpu-seed1 runs/crafter-cpu-seed2 \
        --out runs/crafter-cpu-spread.json
    spread = seed_spread([quality_0, quality_1, quality_2])      # the same, on the loaded quality.json dicts

Reads RUN/quality.json of each run (written by `python -m system.evaluate RUN`; all runs of the same config) and
prints a markdown table, one row per figure: its value in each run, then mean +- standard deviation over the runs
(the sample deviation, n - 1; "-" where a run lacks the figure, e.g. a run that stopped after phase 1), and below
it how many runs meet each per-run check (phase 3 > phase 2 > random on the live score, open loop beats copying
the last context frame, the targets). With --out the same goes to a JSON file:
{"runs": [{"run_dir", "training_seed"}], "figures": {name: {"values", "n", "mean", "std", "min", "max"}},
 "checks": {name: {"met", "of"}}}.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Callable

Quality = dict


def _walk(quality: Quality, path: tuple[str, ...]):
    """quality[path[0]][path[1]]...; None where a key is missing or null."""
    node = quality
    for key in path:
        if not isinstance(node, dict) or node.get(key) is None:
            return None
        node = node[key]
    return node


def _at(*path: str) -> Callable[[Quality], float | None]:
    def get(quality: Quality) -> float | None:
        node = _walk(quality, path)
        return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None
    return get


def _difference(first: Callable, second: Callable) -> Callable[[Quality], float | None]:
    def get(quality: Quality) -> float | None:
        a, b = first(quality), second(quality)
        return None if a is None or b is None else a - b
    return get


def _horizon(key: str) -> Callable[[Quality], float | None]:
    """A dynamics figure over the run's whole open-loop horizon (its name carries the horizon)."""
    def get(quality: Quality) -> float | None:
        horizon = _at("dynamics", "horizon")(quality)
        return None if horizon is None else _at("dynamics", f"{key}_{int(horizon)}")(quality)
    return get


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


OPEN_8, COPY_8 = _at("dynamics", "open_loop_psnr_db_8"), _at("dynamics", "copy_last_psnr_db_8")
OPEN_H, COPY_H = _horizon("open_loop_psnr_db"), _horizon("copy_last_psnr_db")
SCORE = {policy: _at("agent", policy, "score") for policy in ("random", "bc", "imagination")}

# name -> how to read it from one quality.json
FIGURES: dict[str, Callable[[Quality], float | None]] = {
    "tokenizer held-out PSNR (dB)": _at("tokenizer", "held_out_psnr_db"),
    "tokenizer retrieval": _at("tokenizer", "retrieval"),
    "open loop PSNR, 8 frames (dB)": OPEN_8,
    "open loop minus copy-last, 8 frames (dB)": _difference(OPEN_8, COPY_8),
    "open loop PSNR, whole horizon (dB)": OPEN_H,
    "open loop minus copy-last, whole horizon (dB)": _difference(OPEN_H, COPY_H),
    "open loop latent MSE / copy-last": lambda q: _ratio(_at("dynamics", "open_loop_latent_mse")(q),
                                                         _at("dynamics", "copy_last_latent_mse")(q)),
    "true minus shuffled actions (dB)": _at("dynamics", "action_gap_db"),
    "K = sampling steps vs K = k_max (dB)": _at("dynamics", "k_gap_db"),
    "live score, random (%)": SCORE["random"],
    "live score, phase-2 BC (%)": SCORE["bc"],
    "live score, phase-3 (%)": SCORE["imagination"],
    "live return, random": _at("agent", "random", "mean_return"),
    "live return, phase-2 BC": _at("agent", "bc", "mean_return"),
    "live return, phase-3": _at("agent", "imagination", "mean_return"),
}


def _flag(*path: str) -> Callable[[Quality], bool | None]:
    """A yes/no that system/evaluate.py already wrote into quality.json (it owns the targets)."""
    def get(quality: Quality) -> bool | None:
        node = _walk(quality, path)
        return node if isinstance(node, bool) else None
    return get


def _horizon_flag(key: str) -> Callable[[Quality], bool | None]:
    def get(quality: Quality) -> bool | None:
        horizon = _at("dynamics", "horizon")(quality)
        return None if horizon is None else _flag("dynamics", f"{key}_{int(horizon)}")(quality)
    return get


def _compare(first: Callable, second: Callable) -> Callable[[Quality], bool | None]:
    def check(quality: Quality) -> bool | None:
        a, b = first(quality), second(quality)
        return None if a is None or b is None else a > b
    return check


# name -> a per-run yes/no (None: the run lacks what the check needs)
CHECKS: dict[str, Callable[[Quality], bool | None]] = {
    "live score: phase 3 > phase 2 > random": _flag("agent", "ordered_as_targeted"),
    "live score: phase 2 > random": _compare(SCORE["bc"], SCORE["random"]),
    "live score: phase 3 > phase 2": _compare(SCORE["imagination"], SCORE["bc"]),
    "open loop beats copy-last, 8 frames": _flag("dynamics", "beats_copy_last_8"),
    "open loop beats copy-last, whole horizon": _horizon_flag("beats_copy_last"),
    "tokenizer >= 30 dB": _flag("tokenizer", "meets_target"),
    "K gap within 1 dB": _flag("dynamics", "k_within_target"),
}


def statistics(values: list[float | None]) -> dict:
    present = [v for v in values if v is not None]
    out = {"values": values, "n": len(present), "mean": None, "std": None, "min": None, "max": None}
    if present:
        mean = sum(present) / len(present)
        spread = math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1)) if len(present) > 1 else 0.0
        out.update(mean=mean, std=spread, min=min(present), max=max(present))
    return out


def seed_spread(qualities: list[Quality]) -> dict:
    """qualities: the quality.json dicts of runs of one config. Raises ValueError when they are not."""
    if not qualities:
        raise ValueError("no runs to compare")
    configs = {q.get("config") for q in qualities}
    if len(configs) > 1:
        named = ", ".join(f"{q.get('run_dir')}: {q.get('config')}" for q in qualities)
        raise ValueError(f"the runs are of different configs ({named}): a spread over seeds needs one config")
    checks = {}
    for name, check in CHECKS.items():
        results = [check(q) for q in qualities]
        answered = [r for r in results if r is not None]
        if answered:
            checks[name] = {"met": sum(answered), "of": len(answered)}
    return {"config": configs.pop(),
            "runs": [{"run_dir": q.get("run_dir"), "training_seed": q.get("training_seed")} for q in qualities],
            "figures": {name: statistics([read(q) for q in qualities]) for name, read in FIGURES.items()},
            "checks": checks}


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}" if 0 < abs(value) < 0.1 else f"{value:.2f}"


def markdown(spread: dict) -> str:
    seeds = [f"seed {r['training_seed']}" if r["training_seed"] is not None else Path(str(r["run_dir"])).name
             for r in spread["runs"]]
    lines = [f"| figure ({spread['config']}) | " + " | ".join(seeds) + " | mean +- std |",
             "|---|" + "---:|" * (len(seeds) + 1)]
    for name, figure in spread["figures"].items():
        if figure["n"] == 0:
            continue
        summary = f"{_number(figure['mean'])} +- {_number(figure['std'])}" + \
            (f" (n = {figure['n']})" if figure["n"] < len(seeds) else "")
        lines.append(f"| {name} | " + " | ".join(_number(v) for v in figure["values"]) + f" | {summary} |")
    lines.append("")
    lines += [f"- {name}: {c['met']} of {c['of']} runs" for name, c in spread["checks"].items()]
    return "\n".join(lines)


def load_quality(run_dir: Path) -> Quality:
    path = run_dir / "quality.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no quality.json (run `python -m system.evaluate {run_dir}` first)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m system.run.seed_spread",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="also write the spread as JSON here")
    args = parser.parse_args(argv)
    try:
        spread = seed_spread([load_quality(run_dir) for run_dir in args.run_dirs])
    except (FileNotFoundError, ValueError) as error:
        print(f"seed_spread: {error}", file=sys.stderr)
        return 1
    print(markdown(spread))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(spread, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
