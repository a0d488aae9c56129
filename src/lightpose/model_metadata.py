"""What a network carries beyond its weights (today: its Skeleton), written and read in one place.

A torch model carries it as its `skeleton` attribute (`LightweightOpenPose(skeleton=...)`, rebuilt from
checkpoints); an exported file stores `Skeleton.to_dict()` as JSON under SKELETON_KEY: ONNX `metadata_props`,
OpenVINO `rt_info` (an ONNX file read by OpenVINO shows it under `rt_info["framework"]`). Every runner that decodes
(the torch, onnxruntime and OpenVINO backends, quantize's accuracy-control runner) gets its skeleton from here; no
skeleton means the published 18-keypoint layout.
"""

from __future__ import annotations

import json
from typing import Any

from lightpose.skeleton import Skeleton

SKELETON_KEY = "lightpose.skeleton"


def model_skeleton(model: object) -> Skeleton | None:
    """The Skeleton a torch model (or any runner) carries as its `skeleton` attribute, else None."""
    skeleton = getattr(model, "skeleton", None)
    return skeleton if isinstance(skeleton, Skeleton) else None


def skeleton_json(skeleton: Skeleton) -> str:
    """The text stored under SKELETON_KEY in an exported file: `skeleton.to_dict()` as JSON."""
    return json.dumps(skeleton.to_dict())


def read_skeleton(text: str | None, where: str) -> Skeleton | None:
    """The Skeleton stored as `text` under SKELETON_KEY, or None when there is none (the published layout);
    ValueError naming `where` when the text is not a skeleton."""
    if text is None:
        return None
    try:
        return Skeleton.from_dict(json.loads(text))
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{where}: its {SKELETON_KEY!r} metadata is not a valid skeleton ({error}): re-export it with "
            "`lightpose export` from its checkpoint"
        ) from error


def write_onnx_skeleton(proto: Any, skeleton: Skeleton | None) -> None:
    """Store `skeleton` (if any) in an onnx.ModelProto's metadata_props, replacing an earlier entry."""
    if skeleton is None:
        return
    for index in reversed(range(len(proto.metadata_props))):
        if proto.metadata_props[index].key == SKELETON_KEY:
            del proto.metadata_props[index]
    entry = proto.metadata_props.add()
    entry.key, entry.value = SKELETON_KEY, skeleton_json(skeleton)


def read_onnx_skeleton(metadata: dict[str, str], where: str) -> Skeleton | None:
    """The Skeleton in an onnxruntime session's custom metadata map (`get_modelmeta().custom_metadata_map`)."""
    return read_skeleton(metadata.get(SKELETON_KEY), where)


def write_openvino_skeleton(ov_model: Any, skeleton: Skeleton | None) -> None:
    """Store `skeleton` (if any) in an openvino.Model's rt_info."""
    if skeleton is not None:
        ov_model.set_rt_info(skeleton_json(skeleton), SKELETON_KEY)


def read_openvino_skeleton(ov_model: Any, where: str) -> Skeleton | None:
    """The Skeleton in an openvino.Model's rt_info: set by `lightpose export`/`quantize`, or under "framework" when
    OpenVINO read it from an ONNX file's metadata_props."""
    for path in ([SKELETON_KEY], ["framework", SKELETON_KEY]):
        if ov_model.has_rt_info(path):
            return read_skeleton(str(ov_model.get_rt_info(path).astype(str)), where)
    return None
