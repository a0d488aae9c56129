"""Speed of lightpose on this machine: preprocess, network, decode, end to end, per backend and precision.

Not a test. Run from the repository root (a few minutes on 2 cores):

    .venv/bin/python benchmarks/bench.py [--repeat 15] [--threads N] [--stat median|min] [--compile] [--int8-variants]

Prints markdown tables: the machine, the fp32 matmul roofline beside the network's achieved GFLOP/s; end to end
on a 1280x720 photo (network input 456x256) with the trained fixture model's real maps, per backend and precision
(INT8 included, quantized at the start), each beside OpenVINO bf16 of the same run; OpenVINO settings for this
machine's cores; input preparation; decoder timings (reference-exact loops vs the vectorised decoder) on synthetic
crowds; batch throughput; and the agreement of every fast path's poses with torch fp32 poses on the 40 shared
photos (mean OKS, same pose count). Timings are medians by default; the machine may be shared, so compare numbers
within one run; `--stat min` reports the best run, less sensitive to other processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from lightpose import PoseTracker, draw_poses
from lightpose.agreement import agreement
from lightpose.backends import Backend, OnnxRuntimeBackend, OpenVINOBackend, TorchBackend, cpu_supports_bf16
from lightpose.decode import decode_maps, entries_to_poses, upsample_maps
from lightpose.estimator import PoseEstimator
from lightpose.io import list_images, read_image
from lightpose.model import LightweightOpenPose
from lightpose.preprocess import PIXEL_MEAN, PIXEL_SCALE, prepare_input
from lightpose.training.synthetic import random_people, render_maps

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIGHTPOSE_SHARED", ROOT.parent / "shared"))
PEOPLE = SHARED / "data" / "people"
FRAME = PEOPLE / "sports2d_demo_f000.jpg"
FIXTURE = SHARED / "data" / "fixture" / "people_fixture.pth"
RANDOM_CHECKPOINT = SHARED / "reference" / "golden" / "checkpoint_random_3stages.pth"
NETWORK_GFLOP = 15.3  # per 456x256 frame (multiply-adds counted as 2 FLOPs)
BASELINE = "openvino bf16"  # the row every end-to-end time is compared with (INT8 goal: <= 0.6x)

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


def load_networks() -> tuple[LightweightOpenPose, LightweightOpenPose]:
    """(the trained fixture model, the published-layout random-weight checkpoint); needs ../shared."""
    from lightpose.weights import load_model

    for path in (FIXTURE, RANDOM_CHECKPOINT, FRAME):
        if not path.is_file():
            raise SystemExit(f"needs {path} (set LIGHTPOSE_SHARED to the shared data folder)")
    return load_model(FIXTURE)[0], load_model(RANDOM_CHECKPOINT)[0]


def crowd_maps(people: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stride-8 maps (19, 32, 57) / (38, 32, 57) of `people` random stick figures in a 456x256 input."""
    rng = np.random.default_rng(seed)
    return render_maps(random_people(rng, people, (256, 456)), (32, 57))


def quantized_fixture(model: LightweightOpenPose, folder: Path) -> tuple[Path, list[Path], float]:
    """The fixture model quantized to INT8 (NNCF, the `lightpose quantize` defaults) on 3/4 of the shared photos:
    (the .xml, the held-out photos, seconds taken)."""
    import nncf

    from lightpose.export import save_openvino
    from lightpose.quantize import calibration_inputs, quantize, split_folder

    nncf.set_log_level(logging.ERROR)
    calibration, held_out = split_folder(PEOPLE)
    start = time.perf_counter()
    path = folder / "fixture_int8.xml"
    save_openvino(quantize(model, calibration_inputs(calibration)), path)
    return path, held_out, time.perf_counter() - start


def make_backends(model: LightweightOpenPose, int8: Path) -> list[tuple[str, Backend]]:
    backends: list[tuple[str, Backend]] = [
        ("torch fp32 (bit-exact)", TorchBackend(model, "cpu")),
        ("torch fp32 BN-folded", TorchBackend(model, "cpu", fold_bn=True)),
        ("torch fp32 BN-folded channels_last", TorchBackend(model, "cpu", fold_bn=True, channels_last=True)),
    ]
    if cpu_supports_bf16():
        backends.append(("torch bf16 autocast", TorchBackend(model, "cpu", "bf16")))
    backends.append(("onnxruntime fp32", OnnxRuntimeBackend(model)))
    backends.append(("openvino fp32 (auto)", OpenVINOBackend(model, precision="fp32")))
    if cpu_supports_bf16():
        backends.append((BASELINE, OpenVINOBackend(model, precision="bf16")))
    backends.append(("openvino int8", OpenVINOBackend(int8)))
    if cpu_supports_bf16():
        backends.append(("openvino int8 + bf16", OpenVINOBackend(int8, precision="bf16")))
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


def end_to_end(backends: list[tuple[str, Backend]], frame: np.ndarray, repeat: int) -> None:
    inputs, transform = prepare_input(frame, 256)
    prep_ms = time_ms(lambda: prepare_input(frame, 256), repeat)
    rows = []
    for name, backend in backends:
        est = PoseEstimator(backend, height=256)
        net_ms = time_ms(lambda backend=backend: backend(inputs[None]), repeat)
        heatmaps, pafs = backend(inputs[None])
        dec_ms = time_ms(lambda est=est, h=heatmaps[0], p=pafs[0]: est.decode(h, p, transform), repeat)
        e2e_ms = time_ms(lambda est=est: est(frame), repeat)
        rows.append((name, backend.description, net_ms, dec_ms, e2e_ms, len(est(frame))))
    baseline = {name: (net, e2e) for name, _, net, _, e2e, _ in rows}.get(BASELINE)
    print("| backend | runs as | network ms | network GFLOP/s | decode ms | e2e ms | e2e fps | poses "
          f"| network vs {BASELINE} | e2e vs {BASELINE} |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, description, net_ms, dec_ms, e2e_ms, poses in rows:
        ratios = f"{net_ms / baseline[0]:.2f}x | {e2e_ms / baseline[1]:.2f}x" if baseline else "- | -"
        print(
            f"| {name} | {description} | {net_ms:.1f} | {NETWORK_GFLOP / net_ms * 1e3:.0f} | {dec_ms:.1f} "
            f"| {e2e_ms:.1f} | {1e3 / e2e_ms:.1f} | {poses} | {ratios} |"
        )
    print(f"\nPreprocess (resize, normalise, pad; in every e2e time): {prep_ms:.1f} ms.\n")


def openvino_settings(model: LightweightOpenPose, int8: Path, frame: np.ndarray, repeat: int) -> None:
    """Network ms of OpenVINO fp32, bf16 and INT8 under performance hints, streams and thread counts."""
    inputs = prepare_input(frame, 256)[0][None]
    cores = os.cpu_count() or 1
    settings: list[tuple[str, dict[str, object]]] = [
        ("PERFORMANCE_HINT LATENCY (default)", {}),
        ("PERFORMANCE_HINT THROUGHPUT", {"PERFORMANCE_HINT": "THROUGHPUT"}),
        (f"LATENCY, INFERENCE_NUM_THREADS {cores}, NUM_STREAMS 1", {"INFERENCE_NUM_THREADS": cores, "NUM_STREAMS": 1}),
        ("LATENCY, INFERENCE_NUM_THREADS 1", {"INFERENCE_NUM_THREADS": 1}),
        ("LATENCY, ENABLE_CPU_PINNING NO", {"ENABLE_CPU_PINNING": False}),
    ]
    models: list[tuple[str, object, str]] = [("fp32", model, "fp32"), ("int8", int8, "fp32")]
    if cpu_supports_bf16():
        models.insert(1, ("bf16", model, "bf16"))
    onnx = {}
    from lightpose.export import onnx_model_bytes

    onnx_path = Path(tempfile.mkdtemp()) / "fixture.onnx"
    onnx_path.write_bytes(onnx_model_bytes(model))
    onnx["model"] = onnx_path
    print("| setting | " + " | ".join(f"{name} ms" for name, _, _ in models) + " |")
    print("|---|" + "---|" * len(models))
    for label, config in settings:
        cells = []
        for _, source, precision in models:
            path = onnx["model"] if source is model else source
            backend = OpenVINOBackend(path, precision=precision, config=config)  # type: ignore[arg-type]
            cells.append(f"{time_ms(lambda backend=backend: backend(inputs), repeat):.1f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()


def prepare_uint8_pad(image: np.ndarray, height: int = 256) -> np.ndarray:
    """The same input as prepare_input (default path): resize, pad the uint8 image with 128 (normalises to
    exactly 0), then normalise and transpose in one pass."""
    h, w = image.shape[:2]
    scale = height / h
    resized = cv2.resize(image, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    rh, rw = resized.shape[:2]
    target_h, target_w = -(-height // 8) * 8, -(-max(rw, height) // 8) * 8
    top, left = (target_h - min(height, rh)) // 2, (target_w - rw) // 2
    padded = cv2.copyMakeBorder(
        resized, top, target_h - rh - top, left, target_w - rw - left, cv2.BORDER_CONSTANT, value=(128, 128, 128)
    )
    out = np.empty((3, target_h, target_w), np.float32)
    np.subtract(padded.transpose(2, 0, 1), PIXEL_MEAN, out=out, dtype=np.float32)
    out *= PIXEL_SCALE
    return out


def input_preparation(frame: np.ndarray, repeat: int) -> None:
    same = np.array_equal(prepare_input(frame, 256)[0], prepare_uint8_pad(frame))
    current_ms = time_ms(lambda: prepare_input(frame, 256), repeat)
    fused_ms = time_ms(lambda: prepare_uint8_pad(frame), repeat)
    print("| 1280x720 -> 456x256 input | ms | same input |")
    print("|---|---|---|")
    print(f"| prepare_input (resize uint8, normalise, pad float, transpose) | {current_ms:.2f} | yes |")
    print(f"| resize uint8, pad uint8 with 128, normalise + transpose in one pass | {fused_ms:.2f} | {same} |\n")


def torch_compile_row(model: LightweightOpenPose, frame: np.ndarray, repeat: int) -> None:
    inputs = torch.from_numpy(prepare_input(frame, 256)[0][None]).contiguous(memory_format=torch.channels_last)
    eager = TorchBackend(model, "cpu", fold_bn=True, channels_last=True).model
    start = time.perf_counter()
    compiled = torch.compile(eager)
    with torch.inference_mode():
        compiled(inputs)
        compile_s = time.perf_counter() - start
        eager_ms = time_ms(lambda: eager(inputs), repeat)
        compiled_ms = time_ms(lambda: compiled(inputs), repeat)
        worst = max(float((a - b).abs().max()) for a, b in zip(eager(inputs)[-2:], compiled(inputs)[-2:]))
    print("| torch fp32 BN-folded channels_last | network ms |")
    print("|---|---|")
    print(f"| eager | {eager_ms:.1f} |")
    print(f"| torch.compile (inductor; {compile_s:.0f} s to compile; max abs diff {worst:.1e}) | {compiled_ms:.1f} |\n")


def int8_variants(model: LightweightOpenPose, frame: np.ndarray, held_out: list[Path], repeat: int) -> None:
    """What NNCF offers, each on the fixture model: quantize time, network ms, agreement on the held-out photos."""
    from lightpose.quantize import QuantizeOptions, ValidationSet, calibration_inputs, quantize

    calibration = calibration_inputs([p for p in list_images([PEOPLE]) if p not in held_out])
    validation = ValidationSet(model, held_out)
    inputs = prepare_input(frame, 256)[0][None]
    variants = [
        ("mixed, fast bias correction, all layers int8", QuantizeOptions(keep_edges_float=False)),
        ("performance preset, all layers int8", QuantizeOptions(preset="performance", keep_edges_float=False)),
        (
            "mixed, full bias correction, all layers int8",
            QuantizeOptions(keep_edges_float=False, bias_correction="full"),
        ),
        ("mixed, first conv and head outputs float (default)", QuantizeOptions()),
        ("performance preset, first conv and head outputs float", QuantizeOptions(preset="performance")),
    ]
    bf16 = OpenVINOBackend(model, precision="bf16" if cpu_supports_bf16() else "fp32")
    bf16_ms = time_ms(lambda: bf16(inputs), repeat)
    print(f"Calibrated on {len(calibration)} photos; agreement with torch fp32 on the {len(held_out)} held-out ones.")
    print(f"OpenVINO {bf16.precision} network in the same run: {bf16_ms:.1f} ms.\n")
    print("| variant | quantize s | network ms | vs bf16 | mean OKS | OKS >= 0.9 | matched / fp32 poses | same count |")
    print("|---|---|---|---|---|---|---|---|")
    for label, options in variants:
        start = time.perf_counter()
        backend = OpenVINOBackend(quantize(model, calibration, options))
        seconds = time.perf_counter() - start
        net_ms = time_ms(lambda backend=backend: backend(inputs), repeat)
        a = validation.compare(backend)
        print(
            f"| {label} | {seconds:.0f} | {net_ms:.1f} | {net_ms / bf16_ms:.2f}x | {a.mean_oks:.3f} | "
            f"{a.share_good:.0%} | {a.matched} / {a.reference_poses} | {a.same_count}/{a.images} |"
        )
    print()


def agreement_table(backends: list[tuple[str, Backend]], held_out: list[Path]) -> None:
    """Mean OKS etc. of each backend's poses to torch fp32 poses on the shared photos (fixture model)."""
    paths = list_images([PEOPLE])
    images = [read_image(p) for p in paths]
    reference_est = PoseEstimator(backends[0][1], height=256)
    reference = [list(reference_est(image)) for image in images]
    held = [i for i, p in enumerate(paths) if p in held_out]
    print(f"{len(images)} photos, {sum(map(len, reference))} torch fp32 poses. OKS as in lightpose.agreement "
          "(unmatched fp32 poses count 0).\n")  # fmt: skip
    print("| backend | images | mean OKS | OKS >= 0.9 | matched / fp32 poses (found) | same pose count "
          "| keypoints only fp32 / only other |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, backend in backends[1:]:
        est = PoseEstimator(backend, height=256)
        poses = [list(est(image)) for image in images]
        subsets = [("all", list(range(len(images))))]
        if "int8" in name:
            subsets.append(("held out", held))
        for label, indices in subsets:
            a = agreement([reference[i] for i in indices], [poses[i] for i in indices])
            print(
                f"| {name} | {label} {a.images} | {a.mean_oks:.3f} | {a.share_good:.0%} | {a.matched} / "
                f"{a.reference_poses} ({a.other_poses}) | {a.same_count}/{a.images} | {a.only_reference} / "
                f"{a.only_other} |"
            )
    print()


def make_video(path: Path, frames: int = 60) -> Path:
    """A 1280x720 MJPG video cycling through the shared sports2d frames (same person moving)."""
    photos = sorted(PEOPLE.glob("sports2d_demo_f*.jpg"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (1280, 720))
    for i in range(frames):
        writer.write(cv2.resize(read_image(photos[i % len(photos)]), (1280, 720)))
    writer.release()
    return path


def stream_fps(backends: list[tuple[str, Backend]], video: Path, repeat: int) -> None:
    """Frames/s of `est.stream(video)` (read, prepare, network, decode, track, draw overlapped) beside a serial
    loop (read a frame, `est(frame)`, track, draw) and the network alone (1000 / network ms)."""
    print("| backend | network alone fps | serial loop fps | est.stream fps | stream / network alone |")
    print("|---|---|---|---|---|")
    inputs = prepare_input(read_image(FRAME), 256)[0][None]
    for name, backend in backends:
        if not name.startswith(("torch fp32 (", "openvino")):
            continue
        est = PoseEstimator(backend, height=256)
        net_ms = time_ms(lambda backend=backend: backend(inputs), repeat)

        def serial(est: PoseEstimator = est) -> int:
            capture, tracker, count = cv2.VideoCapture(str(video)), PoseTracker(), 0
            while True:
                ok, image = capture.read()
                if not ok:
                    return count
                draw_poses(image, tracker.update(list(est(image))))
                count += 1

        def pipelined(est: PoseEstimator = est) -> int:
            return sum(1 for result in est.stream(video) if result.plot() is not None)

        frames = pipelined()
        serial_s = time_ms(serial, 2, warmup=0) / 1e3
        stream_s = time_ms(pipelined, 2, warmup=0) / 1e3
        alone = 1e3 / net_ms
        print(f"| {name} | {alone:.1f} | {frames / serial_s:.1f} | {frames / stream_s:.1f} | "
              f"{frames / stream_s / alone:.2f} |")  # fmt: skip
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument(
        "--stat", choices=tuple(STATISTICS), default="median", help="median (default) or min: best, for busy machines"
    )
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes to compile)")
    parser.add_argument("--int8-variants", action="store_true", help="also compare NNCF options (a minute)")
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
    print(f"- fp32 matmul (torch.mm 2048x2048): {mm_ms:.1f} ms = {matmul_gflops:.0f} GFLOP/s")

    fixture, random_net = load_networks()
    frame = read_image(FRAME)
    folder = Path(tempfile.mkdtemp(prefix="lightpose-bench-"))
    int8, held_out, quantize_s = quantized_fixture(fixture, folder)
    print(f"- INT8: the fixture model quantized by NNCF (lightpose quantize defaults) in {quantize_s:.0f} s\n")
    backends = make_backends(fixture, int8)

    print(f"## End to end: {FRAME.name} ({frame.shape[1]}x{frame.shape[0]}) -> input 456x256, fixture model\n")
    print("The trained fixture model's real maps (a few people): e2e = `est(frame)`: preprocess, network, decode.\n")
    end_to_end(backends, frame, repeat)

    print("## Pipelined stream: a 1280x720 video (60 frames), fixture model, tracking and drawing included\n")
    stream_fps(backends, make_video(folder / "hd.avi"), repeat)

    print(f"## OpenVINO settings on {os.cpu_count()} cores: network ms, fixture model\n")
    openvino_settings(fixture, int8, frame, repeat)

    print("## Input preparation\n")
    input_preparation(frame, repeat)

    if args.int8_variants:
        print("## INT8 variants: what NNCF offers, fixture model\n")
        int8_variants(fixture, frame, held_out, repeat)

    if args.compile:
        print("## torch.compile on CPU\n")
        torch_compile_row(fixture, frame, repeat)

    print("## Decoder: reference-exact loops vs vectorised (identical output), upsampling included\n")
    print("| maps | poses | reference ms | fast ms | speed-up |")
    print("|---|---|---|---|---|")
    crowd5 = crowd_maps(5, seed=5)
    up_ms = time_ms(lambda: (upsample_maps(crowd5[0], 4), upsample_maps(crowd5[1], 4)), repeat)
    cases = [(f"synthetic crowd, {n} people", crowd_maps(n, seed=n)) for n in (1, 5, 20)]
    inputs = prepare_input(frame, 256)[0][None]
    fixture_maps = TorchBackend(fixture, "cpu")(inputs)
    cases.append(("fixture model on the frame", (fixture_maps[0][0], fixture_maps[1][0])))
    random_maps = TorchBackend(random_net, "cpu")(inputs)
    cases.append(("random-weight network on the frame (noise peaks)", (random_maps[0][0], random_maps[1][0])))
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
    batch = np.repeat(inputs, 8, axis=0)
    rows = [(name, backend) for name, backend in backends if name.startswith(("torch fp32 (", "openvino"))]
    rows.append(("torch fp32, whole batches (per_image=False)", TorchBackend(fixture, "cpu", per_image=False)))
    for name, backend in rows:
        one_fps, eight_fps = batch_throughput(backend, batch, repeat)
        print(f"| {name} | {one_fps:.1f} | {eight_fps:.1f} |")

    print("\n## Agreement with torch fp32 poses: the shared photos, fixture model\n")
    agreement_table(backends, held_out)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
