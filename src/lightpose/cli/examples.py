"""Example command lines ending every subcommand's `--help`, kept in one table (docs and tests read it too)."""

from __future__ import annotations

PHOTO = "examples/data/opencv_basketball1.jpg"  # ships with the repository

EXAMPLES: dict[str, tuple[str, ...]] = {
    "lightpose predict": (
        f"lightpose predict {PHOTO} --output runs/",
        "lightpose predict photos/ --output runs/ --no-save --coco runs/detections.json",
        "lightpose predict walk.mp4 rtsp://camera/stream --output runs/ --backend openvino",
    ),
    "lightpose demo": (
        "lightpose demo",
        "lightpose demo walk.mp4 --serve 8080",
        f"lightpose demo {PHOTO} --output runs/",
    ),
    "lightpose eval": (
        "lightpose eval --labels coco/annotations/person_keypoints_val2017.json --images coco/val2017/",
        "lightpose eval --labels val_subset.json --images coco/val2017/ --multiscale --flip",
        "lightpose eval --labels val_subset.json --images coco/val2017/ --output detections.json",
    ),
    "lightpose train": (
        "lightpose train --prepared-train-labels prepared_train_labels.json --train-images-folder coco/train2017/ "
        "--checkpoint mobilenet_sgd_68.848.pth.tar --from-mobilenet --experiment-name step1",
        "torchrun --nproc_per_node=8 -m lightpose train --prepared-train-labels prepared_train_labels.json "
        "--train-images-folder coco/train2017/ --checkpoint step1_checkpoints/checkpoint_iter_420000.pth "
        "--weights-only",
    ),
    "lightpose export": (
        "lightpose export --format onnx --output lightpose.onnx",
        "lightpose export --format openvino --checkpoint my_checkpoint.pth --output lightpose.xml",
    ),
    "lightpose quantize": (
        "lightpose quantize --calibration photos/ --output lightpose_int8.xml",
        "lightpose quantize --calibration photos/ --validation held_out/ --output lightpose_int8.xml --max-drop 0.02",
    ),
    "lightpose prepare-coco": (
        "lightpose prepare-coco --labels coco/annotations/person_keypoints_train2017.json "
        "--output prepared_train_labels.json",
    ),
    "lightpose val-subset": (
        "lightpose val-subset --labels coco/annotations/person_keypoints_val2017.json --output val_subset.json",
    ),
    "lightpose-demo": (
        "lightpose-demo --video 0",
        f"lightpose-demo --images {PHOTO} --output runs/annotated",
        "lightpose-demo --video walk.mp4 --serve 8080",
    ),
}


def examples_text(prog: str) -> str:
    """The 'examples:' block that ends `prog --help`, or "" for a program without examples."""
    lines = EXAMPLES.get(prog, ())
    return "".join(["\nexamples:\n", *(f"  {line}\n" for line in lines)]) if lines else ""
