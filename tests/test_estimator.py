"""PoseEstimator: reference-exact poses, PoseResult, inputs (arrays, paths, URLs, lists) and refused inputs."""

import json

import cv2
import numpy as np
import pytest
import torch

from golden_tolerance import MAX_MOVED_COORDINATES, network_matches_golden
from lightpose import LightweightOpenPose, PoseEstimator, PoseResult
from lightpose.model import load_reference_state
from lightpose.preprocess import MAX_ASPECT_RATIO
from static_server import serve_folder


@pytest.fixture(scope="module")
def golden_estimator(golden_dir) -> PoseEstimator:
    net = LightweightOpenPose()
    checkpoint = torch.load(golden_dir / "checkpoint_random_3stages.pth", map_location="cpu", weights_only=True)
    load_reference_state(net, checkpoint)
    return PoseEstimator(net, device="cpu")


def test_estimator_reproduces_the_reference_demo(golden_dir, people_dir, golden_estimator):
    golden = json.loads((golden_dir / "demo_poses.json").read_text())
    assert sum(len(image["poses"]) for image in golden["images"]) > 0
    strict = network_matches_golden(golden_dir)  # see tests/golden_tolerance.py
    moved: list[np.ndarray] = []
    for image in golden["images"]:
        poses = golden_estimator(people_dir / image["file"])
        assert len(poses) == len(image["poses"]), image["file"]
        for pose, ref in zip(poses, image["poses"], strict=True):
            ref_xy = np.array([[np.nan, np.nan] if k is None else k for k in ref["keypoints"]])
            assert np.array_equal(np.isnan(ref_xy[:, 0]), ~pose.found)
            moved.append(np.abs(np.nan_to_num(pose.xy) - np.nan_to_num(ref_xy)) > 1e-3)
            if strict:
                assert pose.score == pytest.approx(ref["confidence"], abs=1e-6)
            assert pose.grouped_count == ref["num_keypoints"]
    moved_fraction = float(np.concatenate(moved).mean())
    assert moved_fraction == 0 if strict else moved_fraction <= MAX_MOVED_COORDINATES, moved_fraction


def test_result_of_a_photo(people_estimator, people_photos, tmp_path):
    image = cv2.imread(str(people_photos[0]))
    result = people_estimator(image)
    assert isinstance(result, PoseResult) and len(result) > 0
    assert (result.width, result.height) == (image.shape[1], image.shape[0])
    assert result.source is None and result.frame is None and result.timestamp is None
    assert set(result.speed) == {"preprocess", "network", "decode", "tracking"}
    assert result.keypoints.shape == (len(result), 18, 3) and result.keypoints.dtype == np.float32
    np.testing.assert_array_equal(result.keypoints, np.stack([p.keypoints for p in result]))
    np.testing.assert_array_equal(result.scores, [p.score for p in result])
    np.testing.assert_allclose(result.boxes, [p.bbox for p in result])
    assert list(result) == list(result.poses) and result[0] is result.poses[0] and len(result[:1]) == 1
    record = json.loads(result.to_json())
    assert record["width"] == image.shape[1] and len(record["poses"]) == len(result)
    assert PoseResult.from_dict(record).to_dict() == result.to_dict()
    assert len(result.to_coco(7)) == len(result) and result.to_coco(7)[0]["image_id"] == 7
    annotated = result.plot(bbox=True)
    assert annotated.shape == image.shape and (annotated != image).any() and annotated is not image
    result.save(tmp_path / "annotated.png", bbox=True)
    assert np.array_equal(cv2.imread(str(tmp_path / "annotated.png")), annotated)


def test_sequence_input_equals_one_at_a_time(people_estimator, people_photos):
    paths = people_photos[:3]
    batched = people_estimator(paths, batch_size=2)
    assert len(batched) == 3 and sum(len(r) for r in batched) > 0
    for path, result in zip(paths, batched, strict=True):
        single = people_estimator(path)
        assert result.source == str(path) == single.source
        assert len(single) == len(result)
        for a, b in zip(single, result, strict=True):
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-4)


def test_poses_are_in_image_pixels(rendered_estimator):
    """Maps rendered at known input pixels come back at (input pixel - padding) / scale, within a map cell.

    A 256 x 384 (w x h) image at height 128: scale 1/3, resized to 85 x 128 and centre-padded to 128 x 128 (21
    pixels on the left)."""
    image = np.zeros((384, 256, 3), np.uint8)
    result = rendered_estimator(image)
    backend = rendered_estimator._runtime
    assert backend.input_size == (128, 128)
    scale, left = 128 / 384, (128 - round(256 * 128 / 384)) // 2
    expected = [(xy - [left, 0]) / scale for xy in backend.people(0, backend.input_size)]
    assert len(result) == len(expected) == 2
    by_x = sorted(result, key=lambda p: p.xy[1, 0])
    for pose, truth in zip(by_x, expected, strict=True):
        assert pose.num_keypoints == 18
        np.testing.assert_allclose(pose.xy, truth, atol=12.0)  # a map cell: 8 input pixels / 4 * 3 = 6 image px


def test_conf_and_min_keypoints_filter_poses(people_estimator, people_photos):
    everyone = people_estimator(people_photos[0])
    assert len(everyone) > 0
    best = max(p.score for p in everyone)
    assert len(people_estimator(people_photos[0], conf=best)) == 1
    assert len(people_estimator(people_photos[0], min_keypoints=19)) == 0


def test_paths_and_urls_read_the_same_image(people_estimator, people_photos):
    with serve_folder(people_photos[0].parent) as base:
        url = f"{base}/{people_photos[0].name}"
        from_url = people_estimator(url)
        with pytest.raises(Exception, match="404"):
            people_estimator(url + ".missing.jpg")
    from_path = people_estimator(people_photos[0])
    assert from_url.source == url and len(from_url) == len(from_path) > 0
    np.testing.assert_array_equal(from_url.keypoints, from_path.keypoints)


def test_missing_broken_and_truncated_image_files_are_named(tmp_path, rendered_estimator, caplog):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        rendered_estimator(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        rendered_estimator(tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.jpg"):
        rendered_estimator(broken)
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", noise)[1].tobytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg[: len(jpeg) * 7 // 10])
    try:  # OpenCV builds differ: some decode a truncated JPEG (grey rest), others refuse it
        rendered_estimator(truncated)
    except ValueError as error:
        assert "truncated.jpg: a truncated JPEG" in str(error)
    else:
        assert "truncated.jpg: the JPEG data is truncated" in caplog.text


def test_bad_settings_are_refused():
    net = LightweightOpenPose()
    with pytest.raises(ValueError, match="multiple of 8"):
        PoseEstimator(net, height=250)
    for height in ("256", None, 256.0):
        with pytest.raises(TypeError, match="height must be an int"):
            PoseEstimator(net, height=height)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too large"):
        PoseEstimator(net, height=65536)
    with pytest.raises(ValueError, match="batch_size"):
        PoseEstimator(net, height=64)([np.zeros((8, 8, 3), np.uint8)], batch_size=0)
    for model in ("ckpt.pth", None):
        with pytest.raises(TypeError, match="from_pretrained"):
            PoseEstimator(model)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(1, 2000), (2, 2000), (10, 2000), (4, 2000), (2000, 1), (1, 100), (5000, 200)])
def test_extreme_aspect_ratios_are_refused_before_any_work(rendered_estimator, shape):
    image = np.zeros((*shape, 3), np.uint8)
    with pytest.raises(ValueError, match=f"{shape[1]}x{shape[0]}"):
        rendered_estimator(image)
    assert rendered_estimator._runtime.calls == 0


def test_the_largest_allowed_aspect_ratio_runs(rendered_estimator):
    image = np.zeros((16, int(16 * MAX_ASPECT_RATIO), 3), np.uint8)
    assert len(rendered_estimator(image)) > 0


def test_inputs_that_are_neither_images_nor_lists_are_refused(rendered_estimator):
    with pytest.raises(TypeError, match="got int"):
        rendered_estimator(3)
    with pytest.raises(TypeError):
        rendered_estimator([{"image": 1}])
