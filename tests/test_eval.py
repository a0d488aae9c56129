"""COCO evaluation: oracle maps score AP ~1 end to end, the flip test's mirror mapping, subsets, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lightpose.decode import decode_upsampled, entries_to_poses
from lightpose.estimator import PoseEstimator
from lightpose.model import LightweightOpenPose
from lightpose.preprocess import prepare_input
from lightpose.skeleton import LIMB_PAF_CHANNELS, LIMBS, NECK, flip_permutation
from lightpose.training.evaluate import (
    MULTISCALE_SCALES,
    STAT_NAMES,
    detections_for_image,
    evaluate_coco,
    infer_val_maps,
    score_detections,
)
from lightpose.training.flip import mirror_maps, paf_flip_permutation
from lightpose.training.synthetic import (
    coco_dataset,
    coco_to_internal,
    make_person,
    mirror_people,
)
from lightpose.training.synthetic import render_ideal_maps as render_maps

pytest.importorskip("pycocotools")

# (image_id, file_name, height, width, people): landscape, a larger image (scale 0.8) and a portrait one (width padded).
SCENES = [
    (7, "three.png", 368, 560, np.stack([make_person(x, 30, 300) for x in (100, 280, 460)])),
    (11, "two.png", 460, 400, np.stack([make_person(x, 40, 380) for x in (110, 290)])),
    (42, "portrait.png", 500, 240, np.stack([make_person(120, 30, 440)])),
]


def noise_image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


class OracleBackend:
    """Stands in for the network: recognises each expected network input (image or its mirror, at each scale)
    and returns the stride-8 maps a perfect network would give for that input's people."""

    name = "oracle"

    def __init__(self, scenes: list[tuple[np.ndarray, np.ndarray]], scales: tuple[float, ...]) -> None:
        self.candidates = []
        self.calls = 0
        for image, people in scenes:
            h, w = image.shape[:2]
            for variant, labels in ((image, people), (cv2.flip(image, 1), mirror_people(people, w))):
                for scale in scales:
                    inputs, t = prepare_input(
                        variant, 368, interpolation=cv2.INTER_CUBIC, scale=scale * 368 / h, normalize_first=True
                    )
                    top, left, bottom, right = t.pad
                    content_h, content_w = t.input_size[0] - top - bottom, t.input_size[1] - left - right
                    # cv2.resize maps image x to (x + 0.5) * content_w / w - 0.5 (pixel centres aligned).
                    xy = (labels + 0.5) * np.array([content_w / w, content_h / h]) - 0.5 + np.array([left, top])
                    self.candidates.append((inputs, xy))

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        x = batch[0]
        for inputs, xy in self.candidates:
            if inputs.shape == x.shape and np.allclose(inputs, x, atol=1e-3):
                shape = (x.shape[1] // 8, x.shape[2] // 8)
                heatmaps, pafs = render_maps(xy, shape, step=8, offset=3.5, sigma=7, paf_width=8)
                return heatmaps.transpose(2, 0, 1)[None], pafs.transpose(2, 0, 1)[None]
        raise AssertionError(f"unexpected network input of shape {x.shape}")


@pytest.fixture(scope="module")
def oracle_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    root = tmp_path_factory.mktemp("oracle")
    images = root / "images"
    images.mkdir()
    scenes = []
    for seed, (_, file_name, h, w, people) in enumerate(SCENES):
        image = noise_image(h, w, seed)
        cv2.imwrite(str(images / file_name), image)  # PNG: read back exactly
        scenes.append((image, people))
    labels = root / "labels.json"
    labels.write_text(json.dumps(coco_dataset(SCENES)))
    return labels, images, scenes


def test_oracle_maps_at_image_resolution_score_ap_1():
    """Ideal maps at image resolution -> decoding -> +0.5, COCO-17 order -> pycocotools: AP ~ 1."""
    detections = []
    for image_id, _, h, w, people in SCENES:
        heatmaps, pafs = render_maps(people, (h, w), sigma=3, paf_width=3)
        found = detections_for_image(heatmaps, pafs, image_id)
        assert len(found) == len(people)
        detections += found
    stats = score_detections(coco_dataset(SCENES), detections)
    assert list(stats) == list(STAT_NAMES)
    assert stats["AP"] >= 0.99 and stats["AR"] >= 0.99


def test_oracle_detections_are_the_labels_shifted_by_half_a_pixel():
    _, _, h, w, people = SCENES[0]
    heatmaps, pafs = render_maps(people + 0.25, (h, w), sigma=3, paf_width=3)  # peaks round to the labels
    found = sorted(detections_for_image(heatmaps, pafs, 7), key=lambda d: d["keypoints"][0])
    for detection, person in zip(found, people):
        assert detection["image_id"] == 7 and detection["category_id"] == 1
        in_coco = np.arange(18) != NECK  # COCO has no neck
        expected = np.round(person[in_coco]) + 0.5
        np.testing.assert_allclose(coco_to_internal(detection["keypoints"])[in_coco], expected, atol=1e-9)


@pytest.mark.parametrize(("multiscale", "flip"), [(False, False), (False, True), (True, False)])
def test_oracle_network_through_the_val_pipeline_scores_ap_1(oracle_dataset, tmp_path, multiscale, flip):
    """Stride-8 ideal maps of the padded, rescaled input go through upsampling, crop, resize to the image,
    (scale averaging, flip mapping), decoding and COCO conversion: AP ~ 1 only if every transform is right."""
    labels, images, scenes = oracle_dataset
    scales = MULTISCALE_SCALES if multiscale else (1.0,)
    backend = OracleBackend(scenes, scales)
    output = tmp_path / "detections.json"
    stats = evaluate_coco(
        PoseEstimator(backend), labels, images, multiscale=multiscale, flip=flip, output_path=output, progress=False
    )
    assert backend.calls == len(SCENES) * len(scales) * (2 if flip else 1)
    assert stats["AP"] >= 0.99, stats
    written = json.loads(output.read_text())
    assert sorted({d["image_id"] for d in written}) == [7, 11, 42]
    assert len(written) == sum(len(people) for *_, people in SCENES)


def test_flip_test_of_an_ideal_network_gives_back_its_maps(oracle_dataset):
    """An ideal network sees the mirrored people on the mirrored image: mapped back, its maps are the plain ones
    (the first scene's width is a multiple of 8, so both inputs sit on the same stride-8 grid)."""
    _, _, scenes = oracle_dataset
    estimator = PoseEstimator(OracleBackend(scenes[:1], (1.0,)))
    heatmaps, pafs = infer_val_maps(estimator, scenes[0][0])
    flip_heatmaps, flip_pafs = infer_val_maps(estimator, scenes[0][0], flip=True)
    assert heatmaps.max() > 0.9 and np.abs(pafs).max() > 0.9
    np.testing.assert_allclose(flip_heatmaps, heatmaps, atol=1e-5)
    np.testing.assert_allclose(flip_pafs, pafs, atol=1e-5)


def test_paf_flip_permutation_pairs_mirrored_limbs():
    perm, sign = paf_flip_permutation()
    kp = flip_permutation()
    for (a, b), (cx, cy) in zip(LIMBS, LIMB_PAF_CHANNELS):
        other = LIMB_PAF_CHANNELS[LIMBS.index((int(kp[a]), int(kp[b])))]
        assert (perm[cx], perm[cy]) == other
        assert (sign[cx], sign[cy]) == (-1, 1)
    # r_sho -> r_elb (channels 14, 15) <-> l_sho -> l_elb (22, 23); neck -> nose (28, 29) maps to itself.
    assert tuple(perm[[14, 15, 22, 23, 28, 29]]) == (22, 23, 14, 15, 28, 29)


def test_mirrored_maps_of_the_mirrored_image_give_the_same_poses():
    _, _, h, w, people = SCENES[0]
    heatmaps, pafs = render_maps(people, (h, w), sigma=3, paf_width=3)
    mirrored_heatmaps, mirrored_pafs = render_maps(mirror_people(people, w), (h, w), sigma=3, paf_width=3)
    back_heatmaps, back_pafs = mirror_maps(mirrored_heatmaps, mirrored_pafs)
    np.testing.assert_allclose(back_heatmaps, heatmaps, atol=1e-6)
    np.testing.assert_allclose(back_pafs, pafs, atol=1e-6)

    def poses(hm, paf):
        entries, keypoints = decode_upsampled(hm.transpose(2, 0, 1).copy(), paf.transpose(2, 0, 1).copy())
        return sorted((p.keypoints for p in entries_to_poses(entries, keypoints)), key=lambda k: k[0, 0])

    direct = poses(heatmaps, pafs)
    assert len(direct) == 3
    for a, b in zip(direct, poses(back_heatmaps, back_pafs)):
        np.testing.assert_array_equal(a, b)
    # Without the channel swap the mirrored maps decode to different (left/right-swapped) poses.
    for a, b in zip(direct, poses(mirrored_heatmaps[:, ::-1].copy(), mirrored_pafs[:, ::-1].copy())):
        assert not np.array_equal(a, b)


def test_flip_test_maps_are_mirror_symmetric_with_a_real_network():
    torch.manual_seed(0)
    estimator = PoseEstimator(LightweightOpenPose(), device="cpu")
    image = noise_image(40, 72, seed=5)
    heatmaps, pafs = infer_val_maps(estimator, image, flip=True, height=64)
    assert heatmaps.shape == (40, 72, 19) and pafs.shape == (40, 72, 38)
    assert heatmaps.dtype == pafs.dtype == np.float32
    mirrored = mirror_maps(*infer_val_maps(estimator, cv2.flip(image, 1), flip=True, height=64))
    np.testing.assert_array_equal(mirrored[0], heatmaps)
    np.testing.assert_array_equal(mirrored[1], pafs)
    plain, _ = infer_val_maps(estimator, image, height=64)
    assert not np.allclose(plain, heatmaps)


def test_subset_evaluates_the_reference_selection(oracle_dataset, tmp_path):
    import random

    labels, images, scenes = oracle_dataset
    order = list(range(len(SCENES)))
    random.seed(0)
    random.shuffle(order)  # the reference make_val_subset.py
    expected_ids = {SCENES[i][0] for i in order[:2]}
    output = tmp_path / "detections.json"
    backend = OracleBackend(scenes, (1.0,))
    evaluate_coco(PoseEstimator(backend), labels, images, subset=2, output_path=output, progress=False)
    assert backend.calls == 2
    assert {d["image_id"] for d in json.loads(output.read_text())} == expected_ids


class ZeroBackend:
    name = "zero"

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, _, h, w = batch.shape
        return np.zeros((n, 19, h // 8, w // 8), np.float32), np.zeros((n, 38, h // 8, w // 8), np.float32)


def test_zero_detections_give_ap_0(oracle_dataset, tmp_path):
    labels, images, _ = oracle_dataset
    output = tmp_path / "detections.json"
    stats = evaluate_coco(PoseEstimator(ZeroBackend()), labels, images, output_path=output, progress=False)
    assert stats == dict.fromkeys(STAT_NAMES, 0.0)
    assert json.loads(output.read_text()) == []


def test_interrupt_keeps_the_detections_so_far(oracle_dataset, tmp_path, caplog):
    labels, images, scenes = oracle_dataset
    oracle = OracleBackend(scenes, (1.0,))

    def interrupted(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if oracle.calls == 1:
            raise KeyboardInterrupt
        return oracle(batch)

    output = tmp_path / "detections.json"
    with pytest.raises(KeyboardInterrupt), caplog.at_level("WARNING", logger="lightpose.training.evaluate"):
        evaluate_coco(PoseEstimator(interrupted), labels, images, output_path=output, progress=False)
    assert {d["image_id"] for d in json.loads(output.read_text())} == {SCENES[0][0]}
    assert f"stopped after 1 of 3 images: their 3 detections are in {output}" in caplog.text


def test_missing_images_are_named_and_counted(oracle_dataset, tmp_path):
    labels, images, _ = oracle_dataset
    data = json.loads(labels.read_text())
    data["images"] += [{"id": 90, "file_name": "gone_a.jpg"}, {"id": 91, "file_name": "gone_b.jpg"}]
    bad = tmp_path / "labels.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(FileNotFoundError, match=r"2 of 5 image files are missing .* the first: gone_a\.jpg"):
        evaluate_coco(PoseEstimator(ZeroBackend()), bad, images, progress=False)
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        evaluate_coco(PoseEstimator(ZeroBackend()), labels, tmp_path / "nowhere", progress=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: [a.pop("keypoints") for a in d["annotations"]], "has no \\['keypoints'\\]"),
        (lambda d: d.pop("categories"), "no person category"),
        (lambda d: d["categories"][0].pop("keypoints"), "no person category"),
        (lambda d: d.pop("annotations"), "no 'images' and 'annotations'"),
        (lambda d: d.update(images=[]), "holds no images"),
        (lambda d: [a.pop("num_keypoints") for a in d["annotations"]], "has no \\['num_keypoints'\\]"),
        (lambda d: d["annotations"][0].update(keypoints=[1.0] * 30), "has 30 keypoint values, .* need 51"),
    ],
)
def test_annotation_files_without_keypoints_are_refused(oracle_dataset, tmp_path, change, message):
    labels, images, _ = oracle_dataset
    data = json.loads(labels.read_text())
    change(data)
    bad = tmp_path / "labels.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        evaluate_coco(PoseEstimator(ZeroBackend()), bad, images, progress=False)


def test_bad_scales_and_missing_pycocotools(monkeypatch):
    estimator = PoseEstimator(ZeroBackend())
    with pytest.raises(ValueError, match="scales"):
        infer_val_maps(estimator, noise_image(16, 16, 0), scales=())
    with pytest.raises(ValueError, match="height"):
        infer_val_maps(estimator, noise_image(16, 16, 0), height=4)
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    with pytest.raises(ImportError, match=r'pip install "lightpose\[train\]"'):
        score_detections({}, [])


# ---- outputs checked first, late write failures, unscorable labels, bad detections ------------------------------


def test_an_unwritable_output_is_refused_before_any_inference(oracle_dataset, tmp_path):
    labels, images, scenes = oracle_dataset
    backend = OracleBackend(scenes, (1.0,))
    (tmp_path / "a_file").write_text("")
    for output in (tmp_path / "a_file" / "detections.json", tmp_path):
        with pytest.raises(ValueError, match="choose another location|is a folder"):
            evaluate_coco(PoseEstimator(backend), labels, images, output_path=output, progress=False)
    assert backend.calls == 0


def test_detections_are_written_with_the_umask_mode(oracle_dataset, tmp_path):
    import os

    labels, images, _ = oracle_dataset
    output = tmp_path / "detections.json"
    previous = os.umask(0o022)
    try:
        evaluate_coco(PoseEstimator(ZeroBackend()), labels, images, output_path=output, progress=False)
    finally:
        os.umask(previous)
    assert output.stat().st_mode & 0o777 == 0o644


def output_folder_replaced_by_a_file(backend: OracleBackend, folder: Path):
    """The backend, except that on its last call the output folder becomes a file: the final write fails."""

    def network(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if backend.calls == len(SCENES) - 1:
            for child in folder.iterdir():
                child.unlink()
            folder.rmdir()
            folder.write_text("in the way")
        return backend(batch)

    return network


def test_a_late_write_failure_saves_the_detections_elsewhere_and_keeps_the_ap(oracle_dataset, tmp_path, monkeypatch):
    import tempfile

    from lightpose.errors import OutputWriteError

    labels, images, scenes = oracle_dataset
    spare = tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    folder = tmp_path / "out"
    folder.mkdir()
    network = output_folder_replaced_by_a_file(OracleBackend(scenes, (1.0,)), folder)
    with pytest.raises(OutputWriteError, match=r"could not write the detections to .*out/det\.json .* instead") as info:
        evaluate_coco(PoseEstimator(network), labels, images, output_path=folder / "det.json", progress=False)
    assert info.value.result["AP"] >= 0.99  # the finished run's numbers
    assert info.value.saved_to is not None and info.value.saved_to.parent == spare
    assert info.value.saved_to.name.startswith("det-") and str(info.value.saved_to) in str(info.value)
    assert len(json.loads(info.value.saved_to.read_text())) == sum(len(people) for *_, people in SCENES)

    folder.unlink()
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "a_file_too"))
    (tmp_path / "a_file_too").write_text("")
    network = output_folder_replaced_by_a_file(OracleBackend(scenes, (1.0,)), folder)
    with pytest.raises(OutputWriteError, match="nor to the temp folder") as info:
        evaluate_coco(PoseEstimator(network), labels, images, output_path=folder / "det.json", progress=False)
    assert info.value.saved_to is None and info.value.result["AP"] >= 0.99


def unscorable(data: dict) -> None:
    for annotation in data["annotations"][1:]:
        annotation["num_keypoints"] = 0
    data["annotations"][0]["iscrowd"] = 1


@pytest.mark.parametrize(
    "change",
    [lambda d: d.update(annotations=[]), unscorable],
    ids=["no annotations", "only crowds and people without keypoints"],
)
def test_labels_without_a_scorable_person_are_refused_before_inference(oracle_dataset, tmp_path, change):
    labels, images, scenes = oracle_dataset
    data = json.loads(labels.read_text())
    change(data)
    bad = tmp_path / "labels.json"
    bad.write_text(json.dumps(data))
    backend = OracleBackend(scenes, (1.0,))
    with pytest.raises(ValueError, match="no annotated person with keypoints .* AP is undefined"):
        evaluate_coco(PoseEstimator(backend), bad, images, progress=False)
    assert backend.calls == 0
    with pytest.raises(ValueError, match="AP is undefined"):
        score_detections(data, [])


def test_a_subset_without_people_is_refused(oracle_dataset, tmp_path):
    labels, images, _ = oracle_dataset
    data = json.loads(labels.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] == 11]  # not drawn: 7 and 42 are
    bad = tmp_path / "labels.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="the 2 evaluated images hold no annotated person"):
        evaluate_coco(PoseEstimator(ZeroBackend()), bad, images, subset=2, progress=False)


def good_detection() -> dict:
    return {"image_id": 7, "category_id": 1, "keypoints": [10.0, 20.0, 1.0] * 17, "score": 0.9}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(image_id=999), "detection 1 has image_id 999, which is not an image of the annotations"),
        (lambda d: d.update(image_id=[7]), "has image_id \\[7\\]"),
        (lambda d: d.update(keypoints=[1.0] * 30), "has 30 keypoint values, not 51 .*17 keypoints"),
        (lambda d: d.update(keypoints="nose"), "has str keypoint values"),
        (lambda d: d["keypoints"].__setitem__(4, float("nan")), "not finite numbers"),
        (lambda d: d.update(category_id=2), "category_id 2, not 1"),
        (lambda d: d.pop("score"), "has no \\['score'\\]"),
        (lambda d: d.update(score=None), "score None"),
    ],
)
def test_detections_that_do_not_fit_the_labels_are_refused_by_name(change, message):
    bad = good_detection()
    change(bad)
    with pytest.raises(ValueError, match=message):
        score_detections(coco_dataset(SCENES), [good_detection(), bad])
    with pytest.raises(ValueError, match="detection 0 is a list"):
        score_detections(coco_dataset(SCENES), [[1, 2]])  # type: ignore[list-item]
