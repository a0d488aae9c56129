"""The scripts in examples/ run as documented."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from lightpose import LightweightOpenPose

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_single_image_example_writes_an_annotated_image(tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / "net.pth"
    torch.save({"state_dict": LightweightOpenPose().state_dict()}, checkpoint)
    image_path = tmp_path / "people.jpg"
    cv2.imwrite(str(image_path), np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8))
    output = tmp_path / "out.jpg"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "single_image.py"),
            str(image_path),
            str(output),
            "--checkpoint",
            str(checkpoint),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "people" in result.stdout and f"wrote {output}" in result.stdout
    written = cv2.imread(str(output))
    assert written is not None and written.shape == (90, 120, 3)
