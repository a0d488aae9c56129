"""Tracking benchmark: identity switches, IDF1 and MOTA of the reference tracker and MotionTracker, side by side.

Videos are built from the shared labelled photos (/work/shared/data/people, machine-made COCO keypoints), so every
person's identity is known in every frame:

- a virtual camera pans and zooms over a photo (people leave the view and come back),
- an occluder (a grey bar) passes over the people,
- in the "tracker alone" mode the labelled people also walk (so they cross) and a simulated detector adds keypoint
  noise, drops keypoints, misses whole people and splits some into two fragments.

Two modes: `model` runs the fixture model (/work/shared/data/fixture) on the rendered frames (camera and occluder
only: the photos' people cannot walk); `labels` feeds the trackers the labels through the simulated detector, which
isolates the tracker. Both trackers see the same poses. A hypothesis matches a labelled person when their OKS on
the keypoints both have is >= 0.5 (at least 2 shared); metrics from py-motmetrics (`pip install lightpose[bench]`).

    python benchmarks/bench_tracking.py [--mode both|labels|model] [--frames 80]

The last table is each tracker's cost per frame (the update call only) with 10 people; timings depend on how busy
the machine is, accuracy does not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lightpose import MotionTracker, PoseEstimator, PoseTracker
from lightpose.pose import Pose
from lightpose.skeleton import COCO_TO_INTERNAL, KEYPOINT_INDEX, OPENPOSE_COCO

SHARED = Path(os.environ.get("LIGHTPOSE_SHARED", "/work/shared"))
PEOPLE = SHARED / "data/people"
FIXTURE = SHARED / "data/fixture/people_fixture.pth"
TRACKERS: dict[str, Callable[[], PoseTracker | MotionTracker]] = {
    "reference": PoseTracker,
    "motion": MotionTracker,
}
VARIANCES = OPENPOSE_COCO.oks_variances().astype(np.float64)


@dataclass
class Labelled:
    """One labelled person of a photo: internal-layout keypoints (NaN unlabelled) and the COCO area."""

    id: int
    xy: np.ndarray
    area: float


@dataclass
class Scene:
    """A video made from one photo: camera path, occluder, walking and the simulated detector's faults."""

    name: str
    photo: str
    size: tuple[int, int]  # output width, height
    camera: Callable[[float], tuple[float, float, float]]  # t in [0, 1] -> (left, top, scale) of the view
    bar: Callable[[float], tuple[float, float] | None]  # t -> (x0, x1) of the occluder in output pixels
    walk: float = 0.0  # pixels per frame (photo pixels) each person walks, alternating directions, labels mode


def read_labels() -> dict[str, list[Labelled]]:
    data = json.loads((PEOPLE / "person_keypoints.json").read_text())
    names = {image["id"]: image["file_name"] for image in data["images"]}
    people: dict[str, list[Labelled]] = {}
    for ann in data["annotations"]:
        coco = np.array(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        xy = np.full((OPENPOSE_COCO.num_keypoints, 2), np.nan)
        for c, (x, y, v) in enumerate(coco):
            if v > 0:
                xy[COCO_TO_INTERNAL[c]] = (x, y)
        xy[KEYPOINT_INDEX["neck"]] = (xy[KEYPOINT_INDEX["r_sho"]] + xy[KEYPOINT_INDEX["l_sho"]]) / 2
        people.setdefault(names[ann["image_id"]], []).append(Labelled(ann["id"], xy, float(ann["area"])))
    return people


def scenes() -> list[Scene]:
    def pan(x0: float, x1: float, y: float, scale: float) -> Callable[[float], tuple[float, float, float]]:
        return lambda t: (x0 + (x1 - x0) * (0.5 - 0.5 * np.cos(2 * np.pi * t)), y, scale)  # out and back

    def zoom(cx: float, cy: float, w: int, h: int, s0: float, s1: float) -> Callable[[float], tuple[float, ...]]:
        def camera(t: float) -> tuple[float, float, float]:
            s = s0 + (s1 - s0) * (0.5 - 0.5 * np.cos(2 * np.pi * t))
            return cx - w / 2 / s, cy - h / 2 / s, s

        return camera

    def sweep(width: int, bar: int, start: float = 0.0, end: float = 1.0) -> Callable[[float], tuple | None]:
        def occluder(t: float) -> tuple[float, float] | None:
            if not start <= t <= end:
                return None
            x = -bar + (width + bar) * (t - start) / (end - start)
            return x, x + bar

        return occluder

    def no_bar(t: float) -> None:
        return None

    return [
        Scene("vtest pan (leave and return)", "opencv_vtest_f120.jpg", (384, 384), pan(0, 384, 96, 1.0), no_bar, 1.5),
        Scene("vtest occluder", "opencv_vtest_f240.jpg", (576, 432), lambda t: (0, 0, 0.75), sweep(576, 90), 2.0),
        Scene(
            "vtest zoom + occluder",
            "opencv_vtest_f320.jpg",
            (512, 384),
            zoom(384, 300, 512, 384, 0.67, 1.3),
            sweep(512, 70, 0.2, 0.8),
            1.0,
        ),  # fmt: skip
        Scene("pose2sim pan", "pose2sim_multi_cam01_f000.jpg", (360, 640), pan(0, 365, 0, 0.5), no_bar, 2.0),
        Scene(
            "basketball zoom + occluder",
            "opencv_basketball1.jpg",
            (480, 360),
            zoom(320, 240, 480, 360, 0.75, 1.15),
            sweep(480, 60),
            0.5,
        ),  # fmt: skip
    ]


@dataclass
class Frame:
    image: np.ndarray | None
    truth: list[tuple[int, np.ndarray, float]]  # (id, visible keypoints in output pixels, area)


def render(scene: Scene, people: list[Labelled], frames: int, *, walking: bool, image: bool) -> Iterator[Frame]:
    """Each frame's image (when `image`) and visible labelled keypoints (>= 3 visible: the person is there)."""
    photo = cv2.imread(str(PEOPLE / scene.photo)) if image else None
    w, h = scene.size
    for f in range(frames):
        t = f / max(frames - 1, 1)
        left, top, scale = scene.camera(t)
        picture = None
        if photo is not None:
            matrix = np.float32([[scale, 0, -left * scale], [0, scale, -top * scale]])
            picture = cv2.warpAffine(photo, matrix, (w, h), borderValue=(0, 0, 0))
        bar = scene.bar(t)
        if picture is not None and bar is not None:
            picture[:, max(int(bar[0]), 0) : max(int(bar[1]), 0)] = 128
        truth = []
        for n, person in enumerate(people):
            step = scene.walk * f * (1 if n % 2 else -1) if walking else 0.0
            xy = (person.xy + [step, 0.0] - [left, top]) * scale
            visible = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
            if bar is not None:
                visible &= ~((xy[:, 0] >= bar[0]) & (xy[:, 0] < bar[1]))
            xy[~visible] = np.nan
            if visible.sum() >= 3:
                truth.append((person.id, xy, person.area * scale * scale))
        yield Frame(picture, truth)


def simulated_detector(truth: list[tuple[int, np.ndarray, float]], rng: np.random.Generator) -> list[Pose]:
    """Labels -> detector-like poses: 3% size noise, 15% of keypoints dropped, 10% of people missed, 5% split."""
    poses = []
    for _, xy, area in truth:
        if rng.random() < 0.10:
            continue
        noisy = xy + rng.normal(0, 0.03 * np.sqrt(area), xy.shape)
        noisy[rng.random(len(xy)) < 0.15] = np.nan
        parts = [noisy]
        if rng.random() < 0.05:  # the grouping splits upper body and legs
            legs = np.zeros(len(xy), dtype=bool)
            legs[[KEYPOINT_INDEX[n] for n in ("r_hip", "r_knee", "r_ank", "l_hip", "l_knee", "l_ank")]] = True
            parts = [np.where(legs[:, None], np.nan, noisy), np.where(legs[:, None], noisy, np.nan)]
        for part in parts:
            found = ~np.isnan(part[:, 0])
            if found.sum() >= 2:
                keypoints = np.concatenate([part, np.where(found, 0.8, 0.0)[:, None]], axis=1)
                poses.append(Pose(keypoints.astype(np.float32), float(found.sum())))
    rng.shuffle(poses)  # type: ignore[arg-type]
    return poses


def shared_oks(truth_xy: np.ndarray, area: float, pose_xy: np.ndarray) -> float:
    both = ~np.isnan(truth_xy[:, 0]) & ~np.isnan(pose_xy[:, 0])
    if both.sum() < 2:
        return 0.0
    d2 = ((truth_xy[both] - pose_xy[both]) ** 2).sum(axis=1)
    return float(np.exp(-d2 / (2 * max(area, 1.0) * VARIANCES[both])).mean())


def evaluate(videos: list[tuple[str, list[Frame], list[list[Pose]]]]) -> tuple[dict[str, object], dict[str, float]]:
    """Per tracker: the motmetrics summary over all videos, and ms per frame of `update`."""
    import motmetrics as mm

    summaries, costs = {}, {}
    for name, make in TRACKERS.items():
        accumulators, names, spent, count = [], [], 0.0, 0
        for video, frames, detections in videos:
            tracker, acc = make(), mm.MOTAccumulator(auto_id=True)
            for frame, poses in zip(frames, detections):
                start = time.perf_counter()
                tracked = tracker.update(poses)
                spent += time.perf_counter() - start
                count += 1
                distances = np.full((len(frame.truth), len(tracked)), np.nan)
                for i, (_, xy, area) in enumerate(frame.truth):
                    for j, pose in enumerate(tracked):
                        oks = shared_oks(xy, area, pose.xy.astype(np.float64))
                        if oks >= 0.5:
                            distances[i, j] = 1.0 - oks
                acc.update([t[0] for t in frame.truth], [p.id for p in tracked], distances)
            accumulators.append(acc)
            names.append(video)
        metrics = ["idf1", "num_switches", "mota", "num_misses", "num_false_positives", "num_unique_objects",
                   "num_predictions"]  # fmt: skip
        summaries[name] = mm.metrics.create().compute_many(accumulators, metrics=metrics, names=names,
                                                           generate_overall=True)  # fmt: skip
        costs[name] = spent / count * 1e3
    return summaries, costs


def report(title: str, summaries: dict[str, object], costs: dict[str, float]) -> None:
    print(f"\n## {title}\n")
    print("| video | tracker | IDF1 | ID switches | MOTA | misses | false pos. | people | ms/frame |")
    print("|---|---|---|---|---|---|---|---|---|")
    first = next(iter(summaries.values()))
    for video in first.index:  # type: ignore[attr-defined]
        for name, summary in summaries.items():
            row = summary.loc[video]  # type: ignore[attr-defined]
            cost = f"{costs[name]:.3f}" if video == "OVERALL" else ""
            print(f"| {video} | {name} | {row.idf1:.3f} | {int(row.num_switches)} | {row.mota:.3f} | "
                  f"{int(row.num_misses)} | {int(row.num_false_positives)} | {int(row.num_unique_objects)} | "
                  f"{cost} |")  # fmt: skip


def labels_mode(people: dict[str, list[Labelled]], frames: int) -> None:
    rng = np.random.default_rng(0)
    videos = []
    for scene in scenes():
        rendered = list(render(scene, people[scene.photo], frames, walking=True, image=False))
        videos.append((scene.name, rendered, [simulated_detector(f.truth, rng) for f in rendered]))
    report("Labels through a simulated detector (people walk and cross; the tracker alone)", *evaluate(videos))


def model_mode(people: dict[str, list[Labelled]], frames: int) -> None:
    est = PoseEstimator.from_pretrained(str(FIXTURE), device="cpu")
    videos = []
    for scene in scenes():
        rendered = list(render(scene, people[scene.photo], frames, walking=False, image=True))
        detections = [list(est(f.image)) for f in rendered]
        videos.append((scene.name, rendered, detections))
        print(f"{scene.name}: {sum(map(len, detections)) / len(detections):.1f} poses per frame", file=sys.stderr)
    report("Fixture model on rendered frames (camera moves and zooms, occluder passes)", *evaluate(videos))


def cost_per_frame(people: dict[str, list[Labelled]], frames: int = 300) -> None:
    """10 labelled people walking in a grid, every keypoint found: the update call's ms per frame."""
    chosen = sorted((p for group in people.values() for p in group), key=lambda p: -p.area)[:10]
    rng = np.random.default_rng(1)
    sequence = []
    for f in range(frames):
        poses = []
        for n, person in enumerate(chosen):
            centre = np.nanmean(person.xy, axis=0)
            xy = person.xy - centre + [300 * (n % 5) + 2 * f, 500 * (n // 5)] + rng.normal(0, 1, person.xy.shape)
            found = ~np.isnan(xy[:, 0])
            poses.append(Pose(np.concatenate([xy, found[:, None] * 0.8], axis=1).astype(np.float32), 10.0))
        sequence.append(poses)
    print("\n## Cost per frame, 10 people (update call only)\n")
    print("| tracker | ms per frame |")
    print("|---|---|")
    for name, make in TRACKERS.items():
        tracker = make()
        start = time.perf_counter()
        for poses in sequence:
            tracker.update(poses)
        print(f"| {name} | {(time.perf_counter() - start) / frames * 1e3:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("both", "labels", "model"), default="both")
    parser.add_argument("--frames", type=int, default=80, help="frames per video (default 80)")
    args = parser.parse_args()
    if not (PEOPLE / "person_keypoints.json").exists():
        sys.exit(f"needs the shared labelled photos at {PEOPLE} (set LIGHTPOSE_SHARED)")
    people = read_labels()
    if args.mode in ("both", "labels"):
        labels_mode(people, args.frames)
    if args.mode in ("both", "model"):
        if not FIXTURE.exists():
            sys.exit(f"--mode model needs the fixture model at {FIXTURE}")
        model_mode(people, args.frames)
    cost_per_frame(people)


if __name__ == "__main__":
    main()
