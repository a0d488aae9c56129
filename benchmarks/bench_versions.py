"""The normal path, this checkout against an earlier commit, measured side by side in one run.

Not a test. Run from the repository root (a few minutes on 2 cores):

    .venv/bin/python benchmarks/bench_versions.py --baseline COMMIT [--rounds 5]

Checks COMMIT out into a temporary git worktree, runs each tree once untimed (filling its numba cache), then
alternates rounds between the two source trees, a fresh process each: `est(frame)` on a 1280x720 shared photo with
the trained fixture model (torch fp32, the library default; median ms over 30 calls after warm-up), and the wall time of
`lightpose predict` over the 40 shared photos into a fresh folder (torch backend, JSON and annotated images).
Prints one markdown table: median over rounds and the spread (min-max), and the ratio current / baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIGHTPOSE_SHARED", ROOT.parent / "shared"))
PEOPLE = SHARED / "data" / "people"
FRAME = PEOPLE / "sports2d_demo_f000.jpg"
FIXTURE = SHARED / "data" / "fixture" / "people_fixture.pth"

CALL_SCRIPT = """
import statistics, sys, time
import torch
from lightpose import PoseEstimator
from lightpose.io import read_image
torch.set_num_threads({threads})
est = PoseEstimator.from_pretrained({fixture!r}, device="cpu")
frame = read_image({frame!r})
for _ in range(5):
    est(frame)
times = []
for _ in range(30):
    start = time.perf_counter()
    result = est(frame)
    times.append((time.perf_counter() - start) * 1e3)
assert len(result) > 0
print(statistics.median(times))
"""


def call_ms(src: Path, threads: int) -> float:
    """Median ms of `est(frame)` in a fresh process importing lightpose from `src`."""
    code = CALL_SCRIPT.format(threads=threads, fixture=str(FIXTURE), frame=str(FRAME))
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def predict_s(src: Path, out: Path) -> float:
    """Wall seconds of `lightpose predict` over the shared photos (fresh process, fresh output folder)."""
    command = [sys.executable, "-m", "lightpose", "predict", str(PEOPLE), "--output", str(out), "-q"]
    command += ["--checkpoint", str(FIXTURE), "--device", "cpu", "--backend", "torch"]
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git commit to compare with (e.g. main~10)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if not (FIXTURE.exists() and FRAME.exists()):
        sys.exit(f"needs the shared fixture model and photos ({FIXTURE}, {FRAME})")
    with tempfile.TemporaryDirectory() as scratch:
        worktree = Path(scratch) / "baseline"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(worktree), args.baseline], cwd=ROOT, check=True)
        try:
            trees = {"baseline": worktree / "src", "current": ROOT / "src"}
            calls: dict[str, list[float]] = {name: [] for name in trees}
            runs: dict[str, list[float]] = {name: [] for name in trees}
            for name, src in trees.items():  # untimed: fills each tree's numba cache (keyed by source path)
                predict_s(src, Path(scratch) / f"warm-{name}")
            for round_ in range(args.rounds):
                for name, src in trees.items():
                    calls[name].append(call_ms(src, args.threads))
                    runs[name].append(predict_s(src, Path(scratch) / f"out-{name}-{round_}"))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)
    print(f"baseline {args.baseline}, {args.rounds} rounds, {args.threads} threads, median (min-max)\n")
    print("| measure | baseline | current | current / baseline |")
    print("|---|---|---|---|")
    for label, values in (("est(frame) ms, 1280x720", calls), ("predict 40 photos, s", runs)):
        ratio = statistics.median(values["current"]) / statistics.median(values["baseline"])
        print(f"| {label} | {summary(values['baseline'])} | {summary(values['current'])} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
