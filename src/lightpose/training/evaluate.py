"""COCO keypoint evaluation: the reference val.py pipeline (single or multi-scale), optional flip test, COCOeval.

Maps are computed at the original image resolution, as val.py does: normalise, resize (INTER_CUBIC) to height
368 x scale, pad to stride 8, run the network, upsample the last-stage maps x8 (INTER_CUBIC), crop the padding,
resize to the image size (INTER_CUBIC) and average over scales; then decode and convert to COCO results.
The estimator's skeleton decides the decoding, the flip pairs, the results' keypoint order (COCO-17 where it maps to
COCO, else its own order) and the OKS sigmas (COCO's where it maps to COCO, else its own).
pycocotools (the ``[train]`` extra) is imported only where scoring needs it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lightpose.decode import decode_upsampled, entries_to_poses
from lightpose.errors import OutputWriteError
from lightpose.estimator import PoseEstimator
from lightpose.io import check_output_path, read_image, write_json
from lightpose.preprocess import check_image, prepare_input
from lightpose.progress import Progress
from lightpose.skeleton import OPENPOSE_COCO, STRIDE, Skeleton
from lightpose.training.flip import mirror_maps
from lightpose.training.labels import make_val_subset

logger = logging.getLogger(__name__)

BASE_HEIGHT = 368
MULTISCALE_SCALES: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
_PERSON_CATEGORY = 1
_COCO_ANNOTATION_FIELDS = ("image_id", "category_id", "num_keypoints", "keypoints", "bbox", "area")


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
    heatmaps, pafs = estimator.run_network(inputs[None])
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

    Returns heatmaps (h, w, K + 1) and PAFs (h, w, 2 L), float32, channel-last. `scales` multiply the base network
    input height `height` (val.py: 368). With `flip`, the mirrored image's maps are mapped back
    (`lightpose.training.flip.mirror_maps` with the estimator's skeleton) and averaged in as well, scale by scale.
    """
    image = check_image(image)
    if height < STRIDE:
        raise ValueError(f"height must be >= {STRIDE}, got {height}")
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales!r}")
    count = len(scales) * (2 if flip else 1)
    mirrored = cv2.flip(image, 1) if flip else None
    sums: list[np.ndarray] = []  # val.py starts from zeros; 0 + x is x, so the first term starts the sums
    for scale in scales:
        terms = [_maps_at_scale(estimator, image, scale, height)]
        if mirrored is not None:
            terms.append(mirror_maps(*_maps_at_scale(estimator, mirrored, scale, height), estimator.skeleton))
        for maps in terms:
            sums = [m / count for m in maps] if not sums else [s + m / count for s, m in zip(sums, maps)]
    return sums[0], sums[1]


def detections_for_image(
    heatmaps: np.ndarray, pafs: np.ndarray, image_id: int, skeleton: Skeleton = OPENPOSE_COCO
) -> list[dict[str, Any]]:
    """COCO results records of one image from its image-resolution maps (heatmaps (h, w, K + 1), PAFs (h, w, 2 L),
    float32, channel-last, as `infer_val_maps` returns them): decode, keypoints + 0.5, COCO-17 order (the
    skeleton's order when it does not map to COCO), score = pose score x max(0, keypoint count - 1)."""
    # (C, H, W) views of the channel-last maps: the vectorised decoder works on channel-last data.
    entries, all_keypoints = decode_upsampled(heatmaps.transpose(2, 0, 1), pafs.transpose(2, 0, 1), skeleton=skeleton)
    return [pose.to_coco(image_id) for pose in entries_to_poses(entries, all_keypoints, skeleton=skeleton)]


def results_keypoint_count(skeleton: Skeleton) -> int:
    """Keypoints per COCO results record of `skeleton` (`Pose.to_coco`): 17 where it maps to COCO, else K."""
    return max(skeleton.coco_index) + 1 if skeleton.coco_index is not None else skeleton.num_keypoints


def oks_sigmas(skeleton: Skeleton) -> np.ndarray | None:
    """The OKS sigmas COCOeval should use for `skeleton`'s results: None (COCO's own) where it maps to COCO-17,
    else its sigmas, float64 (K,) in its order."""
    return None if skeleton.coco_index is not None else np.array(skeleton.sigmas, dtype=np.float64)


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
    """Raise ValueError naming `source` unless `data` is a COCO keypoints annotation dict with the fields COCOeval
    reads (every annotation's keypoints as long as the person category's keypoint names ask for)."""
    hint = "expected a COCO keypoints annotation file such as person_keypoints_val2017.json"
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        raise ValueError(f"{source}: no 'images' and 'annotations' lists; {hint}")
    if not data["images"]:
        raise ValueError(f"{source}: holds no images; {hint}")
    for image in data["images"]:
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise ValueError(f"{source}: every image needs 'id' and 'file_name' ({image!r:.80}); {hint}")
    categories = data.get("categories")
    if not isinstance(categories, list) or not any(
        isinstance(c, dict) and c.get("id") == _PERSON_CATEGORY and c.get("keypoints") for c in categories
    ):
        raise ValueError(f"{source}: no person category (id 1) with keypoint names in 'categories'; {hint}")
    size = 3 * _keypoint_count(data)
    for annotation in data["annotations"]:
        if not isinstance(annotation, dict):
            raise ValueError(f"{source}: an annotation is not an object ({annotation!r:.80}); {hint}")
        missing = [k for k in _COCO_ANNOTATION_FIELDS if k not in annotation]
        if missing:
            raise ValueError(f"{source}: annotation {annotation.get('id', '?')} has no {missing}; {hint}")
        keypoints = annotation["keypoints"]
        if not isinstance(keypoints, list) or len(keypoints) != size:
            count = len(keypoints) if isinstance(keypoints, list) else type(keypoints).__name__
            raise ValueError(
                f"{source}: annotation {annotation.get('id', '?')} has {count} keypoint values, the person "
                f"category's {size // 3} keypoint names need {size} (x, y, v each): fix or remove it"
            )


def _keypoint_count(annotations: dict[str, Any]) -> int:
    """The number of keypoints of the person category (COCO: 17)."""
    return len(next(c["keypoints"] for c in annotations["categories"] if c.get("id") == _PERSON_CATEGORY))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


def check_scorable(annotations: dict[str, Any], image_ids: Iterable[Any] | None = None, source: str = "") -> None:
    """Raise ValueError unless the images `image_ids` (default all) of `annotations` hold a person COCOeval
    counts (not a crowd, num_keypoints > 0): without one AP is undefined and COCOeval reports -1."""
    ids = {image["id"] for image in annotations["images"]} if image_ids is None else set(image_ids)
    people = [
        a
        for a in annotations["annotations"]
        if a["image_id"] in ids
        and a["category_id"] == _PERSON_CATEGORY
        and not a.get("iscrowd")
        and _is_number(a["num_keypoints"])
        and a["num_keypoints"] > 0
    ]
    if not people:
        raise ValueError(
            f"{source or 'annotations'}: the {len(ids)} evaluated images hold no annotated person with keypoints "
            "(non-crowd, num_keypoints > 0), so AP is undefined: evaluate on labels of images with people"
        )


def check_detections(detections: Any, annotations: dict[str, Any]) -> None:
    """Raise ValueError, naming the first bad record and what is wrong, unless `detections` are COCO keypoint
    results for images of `annotations`: objects with an image_id of theirs, category_id 1, 3 x K finite
    keypoint numbers (K keypoints of the person category) and a finite score."""
    if not isinstance(detections, list):
        raise ValueError(f"detections must be a list of COCO results records, got {type(detections).__name__}")
    image_ids = {image["id"] for image in annotations["images"]}
    size = 3 * _keypoint_count(annotations)
    for index, detection in enumerate(detections):
        problem = _detection_problem(detection, image_ids, size)
        if problem is not None:
            raise ValueError(
                f"detection {index} {problem}: score COCO keypoint results made for these annotations "
                f"({len(image_ids)} images, {size // 3} keypoints)"
            )


def _detection_problem(detection: Any, image_ids: set[Any], size: int) -> str | None:
    if not isinstance(detection, dict):
        return f"is a {type(detection).__name__}, not an object"
    missing = [k for k in ("image_id", "category_id", "keypoints", "score") if k not in detection]
    if missing:
        return f"has no {missing}"
    if not isinstance(detection["image_id"], (int, str)) or detection["image_id"] not in image_ids:
        return f"has image_id {detection['image_id']!r}, which is not an image of the annotations"
    if detection["category_id"] != _PERSON_CATEGORY:
        return f"has category_id {detection['category_id']!r}, not {_PERSON_CATEGORY} (person)"
    keypoints = detection["keypoints"]
    if not isinstance(keypoints, list) or len(keypoints) != size:
        count = len(keypoints) if isinstance(keypoints, list) else type(keypoints).__name__
        return f"has {count} keypoint values, not {size} (x, y, score for each of {size // 3} keypoints)"
    if not all(map(_is_number, keypoints)):
        return "has keypoint values that are not finite numbers"
    if not _is_number(detection["score"]):
        return f"has score {detection['score']!r}, not a finite number"
    return None


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
    annotations: dict[str, Any],
    detections: list[dict[str, Any]],
    image_ids: Sequence[int] | None = None,
    *,
    sigmas: Sequence[float] | np.ndarray | None = None,
) -> dict[str, float]:
    """COCOeval('keypoints') of COCO results against ground-truth `annotations` (restricted to `image_ids` if
    given); prints the standard table and returns the 10 numbers (AP, AP50, ..., ARl). No detection -> all 0.
    `sigmas`: per-keypoint OKS sigmas (one per keypoint of the annotations' category; see `oks_sigmas`), default
    COCO's 17.

    Raises ValueError for annotations without a scorable person (`check_scorable`) and for detections that are
    not results for these annotations (`check_detections`)."""
    COCO, COCOeval = _import_pycocotools()
    check_keypoint_annotations(annotations, "annotations")
    check_scorable(annotations, image_ids)
    check_detections(detections, annotations)
    if not detections:
        print("no detections: AP and AR are 0")
        return dict.fromkeys(STAT_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' loading chatter
        ground_truth = COCO()
        ground_truth.dataset = annotations
        ground_truth.createIndex()
        results = ground_truth.loadRes(copy.deepcopy(detections))  # loadRes adds fields to the records
        coco_eval = COCOeval(ground_truth, results, "keypoints")
        if sigmas is not None:
            coco_eval.params.kpt_oks_sigmas = _checked_sigmas(sigmas, _keypoint_count(annotations))
        if image_ids is not None:
            coco_eval.params.imgIds = sorted(image_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
    coco_eval.summarize()
    return {name: float(value) for name, value in zip(STAT_NAMES, coco_eval.stats)}


def _checked_sigmas(sigmas: Sequence[float] | np.ndarray, count: int) -> np.ndarray:
    values = np.asarray(sigmas, dtype=np.float64)
    if values.shape != (count,) or not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"sigmas must be {count} positive numbers (one per annotated keypoint), got {values.shape}")
    return values


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
    height at scale 1 (val.py's 368, whatever the estimator's own demo height). Returns AP, AP50, AP75, APm, APl,
    AR, AR50, AR75, ARm, ARl.

    The output location, the labels (which must hold a scorable person) and the images are checked before any
    inference. Detections are written in COCO results format to `output_path` atomically, also on interrupt
    (a warning then says where). When that write fails at the end, they go to a file in the temporary folder
    instead and OutputWriteError is raised with `saved_to` that file (None: nowhere) and `result` the AP numbers.
    """
    _import_pycocotools()  # fail before the long loop
    if output_path is not None:
        check_output_path(output_path)
    annotations = load_keypoint_annotations(labels_path)
    if subset is not None:
        annotations = make_val_subset(annotations, num_images=subset, seed=0)
    images = annotations["images"]
    image_ids = [image["id"] for image in images]
    check_scorable(annotations, image_ids, str(labels_path))
    skeleton = estimator.skeleton
    if results_keypoint_count(skeleton) != _keypoint_count(annotations):
        raise ValueError(
            f"{labels_path}: its person category has {_keypoint_count(annotations)} keypoints, but the model's "
            f"skeleton {skeleton.name!r} gives {results_keypoint_count(skeleton)}: evaluate on labels of the "
            "skeleton the model was trained for"
        )
    paths = _image_paths(images, Path(images_folder))
    scales = MULTISCALE_SCALES if multiscale else (1.0,)
    detections: list[dict[str, Any]] = []
    done = 0
    bar = Progress(len(images), unit="image", desc="evaluating", enabled=progress)
    saved_to: Path | None = None
    write_error: OSError | None = None
    try:
        for image, path in zip(images, paths):
            heatmaps, pafs = infer_val_maps(estimator, read_image(path), scales=scales, flip=flip, height=height)
            detections.extend(detections_for_image(heatmaps, pafs, image["id"], skeleton))
            done += 1
            bar.update(note=path.name)
    finally:
        bar.close()
        if output_path is not None:
            saved_to, write_error = save_detections(detections, output_path)
            if done < len(images):
                logger.warning(
                    "evaluation stopped after %d of %d images: their %d detections %s",
                    done,
                    len(images),
                    len(detections),
                    f"are in {saved_to}" if saved_to is not None else f"could not be saved ({write_error})",
                )
    stats = score_detections(annotations, detections, image_ids, sigmas=oks_sigmas(skeleton))
    if write_error is not None:
        where = f"they were written to {saved_to} instead" if saved_to is not None else "nor to the temp folder"
        raise OutputWriteError(
            f"could not write the detections to {output_path} ({write_error}); {where}: "
            "free some space or choose another output location",
            saved_to=saved_to,
            result=stats,
        )
    return stats


def save_detections(detections: list[dict[str, Any]], path: str | os.PathLike) -> tuple[Path | None, OSError | None]:
    """Write COCO results to `path` (atomically, mode from the umask); when that fails, to a new file named after
    it in the temporary folder. Returns where they went (None: nowhere) and the error of the first write (None:
    written to `path`)."""
    target = Path(path)
    try:
        write_json(target, detections)
        return target, None
    except OSError as error:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        fallback = Path(tempfile.gettempdir()) / f"{target.stem}-{stamp}-{os.getpid()}{target.suffix or '.json'}"
        try:
            write_json(fallback, detections)
        except OSError:
            return None, error
        return fallback, error
