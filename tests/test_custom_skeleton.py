"""Custom skeletons end to end: build, prepare labels, train, save, reload, decode, evaluate, draw."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lightpose.cli.main import main
from lightpose.decode import decode_maps, entries_to_poses
from lightpose.draw import draw_poses
from lightpose.errors import CheckpointError
from lightpose.estimator import PoseEstimator
from lightpose.skeleton import COCO_17, COCO_SKELETON, DEFAULT_SIGMA, OPENPOSE_COCO, STRIDE, Skeleton, get_skeleton
from lightpose.training.dataset import CocoKeypointsDataset
from lightpose.training.evaluate import STAT_NAMES, detections_for_image, evaluate_coco, oks_sigmas, score_detections
from lightpose.training.flip import mirror_maps
from lightpose.training.labels import choose_skeleton, load_prepared
from lightpose.training.synthetic import render_ideal_maps
from lightpose.weights import load_model
from stick_people import COCO_KEYPOINT_NAMES, make_stick_dataset

# Five keypoints picked from the stick people's COCO-17 labels (nose, wrists, ankles), joined as a star + one extra.
FIVE_FROM_COCO = (0, 9, 10, 15, 16)
FIVE = {
    "id": 1,
    "name": "star",
    "keypoints": ["head", "left_hand", "right_hand", "left_foot", "right_foot"],
    "skeleton": [[1, 2], [1, 3], [1, 4], [1, 5], [4, 5]],
}
SIZE = (96, 128)  # stick images (height, width)
NET = 64  # training crop side and prepared net input size


def five_dataset(folder: Path) -> tuple[Path, Path]:
    """The stick people with 5-keypoint labels of the FIVE category (COCO format)."""
    labels, images = make_stick_dataset(folder, num_images=4, size=SIZE, people=2)
    coco = json.loads(labels.read_text())
    for annotation in coco["annotations"]:
        flat = np.asarray(annotation["keypoints"]).reshape(17, 3)[list(FIVE_FROM_COCO)]
        annotation["keypoints"] = [float(v) for v in flat.ravel()]
        annotation["num_keypoints"] = len(FIVE_FROM_COCO)
    coco["categories"] = [FIVE]
    labels.write_text(json.dumps(coco))
    return labels, images


def coco17_dataset(folder: Path) -> tuple[Path, Path]:
    return make_stick_dataset(folder, num_images=4, size=SIZE, people=2)


DATASETS = {"coco-17": (coco17_dataset, "coco-17"), "five": (five_dataset, "from-category")}


def people_of(coco: dict, image_id: int, k: int) -> np.ndarray:
    """(P, K, 2) labelled keypoints of an image."""
    rows = [a["keypoints"] for a in coco["annotations"] if a["image_id"] == image_id]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), k, 3)[..., :2]


# -- building skeletons (items 1 and 4) --------------------------------------------------------------------------


def test_from_coco_category_orders_a_spanning_tree_with_redundant_extras():
    skeleton = Skeleton.from_coco_category(FIVE)
    assert skeleton.name == "star" and skeleton.keypoints == tuple(FIVE["keypoints"])
    assert skeleton.limbs == ((0, 1), (0, 2), (0, 3), (0, 4), (3, 4))
    assert skeleton.redundant_limbs == (4,) and skeleton.drawn_limbs == (0, 1, 2, 3)
    assert skeleton.paf_channels == tuple((2 * i, 2 * i + 1) for i in range(5))
    assert skeleton.flip_pairs == ((1, 2), (3, 4))
    assert skeleton.sigmas == (DEFAULT_SIGMA,) * 5 and skeleton.coco_index is None
    assert (skeleton.num_heatmaps, skeleton.num_pafs) == (6, 10)
    assert Skeleton.from_dict(skeleton.to_dict()) == skeleton
    # a chain listed leaves-first still grows from the first keypoint, each limb starting where one ends
    chain = Skeleton.from_coco_category(
        {"name": "c", "keypoints": ["a", "b", "c", "d"], "skeleton": [[3, 4], [2, 3], [1, 2]]}
    )
    assert chain.limbs == ((0, 1), (1, 2), (2, 3)) and chain.redundant_limbs == ()
    given = Skeleton.from_coco_category({**FIVE, "sigmas": [0.1, 0.2, 0.2, 0.3, 0.3]})
    assert given.sigmas == (0.1, 0.2, 0.2, 0.3, 0.3)


def test_coco_17_is_the_coco_layout_without_the_neck():
    assert get_skeleton("coco-17") is COCO_17 and get_skeleton("openpose-coco-18") is OPENPOSE_COCO
    assert COCO_17.keypoints == COCO_KEYPOINT_NAMES
    assert COCO_17.limbs[0] == (0, 5)  # nose - left shoulder: the body hangs from the nose
    coco_sigmas = (
        np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
        / 10.0
    )
    assert np.array_equal(np.array(COCO_17.sigmas), coco_sigmas)  # pycocotools' own values, bit for bit
    perm = COCO_17.flip_permutation()
    for i, j in enumerate(perm):
        a, b = COCO_KEYPOINT_NAMES[i], COCO_KEYPOINT_NAMES[j]
        assert b == a.replace("left", "@").replace("right", "left").replace("@", "right")
    heatmaps = np.random.default_rng(0).random((4, 5, COCO_17.num_heatmaps), dtype=np.float32)
    pafs = np.random.default_rng(1).random((4, 5, COCO_17.num_pafs), dtype=np.float32)
    twice = mirror_maps(*mirror_maps(heatmaps, pafs, COCO_17), COCO_17)
    assert np.array_equal(twice[0], heatmaps) and np.array_equal(twice[1], pafs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"skeleton": [[1, 2], [1, 3], [4, 5]]}, "does not connect 'left_foot', 'right_foot' to 'head'"),
        ({"skeleton": [[1, 2], [1, 9]]}, "keypoint numbers 1..5"),
        ({"sigmas": [0.05, 0.05]}, "'sigmas' must be a list of 5 numbers"),
        ({"keypoints": []}, "non-empty list of keypoint names"),
        ({"skeleton": [[1, 1], [1, 2], [1, 3], [1, 4], [1, 5]]}, "joins 'head' to itself"),
    ],
)
def test_bad_categories_are_refused_naming_the_problem(change, message):
    with pytest.raises(ValueError, match="keypoints category 'star'") as error:
        Skeleton.from_coco_category({**FIVE, **change})
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"limbs": ((0, 1), (0, 2))}, "no limb reaches keypoint(s) d"),
        ({"limbs": ((0, 1), (2, 3), (1, 2))}, "starts at a keypoint no earlier limb reaches"),
        ({"flip_pairs": ((1, 7),)}, "flip pair (1, 7) names an unknown keypoint"),
        ({"sigmas": (0.05, 0.05, 0.05)}, "sigmas must be 4 positive numbers (one per keypoint), got 3"),
    ],
)
def test_invalid_skeletons_are_refused_when_built(change, message):
    fields = {
        "name": "four",
        "keypoints": ("a", "b", "c", "d"),
        "limbs": ((0, 1), (1, 2), (2, 3)),
        "sigmas": (0.05,) * 4,
    }
    with pytest.raises(ValueError, match="skeleton 'four'") as error:
        Skeleton(**{**fields, **change})
    assert message in str(error.value)


def test_skeleton_choice_keeps_the_published_layout_for_coco_17(tmp_path):
    labels, _ = coco17_dataset(tmp_path)
    coco = json.loads(labels.read_text())
    assert choose_skeleton(coco) is OPENPOSE_COCO  # COCO-17 without a skeleton field
    coco["categories"][0]["skeleton"] = [[1, 6], *map(list, COCO_SKELETON)]  # not COCO's: built from the category
    assert choose_skeleton(coco).keypoints == COCO_KEYPOINT_NAMES
    assert choose_skeleton({"images": [], "annotations": []}) is OPENPOSE_COCO  # no category: as before
    assert choose_skeleton({"categories": [FIVE]}).name == "star"
    with pytest.raises(ValueError, match="has 5 keypoints: use --skeleton from-category"):
        choose_skeleton({"categories": [FIVE]}, "coco-17")
    with pytest.raises(ValueError, match="several categories have keypoints"):
        choose_skeleton({"categories": [FIVE, {**FIVE, "id": 2}]})
    output = tmp_path / "published.json"
    assert main(["prepare-coco", "--labels", str(labels), "--output", str(output), "--net-input-size", "64"]) == 0
    assert isinstance(json.loads(output.read_text()), list)  # the reference's plain list, as before


# -- end to end (the "done when") --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(DATASETS))
def trained(request, tmp_path_factory):
    """prepare-coco (CLI) -> train (CLI, 2 iterations at 64 x 64) for one custom skeleton."""
    folder = tmp_path_factory.mktemp(request.param)
    make, choice = DATASETS[request.param]
    labels, images = make(folder)
    prepared = folder / "prepared.json"
    args = ["--labels", str(labels), "--output", str(prepared), "--net-input-size", str(NET), "--skeleton", choice]
    assert main(["prepare-coco", *args]) == 0
    samples, skeleton = load_prepared(prepared)
    train = [
        "train", "--prepared-train-labels", str(prepared), "--train-images-folder", str(images),
        "--input-size", str(NET), "--batch-size", "2", "--max-iterations", "2", "--checkpoint-after", "2",
        "--log-after", "1", "--num-workers", "0", "--device", "cpu", "--no-progress",
        "--experiment-name", str(folder / "run"),
    ]  # fmt: skip
    assert main(train) == 0
    return {
        "name": request.param,
        "labels": labels,
        "images": images,
        "skeleton": skeleton,
        "samples": samples,
        "checkpoint": folder / "run_checkpoints" / "checkpoint_iter_2.pth",
    }


def test_prepared_labels_store_the_skeleton(trained):
    skeleton = trained["skeleton"]
    stored = json.loads(Path(trained["labels"]).with_name("prepared.json").read_text())
    assert Skeleton.from_dict(stored["skeleton"]) == skeleton
    if trained["name"] == "coco-17":
        assert skeleton == COCO_17
    else:
        assert skeleton == Skeleton.from_coco_category(FIVE)
    assert all(len(sample["keypoints"]) == skeleton.num_keypoints for sample in trained["samples"])
    dataset = CocoKeypointsDataset(
        Path(trained["labels"]).with_name("prepared.json"), trained["images"], input_size=NET
    )
    item = dataset[0]
    assert item["keypoint_maps"].shape == (skeleton.num_heatmaps, NET // STRIDE, NET // STRIDE)
    assert item["paf_maps"].shape == item["paf_mask"].shape == (skeleton.num_pafs, NET // STRIDE, NET // STRIDE)
    with pytest.raises(ValueError, match="prepare the labels for the skeleton to train"):
        CocoKeypointsDataset(
            Path(trained["labels"]).with_name("prepared.json"), trained["images"], skeleton=OPENPOSE_COCO
        )


def test_checkpoint_stores_the_skeleton_and_reloads_with_its_heads(trained):
    skeleton = trained["skeleton"]
    checkpoint = torch.load(trained["checkpoint"], map_location="cpu", weights_only=True)
    assert checkpoint["skeleton"] == skeleton.to_dict()
    model, _ = load_model(trained["checkpoint"])
    assert model.skeleton == skeleton
    assert model.initial_stage.heatmaps[-1][0].out_channels == skeleton.num_heatmaps
    assert model.initial_stage.pafs[-1][0].out_channels == skeleton.num_pafs
    estimator = PoseEstimator.from_pretrained(trained["checkpoint"], device="cpu", height=64)
    assert estimator.skeleton == skeleton
    image = cv2.imread(str(trained["images"] / "0001.png"))
    heatmaps, pafs, _ = estimator.infer_maps(image)
    assert heatmaps.shape[0] == skeleton.num_heatmaps and pafs.shape[0] == skeleton.num_pafs
    for pose in estimator(image):  # two iterations: poses may or may not be found, but carry the skeleton
        assert pose.skeleton == skeleton and pose.keypoints.shape == (skeleton.num_keypoints, 3)


def test_label_maps_decode_back_to_the_labelled_keypoints(trained):
    """Training targets (no augmentation) -> the decoder with the skeleton -> the labelled keypoints (+- a cell)."""
    skeleton = trained["skeleton"]
    dataset = CocoKeypointsDataset(
        trained["samples"], trained["images"], augment=False, sigma=4, paf_thickness=2, skeleton=skeleton
    )
    coco = json.loads(Path(trained["labels"]).read_text())
    for index in range(len(dataset)):
        item = dataset[index]
        entries, keypoints = decode_maps(item["keypoint_maps"], item["paf_maps"], 4, skeleton=skeleton)
        poses = entries_to_poses(entries, keypoints, STRIDE / 4, skeleton)
        expected = people_of(coco, trained["samples"][index]["image_id"], skeleton.num_keypoints)
        assert len(poses) == len(expected) > 0
        found = sorted((pose.keypoints[:, :2] for pose in poses), key=lambda xy: np.nanmean(xy[:, 0]))
        for xy, person in zip(found, sorted(expected, key=lambda p: p[:, 0].mean())):
            assert np.abs(xy - person).max() < STRIDE


def test_oracle_maps_score_ap_1_with_the_skeleton_sigmas_and_draw(trained):
    skeleton = trained["skeleton"]
    coco = json.loads(Path(trained["labels"]).read_text())
    detections, drawn = [], 0
    for image in coco["images"]:
        people = people_of(coco, image["id"], skeleton.num_keypoints)
        heatmaps, pafs = render_ideal_maps(people + 0.25, SIZE, sigma=3, paf_width=3, skeleton=skeleton)
        found = detections_for_image(heatmaps, pafs, image["id"], skeleton)
        assert len(found) == len(people) > 0
        assert all(len(d["keypoints"]) == 3 * skeleton.num_keypoints for d in found)
        detections += found
        poses = entries_to_poses(
            *decode_maps(heatmaps.transpose(2, 0, 1), pafs.transpose(2, 0, 1), 1, skeleton=skeleton), 1.0, skeleton
        )
        assert len(poses) > 0
        name = skeleton.keypoints[1]
        assert all(pose[name] is not None and pose[name].name == name for pose in poses)
        picture = cv2.imread(str(trained["images"] / image["file_name"]))
        drawn += int((draw_poses(picture, poses) != picture).any())
    sigmas = oks_sigmas(skeleton)
    assert sigmas is not None and np.array_equal(sigmas, np.array(skeleton.sigmas))
    stats = score_detections(coco, detections, sigmas=sigmas)
    assert stats["AP"] == pytest.approx(1.0) and stats["AR"] == pytest.approx(1.0)
    assert drawn == len(coco["images"])
    tight = score_detections(
        coco, [{**d, "keypoints": list(np.asarray(d["keypoints"]) + 2.0)} for d in detections], sigmas=sigmas / 10
    )
    assert tight["AP"] < 0.5  # the sigmas are used: ten times tighter ones fail the same 2-pixel error


def test_evaluate_coco_runs_the_trained_model(trained, tmp_path):
    estimator = PoseEstimator.from_pretrained(trained["checkpoint"], device="cpu", height=64)
    output = tmp_path / "detections.json"
    stats = evaluate_coco(
        estimator, trained["labels"], trained["images"], output_path=output, progress=False, height=64
    )
    assert list(stats) == list(STAT_NAMES) and all(np.isfinite(list(stats.values())))
    assert isinstance(json.loads(output.read_text()), list)
    published = PoseEstimator(torch.nn.Identity(), skeleton=OPENPOSE_COCO) if trained["name"] == "five" else None
    if published is not None:
        with pytest.raises(ValueError, match="has 5 keypoints, but the model's skeleton 'openpose-coco-18' gives 17"):
            evaluate_coco(published, trained["labels"], trained["images"], progress=False)


def test_resume_refuses_labels_of_another_skeleton_and_weights_only_takes_the_features(trained, tmp_path, capsys):
    other = tmp_path / "published"
    labels, images = coco17_dataset(other)
    prepared = other / "prepared.json"
    assert main(["prepare-coco", "--labels", str(labels), "--output", str(prepared), "--net-input-size", str(NET)]) == 0
    base = [
        "train", "--prepared-train-labels", str(prepared), "--train-images-folder", str(images),
        "--input-size", str(NET), "--batch-size", "2", "--max-iterations", "1", "--num-workers", "0",
        "--device", "cpu", "--no-progress", "--checkpoint", str(trained["checkpoint"]),
    ]  # fmt: skip
    assert (
        main([*base, "--experiment-name", str(tmp_path / "resume")]) == 2
    )  # CheckpointError (a ValueError): bad input
    assert f"was trained for skeleton {trained['skeleton'].name!r}" in capsys.readouterr().err
    assert main([*base, "--weights-only", "--experiment-name", str(tmp_path / "finetune")]) == 0
    model, _ = load_model(tmp_path / "finetune_checkpoints" / "checkpoint_iter_1.pth")
    assert model.skeleton == OPENPOSE_COCO


def test_a_damaged_stored_skeleton_is_a_checkpoint_error(trained, tmp_path):
    checkpoint = torch.load(trained["checkpoint"], map_location="cpu", weights_only=True)
    checkpoint["skeleton"] = {**checkpoint["skeleton"], "sigmas": [0.05]}
    path = tmp_path / "damaged.pth"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="stores a skeleton lightpose cannot rebuild"):
        load_model(path)


def test_exported_files_round_trip_the_skeleton_through_model_metadata(trained, tmp_path):
    """One module writes and reads what exported networks store: ONNX metadata_props and OpenVINO rt_info."""
    onnx = pytest.importorskip("onnx", reason="needs the onnx extra")
    ov = pytest.importorskip("openvino", reason="needs the openvino extra")
    from lightpose.export import to_onnx, to_openvino
    from lightpose.model_metadata import model_skeleton, read_openvino_skeleton, read_skeleton, write_onnx_skeleton

    model, _ = load_model(trained["checkpoint"])
    skeleton = model_skeleton(model)
    assert skeleton == trained["skeleton"]
    onnx_path, xml_path = tmp_path / "net.onnx", tmp_path / "net.xml"
    to_onnx(model, onnx_path, height=NET, width=NET)
    proto = onnx.load(str(onnx_path))
    stored = [entry.value for entry in proto.metadata_props if entry.key == "lightpose.skeleton"]
    assert len(stored) == 1 and read_skeleton(stored[0], "net.onnx") == skeleton
    write_onnx_skeleton(proto, skeleton)  # writing again replaces, never duplicates
    assert sum(entry.key == "lightpose.skeleton" for entry in proto.metadata_props) == 1
    to_openvino(model, xml_path, height=NET, width=NET)
    assert read_openvino_skeleton(ov.Core().read_model(str(xml_path)), "net.xml") == skeleton
    assert read_openvino_skeleton(ov.Core().read_model(str(onnx_path)), "net.onnx") == skeleton  # via "framework"
    for path in (onnx_path, xml_path):
        assert PoseEstimator.from_pretrained(path, height=NET).skeleton == skeleton


def test_quantize_accuracy_metric_decodes_with_the_models_skeleton(trained):
    """The accuracy-control metric runs the compiled model with the skeleton of the model being quantized."""
    ov = pytest.importorskip("openvino", reason="needs the openvino extra")
    from lightpose.quantize import ValidationSet, _Compiled, _float_model

    model, _ = load_model(trained["checkpoint"])
    images = sorted(trained["images"].glob("*.png"))[:2]
    validation = ValidationSet(model, images, height=NET)
    compiled = ov.Core().compile_model(_float_model(model, NET, NET), "CPU")
    assert validation.skeleton == trained["skeleton"]
    score = validation.metric(compiled, [0, 1])  # was: heatmaps decoded with the published 18-keypoint skeleton
    assert np.isnan(score) or 0.0 <= score <= 1.0  # NaN: a 2-iteration model may find no reference poses
    runner = _Compiled(compiled, validation.skeleton)
    assert runner.skeleton == trained["skeleton"]
    for poses in validation.poses(runner):
        assert all(pose.keypoints.shape == (trained["skeleton"].num_keypoints, 3) for pose in poses)
