"""COCO keypoint annotations -> prepared training labels (one sample per main person), and val subsets.

A prepared sample is a JSON-compatible dict with the reference's fields: ``img_paths`` (file name),
``img_width``, ``img_height``, ``objpos`` ([x, y] bbox centre, image pixels), ``image_id``, ``bbox``
([x, y, w, h]), ``segment_area``, ``scale_provided`` (bbox height / net input size), ``num_keypoints``,
``segmentations`` (the image's crowd segmentations, COCO polygon or RLE), ``keypoints`` (the category's keypoints
as [x, y, v] with v = 0 occluded, 1 visible, 2 unlabelled) and ``processed_other_annotations`` (every other
non-crowd person of the image: objpos, bbox, segment_area, scale_provided, num_keypoints, keypoints).

The skeleton: the published 18-keypoint layout is trained from COCO-17 labels (its neck is made from the
shoulders during training); any other skeleton from labels with exactly its keypoints, in its order. A prepared
labels file is the reference's plain JSON list of samples for the published layout, and
``{"skeleton": Skeleton.to_dict(), "samples": [...]}`` for any other, so `lightpose train` builds the right heads.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightpose.errors import AnnotationError
from lightpose.io import write_json
from lightpose.skeleton import COCO_17, COCO_SKELETON, NUM_COCO_KEYPOINTS, OPENPOSE_COCO, Skeleton

logger = logging.getLogger(__name__)

MIN_MAIN_KEYPOINTS = 5
MIN_MAIN_AREA = 32 * 32
MIN_CENTRE_DISTANCE = 0.3  # x bbox width of an already accepted person of the same image
# COCO visibility (0 unlabelled, 1 occluded, 2 visible) -> prepared (2 unlabelled, 0 occluded, 1 visible).
_VISIBILITY_REMAP = {0: 2, 1: 0, 2: 1}
SAMPLE_KEYS = (
    "img_paths", "img_width", "img_height", "objpos", "image_id", "bbox", "segment_area",
    "scale_provided", "num_keypoints", "segmentations", "keypoints", "processed_other_annotations",
)  # fmt: skip
OTHER_PERSON_KEYS = ("objpos", "bbox", "segment_area", "scale_provided", "num_keypoints", "keypoints")


def _read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (give a COCO person_keypoints JSON file)")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a JSON file ({error})") from error


def _remap_keypoints(flat: Sequence[float]) -> list[list[float]]:
    """Flat COCO [x1, y1, v1, ...] -> [[x, y, v'], ...] with the training visibility codes."""
    triples = [flat[i : i + 3] for i in range(0, len(flat) - 2, 3)]
    return [[x, y, _VISIBILITY_REMAP.get(int(v), 2)] for x, y, v in triples]


def _centre(bbox: Sequence[float]) -> list[float]:
    return [bbox[0] + bbox[2] / 2, bbox[1] + bbox[3] / 2]


def _person_fields(annotation: dict, net_input_size: int) -> dict:
    bbox = annotation["bbox"]
    return {
        "objpos": _centre(bbox),
        "bbox": bbox,
        "segment_area": annotation["area"],
        "scale_provided": bbox[3] / net_input_size,
        "num_keypoints": annotation["num_keypoints"],
    }


_PERSON_FIELDS = frozenset({"image_id", "iscrowd", "num_keypoints", "keypoints", "bbox", "area"})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    """An integer, or a float with an integer value (5.0)."""
    return _is_number(value) and float(value).is_integer()


def _check_images(data: Any, source: str) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{source}: not a COCO annotation file (needs an 'images' list)")
    if not isinstance(data.get("annotations"), list):
        raise ValueError(f"{source}: not a COCO annotation file (needs an 'annotations' list)")
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not {"id", "file_name", "width", "height"} <= set(image):
            raise ValueError(f"{source}: images[{i}] must be an object with id, file_name, width and height")
        if not all(_is_count(image[k]) and image[k] > 0 for k in ("width", "height")):
            raise ValueError(
                f"{source}: image id {image['id']!r} (images[{i}]): width and height must be positive integers, got "
                f"{image['width']!r} x {image['height']!r}: fix or remove this image"
            )


SKELETON_CHOICES = ("auto", OPENPOSE_COCO.name, COCO_17.name, "from-category")


def label_keypoint_count(skeleton: Skeleton) -> int:
    """Keypoints per person in the labels of `skeleton`: 17 (COCO) for the published layout, else its own count."""
    return NUM_COCO_KEYPOINTS if skeleton == OPENPOSE_COCO else skeleton.num_keypoints


def _keypoint_category(data: dict, source: str) -> dict | None:
    """The one category with keypoint names, None when there is none; ValueError for several."""
    categories = data.get("categories") or []
    found = [c for c in categories if isinstance(c, dict) and c.get("keypoints")]
    if len(found) > 1:
        names = ", ".join(repr(c.get("name", c.get("id"))) for c in found)
        raise ValueError(f"{source}: several categories have keypoints ({names}): keep the one to train on")
    return found[0] if found else None


def _is_coco_layout(category: dict) -> bool:
    edges = category.get("skeleton") or []
    same_edges = {frozenset(map(int, e)) for e in edges} == {frozenset(e) for e in COCO_SKELETON}
    return len(category["keypoints"]) == NUM_COCO_KEYPOINTS and (not edges or same_edges)


def choose_skeleton(data: dict, choice: str = "auto", source: str = "annotations") -> Skeleton:
    """The skeleton to train on for a loaded COCO keypoints file.

    "auto": the published 18-keypoint layout when the file's keypoint category is COCO-17 (17 keypoints with COCO's
    skeleton or none) or the file has no keypoint category, else "from-category". "from-category":
    `Skeleton.from_coco_category` of the category. "openpose-coco-18" / "coco-17": that layout (COCO-17 labels).
    ValueError naming the problem otherwise.
    """
    if choice not in SKELETON_CHOICES:
        raise ValueError(f"unknown skeleton choice {choice!r}: use one of {', '.join(SKELETON_CHOICES)}")
    if not isinstance(data, dict):
        raise ValueError(f"{source}: not a COCO annotation file (a JSON object)")
    category = _keypoint_category(data, source)
    if choice == "auto":
        choice = "from-category" if category is not None and not _is_coco_layout(category) else OPENPOSE_COCO.name
    if choice == "from-category":
        if category is None:
            raise ValueError(f"{source}: no category with 'keypoints' names to build a skeleton from: add one")
        return Skeleton.from_coco_category(category)
    if category is not None and len(category["keypoints"]) != NUM_COCO_KEYPOINTS:
        raise ValueError(
            f"{source}: the {choice} layout trains on COCO-17 labels, but category {category.get('name')!r} has "
            f"{len(category['keypoints'])} keypoints: use --skeleton from-category"
        )
    return OPENPOSE_COCO if choice == OPENPOSE_COCO.name else COCO_17


def _annotation_problem(annotation: dict, num_keypoints: int) -> str | None:
    """What is wrong with a COCO person annotation's fields that label preparation reads, or None."""
    missing = sorted(_PERSON_FIELDS - set(annotation))
    if missing:
        return f"lacks {', '.join(repr(k) for k in missing)} (is this a COCO person_keypoints file?)"
    if annotation["iscrowd"] not in (0, 1):
        return f"'iscrowd' must be 0 or 1, got {annotation['iscrowd']!r}"
    if not (_is_count(annotation["num_keypoints"]) and annotation["num_keypoints"] >= 0):
        return f"'num_keypoints' must be a non-negative integer, got {annotation['num_keypoints']!r}"
    if annotation["iscrowd"]:
        segmentation = annotation.get("segmentation")
        if segmentation is not None and not isinstance(segmentation, (list, dict)):
            return f"'segmentation' must be polygons (a list) or RLE (an object), got {type(segmentation).__name__}"
        return None
    keypoints, bbox = annotation["keypoints"], annotation["bbox"]
    size = 3 * num_keypoints
    if not (isinstance(keypoints, list) and len(keypoints) == size and all(map(_is_number, keypoints))):
        return f"'keypoints' must be a list of {size} numbers (x, y, v per keypoint), got {repr(keypoints)[:60]}"
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox)) and min(bbox[2:]) >= 0):
        return f"'bbox' must be [x, y, width, height] with width, height >= 0, got {repr(bbox)[:60]}"
    if not _is_number(annotation["area"]):
        return f"'area' must be a number, got {annotation['area']!r}"
    return None


def _check_annotations(data: dict, source: str, num_keypoints: int) -> None:
    """Raise AnnotationError naming the first annotation (by id and index) whose fields cannot be used."""
    for i, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict):
            raise AnnotationError(f"{source}: annotations[{i}] is not an object: fix or remove it")
        problem = _annotation_problem(annotation, num_keypoints)
        if problem is not None:
            where = (
                f"annotation id {annotation['id']!r} (annotations[{i}])" if "id" in annotation else f"annotations[{i}]"
            )
            raise AnnotationError(f"{source}: {where} {problem}: fix or remove it")


def prepare_labels_from_coco(
    data: dict, *, net_input_size: int = 368, source: str = "annotations", skeleton: Skeleton = OPENPOSE_COCO
) -> list[dict]:
    """Prepared samples (see module docstring) from a loaded COCO keypoints dict, in the reference's order.

    Annotations hold `label_keypoint_count(skeleton)` keypoints. A malformed annotation raises AnnotationError
    naming its id. Crowd annotations without a 'segmentation' mark no region to mask: they are skipped, with one
    warning that counts them.
    """
    _check_images(data, source)
    _check_annotations(data, source, label_keypoint_count(skeleton))
    images = {image["id"]: image for image in data["images"]}
    persons: dict[Any, list[dict]] = {}
    crowds: dict[Any, list] = {}
    no_segmentation = []
    for annotation in data["annotations"]:
        annotation = {**annotation, "num_keypoints": int(annotation["num_keypoints"])}
        if annotation["iscrowd"] and annotation.get("segmentation") is None:
            no_segmentation.append(annotation.get("id"))
        elif annotation["iscrowd"]:
            crowds.setdefault(annotation["image_id"], []).append(annotation["segmentation"])
        elif annotation["num_keypoints"] != 0:
            persons.setdefault(annotation["image_id"], []).append(annotation)
    if no_segmentation:
        logger.warning(
            "%s: skipped %d crowd annotation(s) without 'segmentation' (ids %s): they mark no region to mask",
            source,
            len(no_segmentation),
            ", ".join(map(repr, no_segmentation[:10])) + (", ..." if len(no_segmentation) > 10 else ""),
        )

    samples = []
    for image_id, image_persons in persons.items():
        if image_id not in images:
            raise ValueError(f"{source}: an annotation refers to image_id {image_id!r}, which is not in 'images'")
        image = images[image_id]
        accepted: list[tuple[float, float, float]] = []  # (centre x, centre y, bbox width)
        for annotation in image_persons:
            if annotation["num_keypoints"] < MIN_MAIN_KEYPOINTS or annotation["area"] < MIN_MAIN_AREA:
                continue
            centre = _centre(annotation["bbox"])
            if any(
                ((centre[0] - x) ** 2 + (centre[1] - y) ** 2) ** 0.5 < width * MIN_CENTRE_DISTANCE
                for x, y, width in accepted
            ):
                continue
            sample = {
                "img_paths": image["file_name"],
                "img_width": int(image["width"]),
                "img_height": int(image["height"]),
                "image_id": image_id,
                **_person_fields(annotation, net_input_size),
                "segmentations": crowds.get(image_id, []),
                "keypoints": _remap_keypoints(annotation["keypoints"]),
                "processed_other_annotations": [
                    {**_person_fields(other, net_input_size), "keypoints": _remap_keypoints(other["keypoints"])}
                    for other in image_persons
                    if other != annotation
                ],
            }
            samples.append({key: sample[key] for key in SAMPLE_KEYS})
            accepted.append((centre[0], centre[1], annotation["bbox"][2]))
    return samples


def prepare_coco_labels(
    annotations_path: str | Path, *, net_input_size: int = 368, skeleton: Skeleton = OPENPOSE_COCO
) -> list[dict]:
    """Read a COCO keypoints JSON file and prepare one training sample per main person for `skeleton`."""
    if net_input_size <= 0:
        raise ValueError(f"net_input_size must be positive, got {net_input_size}")
    data = _read_json(annotations_path)
    return prepare_labels_from_coco(
        data, net_input_size=net_input_size, source=str(annotations_path), skeleton=skeleton
    )


def prepare_coco(
    annotations_path: str | Path, *, net_input_size: int = 368, skeleton: str = "auto"
) -> tuple[list[dict], Skeleton]:
    """Prepared samples and the skeleton `choose_skeleton(data, skeleton)` picked for a COCO keypoints JSON file."""
    if net_input_size <= 0:
        raise ValueError(f"net_input_size must be positive, got {net_input_size}")
    data = _read_json(annotations_path)
    chosen = choose_skeleton(data, skeleton, str(annotations_path))
    samples = prepare_labels_from_coco(
        data, net_input_size=net_input_size, source=str(annotations_path), skeleton=chosen
    )
    return samples, chosen


def save_prepared_labels(samples: list[dict], path: str | Path, skeleton: Skeleton = OPENPOSE_COCO) -> None:
    """Save prepared samples as JSON (atomically): a plain list for the published layout, else with the skeleton."""
    validate_prepared_labels(samples, "samples to save", skeleton)
    write_json(path, samples if skeleton == OPENPOSE_COCO else {"skeleton": skeleton.to_dict(), "samples": samples})


def _check_keypoints(keypoints: Any, where: str, count: int) -> None:
    if (
        not isinstance(keypoints, list)
        or len(keypoints) != count
        or not all(isinstance(k, list) and len(k) == 3 for k in keypoints)
    ):
        raise ValueError(f"{where}: 'keypoints' must be {count} [x, y, v] triples")


def validate_prepared_labels(samples: Any, source: str, skeleton: Skeleton = OPENPOSE_COCO) -> None:
    """Raise ValueError naming ``source`` and the first problem if ``samples`` are not prepared labels of
    `skeleton` (`label_keypoint_count(skeleton)` keypoints per person)."""
    count = label_keypoint_count(skeleton)
    if not isinstance(samples, list):
        raise ValueError(f"{source}: prepared labels must be a JSON list of samples, got {type(samples).__name__}")
    if not samples:
        raise ValueError(f"{source}: holds no samples (no person with >= 5 keypoints and area >= 32x32?)")
    for i, sample in enumerate(samples):
        where = f"{source}: sample {i}"
        if not isinstance(sample, dict):
            raise ValueError(f"{where} is not an object (run `lightpose prepare-coco` to make prepared labels)")
        missing = [key for key in SAMPLE_KEYS if key not in sample]
        if missing:
            raise ValueError(f"{where} lacks {missing} (run `lightpose prepare-coco` to make prepared labels)")
        if not (isinstance(sample["img_width"], int) and isinstance(sample["img_height"], int)):
            raise ValueError(f"{where}: img_width and img_height must be integers")
        if not sample["scale_provided"] > 0:
            raise ValueError(f"{where}: scale_provided must be > 0 (bbox height 0?)")
        if not isinstance(sample["segmentations"], list):
            raise ValueError(f"{where}: 'segmentations' must be a list")
        _check_keypoints(sample["keypoints"], where, count)
        others = sample["processed_other_annotations"]
        if not isinstance(others, list):
            raise ValueError(f"{where}: 'processed_other_annotations' must be a list")
        for j, other in enumerate(others):
            if not isinstance(other, dict) or "keypoints" not in other:
                raise ValueError(f"{where}: other person {j} has no 'keypoints'")
            _check_keypoints(other["keypoints"], f"{where}, other person {j}", count)


def load_prepared(path: str | Path) -> tuple[list[dict], Skeleton]:
    """Load and check prepared samples written by :func:`save_prepared_labels`, and their skeleton."""
    data = _read_json(path)
    skeleton = OPENPOSE_COCO
    if isinstance(data, dict) and "samples" in data:
        try:
            skeleton = Skeleton.from_dict(data.get("skeleton"))  # type: ignore[arg-type]
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"{path}: its 'skeleton' is not a valid skeleton ({error}): run `lightpose prepare-coco` again"
            ) from error
        data = data["samples"]
    validate_prepared_labels(data, str(path), skeleton)
    return data, skeleton


def load_prepared_labels(path: str | Path) -> list[dict]:
    """Load and check prepared samples written by :func:`save_prepared_labels` (see `load_prepared`)."""
    return load_prepared(path)[0]


def make_val_subset(annotations: dict[str, Any], num_images: int = 250, seed: int = 0) -> dict:
    """COCO dict of ``num_images`` images drawn as the reference does, with their annotations.

    ``random.Random(seed).shuffle`` of indices 0..N-1 (N = number of images); the first ``num_images``
    (all N if fewer) in shuffled order. info, licenses and categories are copied.
    """
    _check_images(annotations, "annotations")
    for i, annotation in enumerate(annotations["annotations"]):
        if not isinstance(annotation, dict) or "image_id" not in annotation:
            raise AnnotationError(f"annotations[{i}] must be an object with an 'image_id': fix or remove it")
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    indices = list(range(len(annotations["images"])))
    random.Random(seed).shuffle(indices)
    images = {}
    for index in indices[:num_images]:
        image = annotations["images"][index]
        images[image["id"]] = image
    per_image: dict[Any, list[dict]] = {}
    for annotation in annotations["annotations"]:
        if annotation["image_id"] in images:
            per_image.setdefault(annotation["image_id"], []).append(annotation)
    subset: dict[str, Any] = {key: annotations[key] for key in ("info", "licenses") if key in annotations}
    subset["images"] = list(images.values())
    subset["annotations"] = [a for image_id in images for a in per_image.get(image_id, [])]
    subset["categories"] = annotations.get("categories", [])
    return subset
