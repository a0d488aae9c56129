"""Speed of lightpose on this machine: preprocess, network, decode, end to end, per backend and precision.

Not a test. Run from the repository root (a few minutes on 2 cores):

    .venv/bin/python benchmarks/bench.py [--repeat 15] [--threads N] [--stat median|min]

Prints markdown tables: the machine, the fp32 matmul roofline beside the network's achieved GFLOP/s, per-backend
timings for a 1280x720 frame at network input 456x256, decoder timings (reference-exact loops vs the vectorised
decoder) on synthetic crowds, and batch throughput. Timings are medians by default; the machine may be shared, so
compare numbers within one run; `--stat min` reports the best run, less sensitive to other processes.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from lightpose.backends import OnnxRuntimeBackend, OpenVINOBackend, TorchBackend, cpu_supports_bf16
from lightpose.decode import decode_maps, entries_to_poses, upsample_maps
from lightpose.estimator import PoseEstimator
from lightpose.model import LightweightOpenPose
from lightpose.preprocess import prepare_input
from lightpose.training.synthetic import random_people, render_maps

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIGHTPOSE_SHARED", ROOT.parent / "shared"))
FRAME = SHARED / "data" / "people" / "sports2d_demo_f000.jpg"
CHECKPOINT = SHARED / "reference" / "golden" / "checkpoint_random_3stages.pth"
NETWORK_GFLOP = 15.3  # per 456x256 frame (multiply-adds counted as 2 FLOPs)


STATISTICS: dict[str, Callable[[list[float]], float]] = {"median": statistics.median, "min": min}
statistic = STATISTICS["median"]  # set from --stat


def time_ms(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    """Milliseconds per call of `fn`: the chosen statistic (median, or min = best) of `repeat` timed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistic(times) * 1e3


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return fields.get("Model name", "unknown").strip()


def load_network() -> tuple[LightweightOpenPose, str]:
    """The published-layout random-weight checkpoint when ../shared is present, else a fresh random model."""
    if CHECKPOINT.is_file():
        from lightpose.weights import load_model

        return load_model(CHECKPOINT)[0], f"random weights ({CHECKPOINT.name})"
    torch.manual_seed(0)
    return LightweightOpenPose().eval(), "random weights (fresh init)"


def load_frame() -> tuple[np.ndarray, str]:
    if FRAME.is_file():
        image = cv2.imread(str(FRAME), cv2.IMREAD_COLOR)
        if image is not None:
            return image, FRAME.name
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), "synthetic 1280x720 noise frame"


def crowd_maps(people: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stride-8 maps (19, 32, 57) / (38, 32, 57) of `people` random stick figures in a 456x256 input."""
    rng = np.random.default_rng(seed)
    return render_maps(random_people(rng, people, (256, 456)), (32, 57))


def make_backends(model: LightweightOpenPose) -> list[tuple[str, object]]:
    backends: list[tuple[str, object]] = [
        ("torch fp32", TorchBackend(model, "cpu")),
        ("torch fp32 BN-folded channels_last", TorchBackend(model, "cpu", fold_bn=True, channels_last=True)),
    ]
    if cpu_supports_bf16():
        backends.append(("torch bf16 autocast", TorchBackend(model, "cpu", "bf16")))
    backends.append(("onnxruntime fp32", OnnxRuntimeBackend(model)))
    backends.append(("openvino fp32", OpenVINOBackend(model, precision="fp32")))
    if cpu_supports_bf16():
        backends.append(("openvino bf16", OpenVINOBackend(model, precision="bf16")))
    return backends


def decode_ms(heatmaps: np.ndarray, pafs: np.ndarray, method: str, repeat: int) -> tuple[float, int]:
    """Median ms of upsample x4 + decode + Pose objects; and the pose count."""

    def run() -> int:
        return len(entries_to_poses(*decode_maps(heatmaps, pafs, 4, method=method), 2.0))

    return time_ms(run, repeat), run()


def batch_throughput(backend: Callable[[np.ndarray], object], batch: np.ndarray, repeat: int) -> tuple[float, float]:
    """Images/s of the network: one image per call vs the whole (N, 3, H, W) batch in one call."""
    runs = max(3, repeat // 5)
    singles = time_ms(lambda: [backend(batch[i : i + 1]) for i in range(len(batch))], runs, warmup=1)
    whole = time_ms(lambda: backend(batch), runs, warmup=1)
    return len(batch) * 1e3 / singles, len(batch) * 1e3 / whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument(
        "--stat", choices=tuple(STATISTICS), default="median", help="median (default) or min: best, for busy machines"
    )
    args = parser.parse_args()
    global statistic
    statistic = STATISTICS[args.stat]
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    repeat = args.repeat

    print("## Machine\n")
    print(f"- CPU: {cpu_model()}, {os.cpu_count()} cores visible; torch threads {torch.get_num_threads()}")
    print(f"- native bf16 (AVX512-BF16/AMX): {cpu_supports_bf16()}; no GPU in this run")
    print(f"- torch {torch.__version__}, numpy {np.__version__}, OpenCV {cv2.__version__}")
    print(f"- timings: {args.stat} of --repeat {repeat} runs")
    print(f"- load average at start (other processes share these cores): {os.getloadavg()[0]:.2f}")
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    mm_ms = time_ms(lambda: torch.mm(a, b), max(5, repeat // 2))
    matmul_gflops = 2 * 2048**3 / (mm_ms / 1e3) / 1e9
    print(f"- fp32 matmul (torch.mm 2048x2048): {mm_ms:.1f} ms = {matmul_gflops:.0f} GFLOP/s\n")

    model, weights = load_network()
    frame, frame_name = load_frame()
    inputs, transform = prepare_input(frame, 256)
    print(
        f"## End to end: {frame_name} ({frame.shape[1]}x{frame.shape[0]}) -> input {inputs.shape[2]}x{inputs.shape[1]}"
    )
    print(f"Network: {weights}. Decode of these maps (thousands of noise peaks) is the worst case; 'e2e, 5-person")
    print("decode' adds instead the measured decode of a synthetic 5-person crowd of the same map size, what a")
    print("trained network's maps of a few people cost.\n")
    crowd5 = crowd_maps(5, seed=5)
    crowd5_ms, _ = decode_ms(*crowd5, "fast", repeat)
    prep_ms = time_ms(lambda: prepare_input(frame, 256), repeat)
    print(
        "| backend | preprocess ms | network ms | network GFLOP/s | decode ms (these maps) | e2e ms | e2e fps "
        "| e2e ms, 5-person decode | fps |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    batch_rows = []
    batch = np.stack([inputs] * 8)
    for name, backend in make_backends(model):
        est = PoseEstimator(backend, height=256)  # type: ignore[arg-type]
        net_ms = time_ms(lambda backend=backend: backend(inputs[None]), repeat)
        heatmaps, pafs, _ = est.infer_maps(frame)
        dec_ms = time_ms(lambda est=est, h=heatmaps, p=pafs: est.decode(h, p, transform), repeat)
        e2e_ms = time_ms(lambda est=est: est(frame), repeat)
        composed = prep_ms + net_ms + crowd5_ms
        print(
            f"| {name} | {prep_ms:.1f} | {net_ms:.1f} | {NETWORK_GFLOP / net_ms * 1e3:.0f} | {dec_ms:.1f} "
            f"| {e2e_ms:.1f} | {1e3 / e2e_ms:.1f} | {composed:.1f} | {1e3 / composed:.1f} |"
        )
        batch_rows.append((name, *batch_throughput(backend, batch, repeat)))
    whole = TorchBackend(model, "cpu", per_image=False)
    batch_rows.append(("torch fp32, whole batches (per_image=False)", *batch_throughput(whole, batch, repeat)))

    print("\n## Decoder: reference-exact loops vs vectorised (identical output), upsampling included\n")
    print("| maps | poses | reference ms | fast ms | speed-up |")
    print("|---|---|---|---|---|")
    up_ms = time_ms(lambda: (upsample_maps(crowd5[0], 4), upsample_maps(crowd5[1], 4)), repeat)
    cases = [(f"synthetic crowd, {n} people", crowd_maps(n, seed=n)) for n in (1, 5, 20)]
    hm, paf, _ = PoseEstimator(TorchBackend(model, "cpu")).infer_maps(frame)
    cases.append(("random-weight network on the frame", (hm, paf)))
    for label, (h, p) in cases:
        ref_ms, poses = decode_ms(h, p, "reference", max(3, repeat // 3))
        fast_ms, fast_poses = decode_ms(h, p, "fast", repeat)
        if fast_poses != poses:
            raise RuntimeError(f"{label}: fast decoder found {fast_poses} poses, reference {poses}")
        print(f"| {label} | {poses} | {ref_ms:.1f} | {fast_ms:.2f} | {ref_ms / fast_ms:.1f}x |")
    print(f"\nOf which cubic x4 upsampling of the 57 channels (cv2, both decoders): {up_ms:.2f} ms.\n")

    print("## Batch throughput of the network: 8 inputs of 456x256, images/s\n")
    print("Batches of one network-input size go through one call (`est(images, batch_size=8)`); torch on CPU")
    print("runs them one image at a time by default, so that batched results equal single-image results.\n")
    print("| backend | batch_size=1 | batch_size=8 |")
    print("|---|---|---|")
    for name, one_fps, eight_fps in batch_rows:
        print(f"| {name} | {one_fps:.1f} | {eight_fps:.1f} |")


if __name__ == "__main__":
    main()
