"""A tiny COCO keypoints dataset of stick-figure people drawn with OpenCV: images + person_keypoints.json.

Each person is a coloured skeleton (one colour per limb, one per joint, so left and right differ) on a plain grey
background, which gives a network something learnable in a few iterations.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

# A standing person facing the camera (its left on the image's right), COCO-17 order, (x, y) in units of its
# height, origin at the top-centre.
COCO_TEMPLATE = np.array(
    [
        [0.0, 0.09], [0.045, 0.055], [-0.045, 0.055], [0.09, 0.08], [-0.09, 0.08], [0.13, 0.22], [-0.13, 0.22],
        [0.2, 0.38], [-0.2, 0.38], [0.22, 0.53], [-0.22, 0.53], [0.08, 0.55], [-0.08, 0.55], [0.1, 0.75],
        [-0.1, 0.75], [0.1, 0.95], [-0.1, 0.95],
    ],
    dtype=np.float64,
)  # fmt: skip
COCO_BONES = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (6, 12), (11, 12),
    (11, 13), (13, 15), (12, 14), (14, 16),
)  # fmt: skip
COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)  # fmt: skip
BACKGROUND = 128


def _colour(index: int, count: int) -> tuple[int, int, int]:
    hsv = np.array([[[int(180 * index / count), 255, 230]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].tolist()
    return int(b), int(g), int(r)


def draw_person(image: np.ndarray, keypoints: np.ndarray) -> None:
    """Draw COCO-17 keypoints (17, 2) x, y in image pixels onto BGR `image` in place."""
    height = keypoints[:, 1].max() - keypoints[:, 1].min()
    thickness = max(int(round(height / 25)), 1)
    for i, (a, b) in enumerate(COCO_BONES):
        pa, pb = (tuple(int(round(v)) for v in keypoints[k]) for k in (a, b))
        cv2.line(image, pa, pb, _colour(i, len(COCO_BONES)), thickness, cv2.LINE_AA)
    for k, (x, y) in enumerate(keypoints.tolist()):
        cv2.circle(image, (int(round(x)), int(round(y))), thickness + 1, _colour(k, 17)[::-1], -1, cv2.LINE_AA)


def coco_annotation(keypoints: np.ndarray, image_id: int, annotation_id: int) -> dict:
    """A COCO person annotation with all 17 keypoints visible; bbox/area from the keypoints (+ a margin)."""
    x0, y0 = keypoints.min(axis=0) - 4
    x1, y1 = keypoints.max(axis=0) + 4
    flat = np.concatenate([keypoints, np.full((17, 1), 2.0)], axis=1).ravel()
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "num_keypoints": 17,
        "keypoints": [float(v) for v in flat],
        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        "area": float((x1 - x0) * (y1 - y0)),
        "segmentation": [],
    }


def make_stick_dataset(
    folder: Path, *, num_images: int, size: tuple[int, int], people: int = 2, seed: int = 0
) -> tuple[Path, Path]:
    """Write `num_images` (height, width) = `size` images of `people` side-by-side stick figures and their COCO
    labels into `folder`; returns (labels path, images folder). Person heights are 70-85% of the image height."""
    rng = np.random.default_rng(seed)
    images_folder = folder / "images"
    images_folder.mkdir(parents=True, exist_ok=True)
    height, width = size
    category = {"id": 1, "name": "person", "keypoints": list(COCO_KEYPOINT_NAMES)}
    coco: dict = {"images": [], "annotations": [], "categories": [category]}
    for image_id in range(1, num_images + 1):
        image = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
        name = f"{image_id:04d}.png"
        for p in range(people):
            person_height = height * rng.uniform(0.7, 0.85)
            centre_x = width * (p + 0.5) / people + rng.uniform(-0.04, 0.04) * width
            top = rng.uniform(0.03, 0.97 * height - person_height)
            jitter = rng.normal(0, 0.01, COCO_TEMPLATE.shape)
            keypoints = (COCO_TEMPLATE + jitter) * person_height + np.array([centre_x, top])
            draw_person(image, keypoints)
            coco["annotations"].append(coco_annotation(keypoints, image_id, len(coco["annotations"]) + 1))
        cv2.imwrite(str(images_folder / name), image)
        coco["images"].append({"id": image_id, "file_name": name, "width": width, "height": height})
    labels = folder / "person_keypoints.json"
    labels.write_text(json.dumps(coco), encoding="utf-8")
    return labels, images_folder


def make_prepared_stick_dataset(
    folder: Path, *, num_images: int, size: tuple[int, int], people: int = 2, seed: int = 0
) -> tuple[Path, Path]:
    """`make_stick_dataset` plus its prepared training labels (net input size = the image height); returns
    (prepared labels path, images folder)."""
    from lightpose.training.labels import prepare_coco_labels, save_prepared_labels

    labels, images = make_stick_dataset(folder, num_images=num_images, size=size, people=people, seed=seed)
    prepared = folder / "prepared.json"
    save_prepared_labels(prepare_coco_labels(labels, net_input_size=size[0]), prepared)
    return prepared, images
