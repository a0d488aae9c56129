"""MotionTracker on synthetic pose sequences: misses, occlusions, crossings, departures, fragments, smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from lightpose.pose import Pose
from lightpose.skeleton import KEYPOINT_INDEX
from lightpose.tracker import MotionTracker, make_tracker
from lightpose.tracking import PoseTracker
from test_tracking import person


def ids_of(poses: list[Pose]) -> list[int | None]:
    return [p.id for p in poses]


def run(tracker: MotionTracker | PoseTracker, frames: list[list[Pose]]) -> list[list[int | None]]:
    return [ids_of(tracker.update(poses)) for poses in frames]


def walker(t: int, x0: float = 100.0, speed: float = 4.0, y: float = 100.0) -> Pose:
    return person(x0 + speed * t, y)


@pytest.mark.parametrize("hidden", [1, 5, 25])
def test_a_person_hidden_within_the_memory_keeps_the_id(hidden: int) -> None:
    """A walker behind an occluder for `hidden` frames (<= max_age) reappears further on with its id."""
    frames = [[] if 10 <= t < 10 + hidden else [walker(t)] for t in range(20 + hidden)]
    history = run(MotionTracker(smooth=False, max_age=30), frames)
    seen = [ids for ids in history if ids]
    assert len(seen) == 20 and all(ids == [0] for ids in seen)
    # the reference tracker gives the reappearing walker a new id
    assert run(PoseTracker(smooth=False), frames)[-1] == [1]


def test_a_person_gone_longer_than_the_memory_returns_with_a_new_id() -> None:
    frames = [[walker(0)]] * 5 + [[]] * 11 + [[walker(0)]] * 3
    history = run(MotionTracker(smooth=False, max_age=10), frames)
    assert history[4] == [0] and history[-3:] == [[1]] * 3


def test_two_people_crossing_keep_their_ids() -> None:
    """Two walkers pass each other (one slightly lower, as in a street), one partly hidden at the crossing."""
    frames = []
    for t in range(40):
        right = person(100 + 5 * t, 100)
        left = person(300 - 5 * t, 104, missing=("r_wri", "r_elb", "r_ank") if 15 <= t < 25 else ())
        frames.append([left, right] if t % 2 else [right, left])  # the order of poses says nothing
    history = run(MotionTracker(smooth=False), frames)
    assert all(ids == ([1, 0] if t % 2 else [0, 1]) for t, ids in enumerate(history))


def test_a_crossing_with_a_missed_frame_keeps_both_ids() -> None:
    frames = []
    for t in range(40):
        right, left = person(100 + 5 * t, 100), person(300 - 5 * t, 104)
        frames.append([] if t == 20 else [right, left])  # both missed exactly where they overlap
    history = run(MotionTracker(smooth=False), frames)
    assert all(ids == [0, 1] for ids in history if ids)


def test_ids_are_never_reused() -> None:
    tracker = MotionTracker(smooth=False, max_age=2)
    seen: list[int] = []
    for t in range(30):
        poses = [person(100 + 200 * (t % 3), 100)] if t % 4 else []  # people come and go
        seen += [pose_id for pose_id in ids_of(tracker.update(poses)) if pose_id not in seen]  # type: ignore[misc]
    assert seen == sorted(seen) and len(seen) == len(set(seen)) > 3
    tracker.reset()
    assert tracker.update([person(100, 100)])[0].id == max(seen) + 1  # reset forgets tracks, not the counter


def test_fragments_of_one_person_get_one_id() -> None:
    """The decoder splits a tracked person into upper body and legs: one pose, one id, every keypoint."""
    legs = ("r_hip", "r_knee", "r_ank", "l_hip", "l_knee", "l_ank")
    upper = tuple(n for n in KEYPOINT_INDEX if n not in legs)
    tracker = MotionTracker(smooth=False)
    for t in range(5):
        assert ids_of(tracker.update([walker(t)])) == [0]
    out = tracker.update([person(120, 100, score=6.0, missing=legs), person(120, 100, score=3.0, missing=upper)])
    assert ids_of(out) == [0] and out[0].num_keypoints == len(KEYPOINT_INDEX)
    assert out[0].score == pytest.approx(9.0)
    # two separate people side by side stay two
    assert ids_of(tracker.update([walker(6), person(400, 100)])) == [0, 1]


def test_smoothing_follows_the_track_and_restarts_after_a_gap() -> None:
    rng = np.random.default_rng(0)
    tracker = MotionTracker(smooth=True)
    raw_x, smooth_x = [], []
    for _ in range(30):
        pose = person(200 + rng.normal(0, 1.0), 100)
        out = tracker.update([pose])[0]
        raw_x.append(pose.xy[1, 0])
        smooth_x.append(out.xy[1, 0])
    assert np.std(np.diff(smooth_x)) < 0.5 * np.std(np.diff(raw_x))
    tracker.update([])
    back = person(203, 100)
    out = tracker.update([back])[0]
    assert out.id == 0  # same person, and its smoothing starts again from the raw pose
    np.testing.assert_array_equal(out.keypoints, back.keypoints)


def test_inputs_are_left_alone_and_each_tracker_counts_alone() -> None:
    raw = person(100, 100)
    before = raw.keypoints.copy()
    a, b = MotionTracker(), MotionTracker()
    a.update([raw, person(300, 100)])
    assert ids_of(b.update([raw])) == [0] and raw.id is None
    np.testing.assert_array_equal(raw.keypoints, before)


def test_make_tracker_and_bad_settings() -> None:
    assert isinstance(make_tracker("reference", smooth=False), PoseTracker)
    assert make_tracker("motion", max_age=7).max_age == 7  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="unknown tracker 'kalman'"):
        make_tracker("kalman")
    with pytest.raises(ValueError, match="max_age applies"):
        make_tracker("reference", max_age=5)
    with pytest.raises(ValueError, match="max_age"):
        MotionTracker(max_age=-1)
    with pytest.raises(ValueError, match="momentum"):
        MotionTracker(momentum=1.0)


def test_the_reference_tracker_stays_selectable_and_exact() -> None:
    """tracker="reference" is the reference rule: a one-frame miss gives a new id (the golden behaviour of
    tests/test_tracking.py)."""
    reference = make_tracker("reference", smooth=False)
    frames = [[person(100, 100)], [person(102, 100), person(400, 100)], [person(404, 100)], [person(104, 100)]]
    assert run(reference, frames) == [[0], [0, 1], [1], [2]]  # type: ignore[arg-type]
    assert run(MotionTracker(smooth=False), frames) == [[0], [0, 1], [1], [0]]
