"""PoseTracker ids (the reference's similarity rule), One-Euro smoothing, and both applied to a stream."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from lightpose.pose import Pose
from lightpose.skeleton import KEYPOINT_INDEX, NUM_KEYPOINTS
from lightpose.tracking import OneEuroFilter, PoseTracker

# A standing person about 60 x 150 px: keypoint offsets from the neck, internal order.
BODY = np.array(
    [
        [0, -20], [0, 0], [-20, 0], [-28, 30], [-30, 58], [20, 0], [28, 30], [30, 58], [-12, 60],
        [-14, 100], [-15, 130], [12, 60], [14, 100], [15, 130], [-5, -25], [5, -25], [-10, -22], [10, -22],
    ],
    dtype=np.float32,
)  # fmt: skip


def person(x: float, y: float, score: float = 10.0, missing: tuple[str, ...] = ()) -> Pose:
    keypoints = np.ones((NUM_KEYPOINTS, 3), dtype=np.float32)
    keypoints[:, :2] = BODY + np.float32([x, y])
    for name in missing:
        keypoints[KEYPOINT_INDEX[name]] = np.nan
    return Pose(keypoints, score)


# ---- One-Euro filter ------------------------------------------------------------------------------------


def test_constant_input_stays_constant() -> None:
    f = OneEuroFilter()
    out = [float(f(3.25)) for _ in range(20)]
    assert out == [3.25] * 20


def test_first_steps_follow_the_reference_formula() -> None:
    f = OneEuroFilter(freq=15, mincutoff=1, beta=0.05, dcutoff=1)
    assert float(f(0.0)) == 0.0

    # second sample: dx = (1 - 0) * 15, low-passed from its first value 0; cutoff = 1 + 0.05 |dx_hat|
    def alpha(cutoff: float) -> float:
        return 1.0 / (1.0 + 15.0 / (2 * math.pi * cutoff))

    dx_hat = alpha(1.0) * 15.0
    expected = alpha(1.0 + 0.05 * dx_hat) * 1.0
    assert float(f(1.0)) == pytest.approx(expected, rel=1e-12)


def step_response(beta: float, steps: int = 60, size: float = 10.0) -> np.ndarray:
    f = OneEuroFilter(beta=beta)
    f(0.0)
    return np.array([float(f(size)) for _ in range(steps)])


def test_step_response_lags_then_converges() -> None:
    response = step_response(beta=0.05)
    assert 0.0 < response[0] < 7.0  # lags behind the 10 px step
    assert np.all(np.diff(response) >= 0) and response[5] < 10.0  # moves toward it without overshoot
    assert response[-1] == pytest.approx(10.0, abs=0.01)


def test_higher_beta_lags_less() -> None:
    none, default, high = (step_response(beta=b, steps=5) for b in (0.0, 0.05, 1.0))
    assert np.all(default > none) and np.all(high > default)


def test_array_filter_is_elementwise_and_nan_restarts_an_element() -> None:
    f = OneEuroFilter()
    f(np.array([0.0, 0.0]))
    out = f(np.array([10.0, np.nan]))
    assert 0.0 < out[0] < 10.0 and np.isnan(out[1])
    out = f(np.array([10.0, 7.0]))  # element 1 starts fresh: its first value passes unchanged
    assert out[1] == 7.0 and out[0] < 10.0


def test_filter_rejects_bad_settings_and_shape_changes() -> None:
    with pytest.raises(ValueError, match="freq"):
        OneEuroFilter(freq=0)
    f = OneEuroFilter()
    f(np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(4))


# ---- tracker ---------------------------------------------------------------------------------------------


def ids_of(poses: list[Pose]) -> list[int | None]:
    return [p.id for p in poses]


def test_ids_stay_on_smoothly_moving_people() -> None:
    tracker = PoseTracker(smooth=False)
    history = []
    for t in range(30):
        poses = [person(100 + 2 * t, 100), person(300 - 2 * t, 120 + t, score=5.0)]
        history.append(ids_of(tracker.update(poses)))
    assert history[0] == [0, 1]
    assert all(ids == [0, 1] for ids in history)


def test_new_people_get_new_ids_and_lost_ids_are_not_reused() -> None:
    tracker = PoseTracker(smooth=False)
    assert ids_of(tracker.update([person(100, 100)])) == [0]
    assert ids_of(tracker.update([person(102, 100), person(400, 100)])) == [0, 1]
    assert ids_of(tracker.update([person(404, 100)])) == [1]  # person 0 left
    # person 0 comes back where it was: a new id, never 0 again
    assert ids_of(tracker.update([person(104, 100), person(406, 100)])) == [2, 1]
    assert ids_of(tracker.update([])) == []
    assert ids_of(tracker.update([person(104, 100)])) == [3]


def test_a_jump_or_too_few_shared_keypoints_breaks_the_track() -> None:
    tracker = PoseTracker(smooth=False)
    tracker.update([person(100, 100)])
    assert ids_of(tracker.update([person(160, 100)])) == [1]  # far jump: nothing similar
    # only the nose and the eyes remain (3 keypoints, each similar): still >= 3, keeps the id
    face_only = tuple(n for n in KEYPOINT_INDEX if n not in ("nose", "r_eye", "l_eye"))
    assert ids_of(tracker.update([person(160, 100, missing=face_only)])) == [1]
    # two shared keypoints are not enough
    assert ids_of(tracker.update([person(160, 100, missing=(*face_only, "l_eye"))])) == [2]


def test_each_previous_pose_is_matched_once_best_score_first() -> None:
    tracker = PoseTracker(smooth=False)
    tracker.update([person(100, 100)])
    weak, strong = person(101, 100, score=1.0), person(100, 101, score=9.0)
    assert ids_of(tracker.update([weak, strong])) == [1, 0]  # the higher score claims the old id


def test_trackers_count_ids_independently() -> None:
    a, b = PoseTracker(), PoseTracker()
    a.update([person(100, 100), person(300, 100)])
    assert ids_of(b.update([person(100, 100)])) == [0]


def test_update_returns_new_poses_and_leaves_inputs_alone() -> None:
    tracker = PoseTracker(smooth=True)
    raw = person(100, 100)
    before = raw.keypoints.copy()
    tracker.update([raw])
    out = tracker.update([person(103, 100)])
    assert out[0].id == 0 and raw.id is None
    np.testing.assert_array_equal(raw.keypoints, before)


def test_smoothing_reduces_jitter_and_follows_ids() -> None:
    rng = np.random.default_rng(0)
    tracker = PoseTracker(smooth=True)
    raw_x, smooth_x = [], []
    for _ in range(40):
        pose = person(200 + rng.normal(0, 1.0), 100)
        out = tracker.update([pose])[0]
        assert out.id == 0
        raw_x.append(pose.keypoints[1, 0])
        smooth_x.append(out.keypoints[1, 0])
    assert np.std(np.diff(smooth_x)) < 0.5 * np.std(np.diff(raw_x))
    # a new person's first smoothed pose is its raw pose (fresh filters)
    newcomer = person(500, 100)
    out = tracker.update([person(200, 100), newcomer])
    assert out[1].id == 1
    np.testing.assert_array_equal(out[1].keypoints, newcomer.keypoints)


def test_smoothing_restarts_a_keypoint_that_was_missing() -> None:
    tracker = PoseTracker(smooth=True)
    tracker.update([person(100, 100)])
    tracker.update([person(100, 100, missing=("r_wri",))])
    keypoints = person(101, 100).numpy()
    keypoints[KEYPOINT_INDEX["r_wri"], :2] = (10.0, 20.0)
    out = tracker.update([Pose(keypoints, 10.0)])[0]
    assert tuple(out.keypoints[KEYPOINT_INDEX["r_wri"], :2]) == (10.0, 20.0)  # fresh filter: unchanged
    assert 100.0 < out.keypoints[1, 0] < 101.0  # the neck is smoothed toward its past


def test_tracker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="min_keypoints"):
        PoseTracker(min_keypoints=0)
    with pytest.raises(ValueError, match="beta"):
        PoseTracker(beta=-1)


def test_stream_gives_tracked_smoothed_poses_per_frame(rendered_estimator, tmp_path: Path) -> None:
    """The rendered people move 4 input pixels (8 image pixels) right per frame: smoothed necks lag behind."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:02d}.png"), np.zeros((256, 256, 3), np.uint8))
    results = list(rendered_estimator.stream(folder, track=True))
    assert len(results) == 5 and all(len(r) == 2 for r in results)
    left = [min(r, key=lambda p: p.xy[1, 0]) for r in results]
    assert len({p.id for p in left}) == 1 and left[0].id is not None
    neck_x = [p.xy[1, 0] for p in left]
    raw = list(rendered_estimator.stream(folder, track=True, smooth=False))
    raw_x = [min(r, key=lambda p: p.xy[1, 0]).xy[1, 0] for r in raw]
    assert all(b - a == pytest.approx(8.0, abs=2.1) for a, b in zip(raw_x, raw_x[1:]))
    assert neck_x[0] == pytest.approx(raw_x[0] - 5 * 8.0, abs=2.1)  # the second run continues the motion
    assert all(0 < x - neck_x[0] < (t * 8.0) for t, x in enumerate(neck_x) if t)  # smoothed: lags the motion
    untracked = list(rendered_estimator.stream(folder, track=False))
    assert all(p.id is None for r in untracked for p in r) and sum(len(r) for r in untracked) > 0
