"""CocoKeypointsDataset and augmentations: golden reproduction, crowd masks, flips, determinism, bad input."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lightpose.errors import UnreadableSamplesError
from lightpose.skeleton import flip_permutation
from lightpose.training.augment import ConvertKeypoints, CropPad, Flip, Rotate, Scale
from lightpose.training.dataset import MAX_REPLACEMENTS, CocoKeypointsDataset, crowd_mask
from lightpose.training.labels import prepare_labels_from_coco, save_prepared_labels

KEYS = ("image", "keypoint_maps", "keypoint_mask", "paf_maps", "paf_mask")
# The golden files were made with OpenCV 5.0.0 (opencv-python-headless 5.0.0.93; see the golden README). The
# augmented image is OpenCV's arithmetic (warpAffine, resize), not ours: other OpenCV versions round a few
# interpolated pixels differently (5.1.0: 31 of 406,272 values by one grey level, 1/256 after normalising).
GOLDEN_OPENCV = "5.0.0"
IMAGE_TOLERANCE = 1 / 256  # one grey level of the (x - 128) / 256 input
IMAGE_MAX_DIFFERING = 1e-3  # at most 0.1% of the values may differ by that level
# COCO-order keypoints as fractions of the person's bbox (x, y): nose, eyes, ears, shoulders, elbows, wrists, ...
_BODY = [
    (0.5, 0.1), (0.55, 0.07), (0.45, 0.07), (0.6, 0.08), (0.4, 0.08), (0.7, 0.25), (0.3, 0.25), (0.8, 0.4),
    (0.2, 0.4), (0.85, 0.55), (0.15, 0.55), (0.6, 0.6), (0.4, 0.6), (0.62, 0.8), (0.38, 0.8), (0.63, 0.97),
    (0.37, 0.97),
]  # fmt: skip


def _person(ann_id: int, image_id: int, bbox: list[float], visible: int = 17) -> dict:
    keypoints: list[float] = []
    for k, (fx, fy) in enumerate(_BODY):
        keypoints += [bbox[0] + fx * bbox[2], bbox[1] + fy * bbox[3], 2] if k < visible else [0, 0, 0]
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": visible,
        "keypoints": keypoints, "bbox": bbox, "area": bbox[2] * bbox[3], "segmentation": [],
    }  # fmt: skip


def _uncompressed_rle(binary: np.ndarray) -> dict:
    """COCO uncompressed RLE (column-major runs, starting with zeros) of a (h, w) 0/1 array."""
    flat = binary.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {"counts": counts, "size": list(binary.shape)}


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    """(prepared labels path, images folder): image 1 is 200x160 with two main persons and two crowd regions
    (an RLE at rows 0-47, columns 0-63 and a polygon at x 136-200, y 112-160); image 2 is 60x90."""
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), rng.integers(0, 256, (160, 200, 3), dtype=np.uint8))
    cv2.imwrite(str(images / "b.png"), rng.integers(0, 256, (90, 60, 3), dtype=np.uint8))
    rle_region = np.zeros((160, 200), np.uint8)
    rle_region[:48, :64] = 1
    crowd_rle = {**_person(10, 1, [0, 0, 64, 48], 0), "iscrowd": 1, "segmentation": _uncompressed_rle(rle_region)}
    crowd_polygon = {
        **_person(11, 1, [136, 112, 64, 48], 0),
        "iscrowd": 1,
        "segmentation": [[136, 112, 200, 112, 200, 160, 136, 160]],
    }
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 200, "height": 160},
            {"id": 2, "file_name": "b.png", "width": 60, "height": 90},
        ],
        "annotations": [
            _person(1, 1, [60, 20, 80, 130]),
            _person(2, 1, [150, 20, 40, 60], 6),
            crowd_rle,
            crowd_polygon,
            _person(3, 2, [10, 10, 40, 70], 5),
        ],
    }
    labels = tmp_path / "prepared.json"
    save_prepared_labels(prepare_labels_from_coco(coco), labels)
    return labels, images


def test_golden_unaugmented_samples(golden_dir: Path, people_dir: Path) -> None:
    golden = np.load(golden_dir / "targets.npz")
    dataset = CocoKeypointsDataset(golden_dir / "prepared_labels.json", people_dir, augment=False)
    for n, index in enumerate(golden["sample_indices"].tolist()):
        sample = dataset[index]
        for key in KEYS:
            expected = golden[str(golden["image_keys"][n])] if key == "image" else golden[f"s{n}_{key}"]
            np.testing.assert_array_equal(sample[key], expected, err_msg=f"s{n} {key}")
        np.testing.assert_array_equal(dataset.transformed_sample(index).mask, golden[f"s{n}_mask"])
    # Sample 1 (548x342, round(342/8) = 43 != 42) crashes the reference; here its mask fits the maps.
    sample = dataset[1]
    assert sample["keypoint_maps"].shape == sample["keypoint_mask"].shape == (19, 42, 68)
    assert sample["paf_mask"].shape == (38, 42, 68) and np.all(sample["paf_mask"] == 1)


class _Draws:
    """Stands in for a Generator: returns the reference's recorded random.random() values in order."""

    def __init__(self, values: np.ndarray) -> None:
        self._values = iter(values.tolist())

    def random(self) -> float:
        return next(self._values)


def test_golden_augmented_sample_with_reference_draws(golden_dir: Path, people_dir: Path) -> None:
    golden = np.load(golden_dir / "targets.npz")
    dataset = CocoKeypointsDataset(golden_dir / "prepared_labels.json", people_dir)
    draws = _Draws(golden["aug_random_draws"])
    params = [transform.sample_params(draws) for transform in dataset.transforms]  # type: ignore[arg-type]
    assert params[1:] == [pytest.approx(0.954773, abs=1e-6), pytest.approx(-6.354274, abs=1e-6), (-19, 0), True]
    sample = dataset.raw_sample(int(golden["aug_index"]))
    for transform, param in zip(dataset.transforms, params):
        sample = transform.apply(sample, param)
    np.testing.assert_array_equal(sample.keypoints[0], golden["aug_label_keypoints"])
    np.testing.assert_array_equal(sample.keypoints[1:], golden["aug_label_other_keypoints"])
    np.testing.assert_array_equal(sample.objpos, golden["aug_label_objpos"])
    np.testing.assert_array_equal(sample.mask, golden["aug_mask"])
    targets = dataset.make_targets(sample)
    for key in KEYS[1:]:  # the targets are our arithmetic on the labels: exact under any OpenCV
        np.testing.assert_array_equal(targets[key], golden[f"aug_{key}"], err_msg=key)
    _assert_golden_image(targets["image"], golden["aug_image"])


def _assert_golden_image(image: np.ndarray, expected: np.ndarray) -> None:
    """Exact under the golden's OpenCV; within one grey level on at most 0.1% of the values under another."""
    if cv2.__version__ == GOLDEN_OPENCV:
        np.testing.assert_array_equal(image, expected)
        return
    difference = np.abs(image.astype(np.float64) - expected)
    assert difference.max() <= IMAGE_TOLERANCE + 1e-9, f"OpenCV {cv2.__version__}: max difference {difference.max()}"
    differing = float((difference > 0).mean())
    assert differing <= IMAGE_MAX_DIFFERING, f"OpenCV {cv2.__version__}: {differing:.2%} of the values differ"


def test_augmented_output_contract(tiny: tuple[Path, Path]) -> None:
    dataset = CocoKeypointsDataset(*tiny)
    assert len(dataset) == 3
    for index in range(len(dataset)):
        sample = dataset[index]
        assert set(sample) == {*KEYS, "skipped"}
        assert all(sample[key].dtype == np.float32 for key in KEYS)
        assert sample["skipped"].dtype == np.int64 and (sample["skipped"] == -1).all()
        assert sample["image"].shape == (3, 368, 368)
        assert sample["keypoint_maps"].shape == sample["keypoint_mask"].shape == (19, 46, 46)
        assert sample["paf_maps"].shape == sample["paf_mask"].shape == (38, 46, 46)
        assert sample["image"].min() >= -0.5 and sample["image"].max() < 0.5
        assert set(np.unique(sample["keypoint_mask"])) <= {0.0, 1.0}
        assert sample["keypoint_maps"][:18].max() > 0.5  # the main person is in the crop
        np.testing.assert_array_equal(sample["keypoint_maps"][18], 1 - sample["keypoint_maps"][:18].max(axis=0))


def test_crowd_rle_and_polygon_zero_the_mask(tiny: tuple[Path, Path]) -> None:
    sample = CocoKeypointsDataset(*tiny, augment=False)[0]
    mask = sample["keypoint_mask"]
    assert mask.shape == (19, 20, 25)
    assert np.all(mask[:, :6, :8] == 0)  # RLE region, 8-pixel aligned
    assert np.all(mask[:, 6:, :8] == 1) and np.all(mask[:, :6, 8:17] == 1)
    assert np.all(mask[:, 15:19, 18:24] == 0)  # polygon interior
    assert np.all(mask[:, :13, 9:] == 1)
    np.testing.assert_array_equal(sample["paf_mask"], np.repeat(mask[:1], 38, axis=0))


def test_unaugmented_mask_fits_maps_when_side_rounds_up(tiny: tuple[Path, Path]) -> None:
    sample = CocoKeypointsDataset(*tiny, augment=False)[2]  # 60x90: round(60 / 8) = 8 but maps have 7 columns
    assert sample["image"].shape == (3, 90, 60)
    assert sample["keypoint_maps"].shape == sample["keypoint_mask"].shape == (19, 11, 7)
    assert sample["paf_mask"].shape == (38, 11, 7)


def test_flip_mirrors_image_and_swaps_left_right_heatmaps(tiny: tuple[Path, Path]) -> None:
    dataset = CocoKeypointsDataset(*tiny)
    sample = dataset.raw_sample(0)
    for transform, param in [(ConvertKeypoints(), None), (Scale(), 1.0), (Rotate(), 0.0), (CropPad(), (0, 0))]:
        sample = transform.apply(sample, param)
    plain = dataset.make_targets(Flip().apply(sample, False))
    flipped = dataset.make_targets(Flip().apply(sample, True))
    np.testing.assert_array_equal(flipped["image"], plain["image"][:, :, ::-1])
    mirrored = plain["keypoint_maps"][:18][flip_permutation()][:, :, ::-1]
    np.testing.assert_allclose(flipped["keypoint_maps"][:18], mirrored, atol=1e-6)
    assert not np.allclose(flipped["keypoint_maps"][:18], plain["keypoint_maps"][:18][:, :, ::-1], atol=1e-3)


def test_random_parameters_stay_in_the_reference_ranges(tiny: tuple[Path, Path]) -> None:
    rng = np.random.default_rng(0)
    scales = [Scale().sample_params(rng) for _ in range(200)]
    angles = [Rotate().sample_params(rng) for _ in range(200)]
    offsets = np.array([CropPad().sample_params(rng) for _ in range(200)])
    flips = [Flip().sample_params(rng) for _ in range(200)]
    assert min(scales) >= 0.5 and max(scales) <= 1.1 and max(scales) - min(scales) > 0.5
    assert min(angles) >= -40 and max(angles) <= 40 and max(angles) - min(angles) > 70
    assert offsets.dtype.kind == "i" and offsets.min() >= -40 and offsets.max() <= 40
    assert 50 < sum(flips) < 150
    chain = [type(t) for t in CocoKeypointsDataset(*tiny).transforms]
    assert chain == [ConvertKeypoints, Scale, Rotate, CropPad, Flip]


def _batches(dataset: CocoKeypointsDataset, workers: int) -> list[dict[str, torch.Tensor]]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=workers)
    return list(loader)


def test_determinism_across_workers_and_epochs(tiny: tuple[Path, Path]) -> None:
    dataset = CocoKeypointsDataset(*tiny, seed=5)
    dataset.set_epoch(3)
    serial, parallel = _batches(dataset, 0), _batches(dataset, 2)
    for a, b in zip(serial, parallel, strict=True):
        for key in KEYS:
            assert torch.equal(a[key], b[key]), key
    again = CocoKeypointsDataset(*tiny, seed=5)
    again.set_epoch(3)
    np.testing.assert_array_equal(again[1]["image"], dataset[1]["image"])
    dataset.set_epoch(4)
    assert not np.array_equal(dataset[1]["image"], serial[0]["image"][1].numpy())
    assert not np.array_equal(CocoKeypointsDataset(*tiny, seed=6)[0]["image"], again[0]["image"])
    with pytest.raises(ValueError, match="epoch"):
        dataset.set_epoch(-1)


def test_missing_image_names_file_and_folder(tiny: tuple[Path, Path]) -> None:
    labels, images = tiny
    (images / "b.png").unlink()
    dataset = CocoKeypointsDataset(labels, images)
    with pytest.raises(FileNotFoundError, match="b.png") as info:
        dataset.raw_sample(2)
    assert str(images) in str(info.value)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        CocoKeypointsDataset(labels, images / "nowhere")
    with pytest.raises(IndexError):
        dataset[3]


def test_image_size_must_match_label(tiny: tuple[Path, Path]) -> None:
    labels, images = tiny
    cv2.imwrite(str(images / "b.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="b.png is 10x10 but its label says 60x90"):
        CocoKeypointsDataset(labels, images).raw_sample(2)


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_unreadable_sample_is_replaced_by_the_next_with_a_warning(
    tiny: tuple[Path, Path], damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    labels, images = tiny
    if damage == "missing":
        (images / "a.png").unlink()
    else:
        (images / "a.png").write_bytes(b"")
    dataset = CocoKeypointsDataset(labels, images)
    with caplog.at_level(logging.WARNING):
        item = dataset[0]  # samples 0 and 1 are a.png: both skipped, sample 2 (b.png) replaces them
    assert item["skipped"].tolist() == [0, 1] + [-1] * (MAX_REPLACEMENTS - 2)
    np.testing.assert_array_equal(item["image"], dataset[2]["image"])
    assert sum("skipping unreadable training sample" in r.getMessage() for r in caplog.records) == 2
    assert "a.png" in caplog.text
    (images / "b.png").unlink()
    with pytest.raises(
        UnreadableSamplesError,
        match=r"3 samples in a row \(in label order, from sample 2\) could not be read.*images folder",
    ):
        dataset[2]


@pytest.mark.parametrize(
    ("content", "message"),
    [([], "no samples"), ({"annotations": []}, "JSON list"), ([{"keypoints": []}], "lacks")],
)
def test_bad_labels_raise_value_error_naming_the_file(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as info:
        CocoKeypointsDataset(path, tmp_path)
    assert "labels.json" in str(info.value)
    with pytest.raises(ValueError, match="no samples"):
        CocoKeypointsDataset([], tmp_path)


def test_crowd_mask_without_pycocotools_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    assert crowd_mask([], 4, 4).all()  # no crowd: pycocotools is not needed
    with pytest.raises(ImportError, match=r"pip install lightpose\[train\]"):
        crowd_mask([[0, 0, 4, 0, 4, 4]], 4, 4)
