"""How far each backend/precision is from torch fp32 on the real photos, and whether the decoded poses match.

Not a test. Run from the repository root (about a minute per backend on 2 cores):

    .venv/bin/python benchmarks/backend_agreement.py [--images DIR] [--limit N] [--checkpoint PATH]

Uses the published-layout random-weight checkpoint of ../shared/reference/golden by default (random weights: the
"poses" are noise with hundreds of candidates per image, a harsh test: a 1e-5 change can flip a near-tied peak);
`--checkpoint ../shared/data/fixture/people_fixture.pth` shows a trained model's real poses (benchmarks/bench.py
reports their OKS agreement). Prints one markdown row per backend: max abs difference of heatmaps and PAFs vs
torch fp32 (absolute and relative to the largest |torch output|), on how many images the decoded poses have the
same keypoints at the same positions or at least the same count, and the largest pose-score difference where the
keypoints match.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from lightpose.backends import OnnxRuntimeBackend, OpenVINOBackend, TorchBackend, cpu_supports_bf16
from lightpose.estimator import PoseEstimator
from lightpose.io import read_image
from lightpose.preprocess import prepare_input
from lightpose.weights import load_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIGHTPOSE_SHARED", ROOT.parent / "shared"))


def same_keypoints(a: list, b: list) -> bool:
    """Same number of poses, and the same keypoints found at the same positions (scores may differ)."""
    return len(a) == len(b) and all(np.array_equal(p.xy, q.xy, equal_nan=True) for p, q in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "people", help="folder of .jpg images")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images (0: all)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=SHARED / "reference" / "golden" / "checkpoint_random_3stages.pth",
        help="checkpoint to compare backends with (default: the random-weight one)",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(os.cpu_count() or 1)
    checkpoint = args.checkpoint
    if not checkpoint.is_file() or not args.images.is_dir():
        raise SystemExit(f"needs {checkpoint} and {args.images} (set LIGHTPOSE_SHARED)")
    model = load_model(checkpoint)[0]
    paths = sorted(args.images.glob("*.jpg"))[: args.limit or None]
    images = [read_image(p) for p in paths]

    backends = [
        ("torch fp32 BN-folded", TorchBackend(model, "cpu", fold_bn=True)),
        ("torch fp32 BN-folded channels_last", TorchBackend(model, "cpu", fold_bn=True, channels_last=True)),
        ("onnxruntime fp32", OnnxRuntimeBackend(model)),
        ("openvino fp32", OpenVINOBackend(model, precision="fp32")),
    ]
    if cpu_supports_bf16():
        backends.insert(1, ("torch bf16 autocast", TorchBackend(model, "cpu", "bf16")))
        backends.append(("openvino bf16", OpenVINOBackend(model, precision="bf16")))

    reference = PoseEstimator(TorchBackend(model, "cpu"))

    def infer_maps(est: PoseEstimator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, object]:
        inputs, transform = prepare_input(image, est.height)
        heatmaps, pafs = est.run_network(inputs[None])
        return heatmaps[0], pafs[0], transform

    ref_maps = [infer_maps(reference, image) for image in images]
    ref_poses = [reference.decode(*maps) for maps in ref_maps]
    scale = max(max(float(np.abs(h).max()), float(np.abs(p).max())) for h, p, _ in ref_maps)
    print(f"{len(images)} images from {args.images}; torch fp32 output range: max |value| = {scale:.1f}\n")
    print(
        "| backend | max abs diff heatmaps | max abs diff PAFs | relative to range | same keypoints | same count "
        "| max pose-score diff |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, backend in backends:
        est = PoseEstimator(backend)
        worst_h = worst_p = 0.0
        identical = same_count = 0
        score_diff = 0.0
        for image, (h_ref, p_ref, _), poses_ref in zip(images, ref_maps, ref_poses):
            heatmaps, pafs, transform = infer_maps(est, image)
            worst_h = max(worst_h, float(np.abs(heatmaps - h_ref).max()))
            worst_p = max(worst_p, float(np.abs(pafs - p_ref).max()))
            poses = est.decode(heatmaps, pafs, transform)  # type: ignore[arg-type]
            if same_keypoints(poses, poses_ref):
                identical += 1
                score_diff = max([score_diff] + [abs(p.score - q.score) for p, q in zip(poses, poses_ref)])
            same_count += len(poses) == len(poses_ref)
        print(
            f"| {name} | {worst_h:.2e} | {worst_p:.2e} | {max(worst_h, worst_p) / scale:.1e} "
            f"| {identical}/{len(images)} | {same_count}/{len(images)} | {f'{score_diff:.1e}' if identical else '-'} |"
        )


if __name__ == "__main__":
    main()
