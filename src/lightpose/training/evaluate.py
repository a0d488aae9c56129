"""COCO keypoint evaluation: the reference val.py pipeline (single or multi-scale), optional flip test, COCOeval.

Maps are computed at the original image resolution, as val.py does: normalise, resize (INTER_CUBIC) to height
368 x scale, pad to stride 8, run the network, upsample the last-stage maps x8 (INTER_CUBIC), crop the padding,
resize to the image size (INTER_CUBIC) and average over scales; then decode and convert to COCO-17 results.
pycocotools (the ``[train]`` extra) is imported only where scoring needs it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from lightpose.decode import decode_upsampled, entries_to_poses
from lightpose.estimator import PoseEstimator, read_image
from lightpose.skeleton import STRIDE
from lightpose.preprocess import check_image, prepare_input
from lightpose.skeleton import NUM_HEATMAPS, NUM_PAFS
from lightpose.training.flip import mirror_maps
from lightpose.training.labels import make_val_subset, write_json_atomic

BASE_HEIGHT = 368
MULTISCALE_SCALES: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
_PERSON_CATEGORY = 1
_COCO_ANNOTATION_FIELDS = ("image_id", "keypoints", "bbox", "area")


def _import_pycocotools() -> tuple[Any, Any]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:
        raise ImportError(
            'COCO evaluation needs pycocotools: pip install "lightpose[train]" (or pip install pycocotools)'
        ) from error
    return COCO, COCOeval


def _maps_at_scale(
    estimator: PoseEstimator, image: np.ndarray, scale: float, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """val.py's maps for one scale: (h, w, 19) heatmaps and (h, w, 38) PAFs float32 at image resolution."""
    h, w = image.shape[:2]
    inputs, transform = prepare_input(
        image, height, interpolation=cv2.INTER_CUBIC, scale=scale * height / h, normalize_first=True
    )
    heatmaps, pafs = estimator.backend(inputs[None])
    top, left, bottom, right = transform.pad
    result = []
    for maps in (heatmaps[0], pafs[0]):
        up = cv2.resize(maps.transpose(1, 2, 0), (0, 0), fx=STRIDE, fy=STRIDE, interpolation=cv2.INTER_CUBIC)
        up = up[top : up.shape[0] - bottom, left : up.shape[1] - right]
        result.append(cv2.resize(up, (w, h), interpolation=cv2.INTER_CUBIC))
    return result[0], result[1]


def infer_val_maps(
    estimator: PoseEstimator,
    image: np.ndarray,
    *,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    height: int = BASE_HEIGHT,
) -> tuple[np.ndarray, np.ndarray]:
    """Scale-averaged maps of a BGR uint8 (h, w, 3) image at its own resolution, as the reference val.py.

    Returns heatmaps (h, w, 19) and PAFs (h, w, 38), float32, channel-last. `scales` multiply the base network
    input height `height` (val.py: 368). With `flip`, the mirrored image's maps are mapped back
    (`lightpose.training.flip.mirror_maps`) and averaged in as well, scale by scale.
    """
    image = check_image(image)
    if height < STRIDE:
        raise ValueError(f"height must be >= {STRIDE}, got {height}")
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales!r}")
    h, w = image.shape[:2]
    count = len(scales) * (2 if flip else 1)
    avg_heatmaps: np.ndarray = np.zeros((h, w, NUM_HEATMAPS), dtype=np.float32)
    avg_pafs: np.ndarray = np.zeros((h, w, NUM_PAFS), dtype=np.float32)
    mirrored = cv2.flip(image, 1) if flip else None
    for scale in scales:
        heatmaps, pafs = _maps_at_scale(estimator, image, scale, height)
        avg_heatmaps = avg_heatmaps + heatmaps / count
        avg_pafs = avg_pafs + pafs / count
        if mirrored is not None:
            heatmaps, pafs = mirror_maps(*_maps_at_scale(estimator, mirrored, scale, height))
            avg_heatmaps = avg_heatmaps + heatmaps / count
            avg_pafs = avg_pafs + pafs / count
    return avg_heatmaps, avg_pafs


def detections_for_image(heatmaps: np.ndarray, pafs: np.ndarray, image_id: int) -> list[dict[str, Any]]:
    """COCO results records of one image from its image-resolution maps (heatmaps (h, w, 19), PAFs (h, w, 38),
    float32, channel-last, as `infer_val_maps` returns them): decode, keypoints + 0.5, COCO-17 order,
    score = pose score x max(0, keypoint count - 1)."""
    # (C, H, W) views of the channel-last maps: the vectorised decoder works on channel-last data.
    entries, all_keypoints = decode_upsampled(heatmaps.transpose(2, 0, 1), pafs.transpose(2, 0, 1))
    return [pose.to_coco(image_id) for pose in entries_to_poses(entries, all_keypoints)]


def load_keypoint_annotations(labels_path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a COCO person-keypoints annotation file (dict with images, annotations, categories)."""
    path = Path(labels_path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path} (give e.g. person_keypoints_val2017.json)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a JSON file ({error})") from error
    check_keypoint_annotations(data, str(path))
    return data


def check_keypoint_annotations(data: Any, source: str) -> None:
    """Raise ValueError naming `source` unless `data` is a COCO keypoints annotation dict."""
    hint = "expected a COCO keypoints annotation file such as person_keypoints_val2017.json"
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        raise ValueError(f"{source}: no 'images' and 'annotations' lists; {hint}")
    if not data["images"]:
        raise ValueError(f"{source}: holds no images")
    for image in data["images"]:
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise ValueError(f"{source}: every image needs 'id' and 'file_name' ({image!r:.80})")
    categories = data.get("categories")
    if not isinstance(categories, list) or not any(
        isinstance(c, dict) and c.get("id") == _PERSON_CATEGORY and c.get("keypoints") for c in categories
    ):
        raise ValueError(f"{source}: no person category (id 1) with keypoint names in 'categories'; {hint}")
    for annotation in data["annotations"]:
        missing = [k for k in _COCO_ANNOTATION_FIELDS if k not in annotation]
        if missing:
            raise ValueError(f"{source}: annotation {annotation.get('id', '?')} has no {missing}; {hint}")


def _image_paths(images: Iterable[dict[str, Any]], images_folder: Path) -> list[Path]:
    if not images_folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {images_folder}")
    paths = [images_folder / image["file_name"] for image in images]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} image files are missing in {images_folder}, the first: {missing[0].name}"
        )
    return paths


def score_detections(
    annotations: dict[str, Any], detections: list[dict[str, Any]], image_ids: Sequence[int] | None = None
) -> dict[str, float]:
    """COCOeval('keypoints') of COCO results against ground-truth `annotations` (restricted to `image_ids` if
    given); prints the standard table and returns the 10 numbers (AP, AP50, ..., ARl). No detection -> all 0."""
    COCO, COCOeval = _import_pycocotools()
    if not detections:
        print("no detections: AP and AR are 0")
        return dict.fromkeys(STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' loading chatter
        ground_truth = COCO()
        ground_truth.dataset = annotations
        ground_truth.createIndex()
        results = ground_truth.loadRes(copy.deepcopy(detections))  # loadRes adds fields to the records
        coco_eval = COCOeval(ground_truth, results, "keypoints")
        if image_ids is not None:
            coco_eval.params.imgIds = sorted(image_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
    coco_eval.summarize()
    return {name: float(value) for name, value in zip(STAT_NAMES, coco_eval.stats)}


def evaluate_coco(
    estimator: PoseEstimator,
    labels_path: str | os.PathLike,
    images_folder: str | os.PathLike,
    *,
    multiscale: bool = False,
    flip: bool = False,
    output_path: str | os.PathLike | None = None,
    subset: int | None = None,
    progress: bool = True,
    height: int = BASE_HEIGHT,
) -> dict[str, float]:
    """Evaluate `estimator` on a COCO keypoints annotation file and its image folder, as the reference val.py.

    Single scale by default (scales 0.5, 1, 1.5, 2 with `multiscale`), optionally with the flip test; `subset`
    evaluates that many images drawn as the reference's make_val_subset (seed 0); `height` is the network input
    height at scale 1 (val.py's 368, whatever the estimator's own demo height). Detections are written in
    COCO results format to `output_path` (atomically; also on interrupt). Returns AP, AP50, AP75, APm, APl,
    AR, AR50, AR75, ARm, ARl.
    """
    _import_pycocotools()  # fail before the long loop
    annotations = load_keypoint_annotations(labels_path)
    if subset is not None:
        annotations = make_val_subset(annotations, num_images=subset, seed=0)
    images = annotations["images"]
    paths = _image_paths(images, Path(images_folder))
    scales = MULTISCALE_SCALES if multiscale else (1.0,)
    detections: list[dict[str, Any]] = []
    try:
        for image, path in tqdm(list(zip(images, paths)), desc="evaluating", unit="image", disable=not progress):
            heatmaps, pafs = infer_val_maps(estimator, read_image(path), scales=scales, flip=flip, height=height)
            detections.extend(detections_for_image(heatmaps, pafs, image["id"]))
    finally:
        if output_path is not None:
            write_json_atomic(detections, Path(output_path))
    return score_detections(annotations, detections, [image["id"] for image in images])
