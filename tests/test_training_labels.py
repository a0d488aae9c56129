"""Label preparation (reference prepare_train_labels.py rules), prepared-label files, val subsets, prepare-coco."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import stat
from pathlib import Path

import pytest

from lightpose.cli.main import main
from lightpose.errors import AnnotationError
from lightpose.training.labels import (
    load_prepared_labels,
    make_val_subset,
    prepare_coco_labels,
    prepare_labels_from_coco,
    save_prepared_labels,
)


def _assert_same(actual: object, expected: object, where: str = "") -> None:
    """Same structure and values; floats to 1e-9."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), where
        for key in expected:
            _assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert math.isclose(actual, expected, rel_tol=0, abs_tol=1e-9), where  # type: ignore[arg-type]
    else:
        assert actual == expected, where


def _person(ann_id: int, image_id: int, bbox: list[float], visible: int, *, iscrowd: int = 0, vis: int = 2) -> dict:
    """A COCO person whose first ``visible`` keypoints are labelled with visibility ``vis``."""
    keypoints: list[float] = []
    for k in range(17):
        keypoints += [bbox[0] + k, bbox[1] + 2 * k, vis] if k < visible else [0, 0, 0]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": iscrowd,
        "num_keypoints": visible,
        "keypoints": keypoints,
        "bbox": bbox,
        "area": bbox[2] * bbox[3],
        "segmentation": [[bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]]],
    }


def _coco(annotations: list[dict], num_images: int = 2) -> dict:
    images = [{"id": i + 1, "file_name": f"{i + 1:03d}.png", "width": 400, "height": 300} for i in range(num_images)]
    return {
        "info": {"description": "test"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)], "skeleton": []}],
    }


def test_golden_prepared_labels(people_dir: Path, golden_dir: Path) -> None:
    expected = json.loads((golden_dir / "prepared_labels.json").read_text())
    _assert_same(prepare_coco_labels(people_dir / "person_keypoints.json"), expected)


def test_main_person_rules_and_other_persons() -> None:
    crowd = _person(9, 1, [0, 0, 50, 50], 0, iscrowd=1)
    crowd["segmentation"] = {"counts": [0, 10, 119990], "size": [300, 400]}
    annotations = [
        _person(1, 1, [100, 100, 100, 200], 6),  # main
        _person(2, 1, [110, 100, 100, 200], 6),  # centre 10 px from person 1 < 0.3 * 100: not main, but "other"
        _person(3, 1, [300, 50, 50, 100], 4),  # 4 keypoints: not main
        _person(4, 1, [10, 10, 30, 30], 8),  # area 900 < 1024: not main
        _person(5, 1, [250, 100, 100, 200], 0),  # no keypoints: ignored everywhere
        crowd,
        _person(6, 2, [10, 20, 40, 80], 5),  # image 2: main
    ]
    samples = prepare_labels_from_coco(_coco(annotations))
    assert [s["image_id"] for s in samples] == [1, 2]
    first = samples[0]
    assert first["objpos"] == [150, 200] and first["bbox"] == [100, 100, 100, 200]
    assert first["scale_provided"] == pytest.approx(200 / 368)
    assert first["segmentations"] == [crowd["segmentation"]]
    assert first["img_paths"] == "001.png" and (first["img_width"], first["img_height"]) == (400, 300)
    others = first["processed_other_annotations"]
    assert [o["bbox"] for o in others] == [a["bbox"] for a in annotations[1:4]]
    assert others[0]["objpos"] == [160, 200] and others[0]["num_keypoints"] == 6
    assert samples[1]["segmentations"] == [] and samples[1]["processed_other_annotations"] == []
    assert prepare_labels_from_coco(_coco(annotations), net_input_size=100)[0]["scale_provided"] == 2.0


def test_far_enough_second_person_is_a_main_person() -> None:
    annotations = [_person(1, 1, [100, 100, 100, 200], 6), _person(2, 1, [131, 100, 100, 200], 6)]  # 31 px >= 30
    assert len(prepare_labels_from_coco(_coco(annotations, 1))) == 2


@pytest.mark.parametrize(("coco_v", "expected_v"), [(2, 1), (1, 0)])
def test_visibility_remap(coco_v: int, expected_v: int) -> None:
    samples = prepare_labels_from_coco(_coco([_person(1, 1, [100, 100, 100, 200], 6, vis=coco_v)], 1))
    keypoints = samples[0]["keypoints"]
    assert len(keypoints) == 17
    assert keypoints[0] == [100, 100, expected_v] and keypoints[5] == [105, 110, expected_v]
    assert keypoints[6] == [0, 0, 2]  # COCO v = 0 (unlabelled) -> 2


def test_save_load_round_trip_leaves_no_temp_files_and_respects_the_umask(tmp_path: Path) -> None:
    samples = prepare_labels_from_coco(_coco([_person(1, 1, [100, 100, 100, 200], 6)], 1))
    path = tmp_path / "out" / "labels.json"
    previous = os.umask(0o022)
    try:
        save_prepared_labels(samples, path)
    finally:
        os.umask(previous)
    assert load_prepared_labels(path) == samples
    assert [p.name for p in path.parent.iterdir()] == ["labels.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"iscrowd": 1, "segmentation": "x"}, "'segmentation' must be polygons"),
        ({"num_keypoints": "6"}, "'num_keypoints' must be a non-negative integer, got '6'"),
        ({"num_keypoints": 5.5}, "'num_keypoints' must be a non-negative integer, got 5.5"),
        ({"num_keypoints": None}, "'num_keypoints' must be a non-negative integer, got None"),
        ({"keypoints": "100,100,2"}, "'keypoints' must be a list of 51 numbers .* got '100,100,2'"),
        ({"keypoints": [1, 2, "2"] * 17}, "'keypoints' must be a list of 51 numbers"),
        ({"bbox": [1, 2, 3]}, "'bbox' must be"),
        ({"iscrowd": 2}, "'iscrowd' must be 0 or 1"),
    ],
)
def test_malformed_annotation_is_a_clear_error_naming_its_id(change: dict, message: str) -> None:
    good, bad = _person(1, 1, [100, 100, 100, 200], 6), {**_person(7, 2, [10, 10, 100, 200], 6), **change}
    with pytest.raises(AnnotationError, match=rf"coco\.json: annotation id 7 \(annotations\[1\]\) {message}.*: fix"):
        prepare_labels_from_coco(_coco([good, bad]), source="coco.json")


def test_integral_float_num_keypoints_is_accepted_and_stored_as_int() -> None:
    samples = prepare_labels_from_coco(_coco([{**_person(1, 1, [100, 100, 100, 200], 6), "num_keypoints": 6.0}], 1))
    assert samples[0]["num_keypoints"] == 6 and isinstance(samples[0]["num_keypoints"], int)


def test_crowd_without_segmentation_is_skipped_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    crowds = [{**_person(i, 1, [0, 0, 50, 50], 0), "iscrowd": 1} for i in (8, 9)]
    for crowd in crowds:
        del crowd["segmentation"]
    crowd_with_polygon = {**_person(10, 1, [0, 0, 50, 50], 0), "iscrowd": 1}
    with caplog.at_level(logging.WARNING):
        samples = prepare_labels_from_coco(_coco([_person(1, 1, [100, 100, 100, 200], 6), *crowds, crowd_with_polygon]))
    assert len(samples) == 1 and samples[0]["segmentations"] == [crowd_with_polygon["segmentation"]]
    assert "skipped 2 crowd annotation(s) without 'segmentation' (ids 8, 9)" in caplog.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"images": []}, "must be a JSON list"),
        ([], "no samples"),
        ([{"img_paths": "a.png"}], "lacks"),
        ("not json {", "not a JSON file"),
    ],
)
def test_load_rejects_wrong_format_naming_the_file(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError, match=message) as info:
        load_prepared_labels(path)
    assert "bad.json" in str(info.value)


def test_load_rejects_wrong_keypoint_count(tmp_path: Path) -> None:
    samples = prepare_labels_from_coco(_coco([_person(1, 1, [100, 100, 100, 200], 6)], 1))
    samples[0]["keypoints"] = samples[0]["keypoints"][:16]
    path = tmp_path / "short.json"
    path.write_text(json.dumps(samples))
    with pytest.raises(ValueError, match="17"):
        load_prepared_labels(path)


def test_prepare_rejects_non_coco_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"images": [], "annotations": [{"image_id": 1}]}))
    with pytest.raises(ValueError, match=r"x\.json: annotations\[0\]"):
        prepare_coco_labels(path)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        prepare_coco_labels(tmp_path / "missing.json")


def test_make_val_subset_matches_python_random_and_loads_in_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    annotations = [_person(i + 1, i % 10 + 1, [10, 10, 100, 100], 6) for i in range(25)]
    data = _coco(annotations, num_images=10)
    subset = make_val_subset(data, num_images=4, seed=0)
    indices = list(range(10))
    random.seed(0)
    random.shuffle(indices)
    expected_ids = [data["images"][i]["id"] for i in indices[:4]]
    assert [image["id"] for image in subset["images"]] == expected_ids
    assert sorted(a["id"] for a in subset["annotations"]) == sorted(
        a["id"] for a in annotations if a["image_id"] in expected_ids
    )
    assert make_val_subset(data, num_images=4, seed=0) == subset
    assert [i["id"] for i in make_val_subset(data, num_images=4, seed=1)["images"]] != expected_ids
    path = tmp_path / "subset.json"
    path.write_text(json.dumps(subset))
    coco = COCO(str(path))
    assert sorted(coco.getImgIds()) == sorted(expected_ids)
    assert sorted(coco.getAnnIds()) == sorted(a["id"] for a in subset["annotations"])
    assert len(make_val_subset(data, num_images=50)["images"]) == 10
    with pytest.raises(ValueError, match="num_images"):
        make_val_subset(data, num_images=0)


def test_cli_prepare_coco_checks_the_output_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lightpose.cli.prepare_coco as cli

    labels = tmp_path / "coco.json"
    labels.write_text(json.dumps(_coco([_person(1, 1, [100, 100, 100, 200], 6)], 1)))
    original = labels.read_text()
    monkeypatch.setattr(cli, "prepare_coco", lambda *a, **k: pytest.fail("work before the output check"))
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_folder").mkdir()
    cases = {
        str(labels): "is also an input",
        str(tmp_path / "a_file" / "out.json"): "is a file, not a folder",
        str(tmp_path / "a_folder"): "is a folder: give a file name",
    }
    for output, message in cases.items():
        assert main(["prepare-coco", "--labels", str(labels), "--output", output]) == 2
        err = capsys.readouterr().err
        assert message in err and output in err and len(err.strip().splitlines()) == 1, err
    assert labels.read_text() == original


def test_cli_prepare_coco_malformed_annotation_is_one_line_with_the_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "coco.json"
    labels.write_text(json.dumps(_coco([{**_person(42, 1, [100, 100, 100, 200], 6), "num_keypoints": "many"}], 1)))
    assert main(["prepare-coco", "--labels", str(labels), "--output", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err
    assert "annotation id 42" in err and "'num_keypoints'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.json").exists()


def test_cli_prepare_coco(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "coco.json"
    labels.write_text(json.dumps(_coco([_person(1, 1, [100, 100, 100, 200], 6)], 1)))
    output = tmp_path / "prepared.json"
    assert main(["prepare-coco", "--labels", str(labels), "--output", str(output)]) == 0
    assert load_prepared_labels(output)[0]["image_id"] == 1
    assert main(["prepare-coco", "--labels", str(tmp_path / "nope.json"), "--output", str(output)]) == 2
    assert "nope.json" in capsys.readouterr().err
    labels.write_text(json.dumps(_coco([_person(1, 1, [100, 100, 100, 200], 3)], 1)))
    assert main(["prepare-coco", "--labels", str(labels), "--output", str(output)]) == 2
    assert "no person qualifies" in capsys.readouterr().err
