"""`lightpose eval` and `lightpose val-subset` on the command line."""

from __future__ import annotations

import json
import random

import pytest
import torch

from lightpose.cli.main import main
from lightpose.model import LightweightOpenPose

pytest.importorskip("pycocotools")


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = LightweightOpenPose()
    with torch.no_grad():  # larger outputs, so that the random maps cross the 0.1 peak threshold
        model.refinement_stages[0].heatmaps[1][0].weight.mul_(6)
        model.refinement_stages[0].pafs[1][0].weight.mul_(6)
    path = tmp_path_factory.mktemp("weights") / "random.pth"
    torch.save(model.state_dict(), path)
    return path


def test_val_subset_draws_as_the_reference(people_dir, tmp_path, capsys):
    from pycocotools.coco import COCO

    labels = people_dir / "person_keypoints.json"
    output = tmp_path / "val_subset.json"
    assert main(["val-subset", "--labels", str(labels), "--output", str(output), "--num-images", "7"]) == 0
    assert "wrote 7 images" in capsys.readouterr().out
    source = json.loads(labels.read_text())
    order = list(range(len(source["images"])))
    random.seed(0)
    random.shuffle(order)  # the reference make_val_subset.py
    subset = json.loads(output.read_text())
    assert [image["id"] for image in subset["images"]] == [source["images"][i]["id"] for i in order[:7]]
    ids = {image["id"] for image in subset["images"]}
    assert sorted(a["id"] for a in subset["annotations"]) == sorted(
        a["id"] for a in source["annotations"] if a["image_id"] in ids
    )
    assert subset["categories"] == source["categories"]
    COCO(str(output))  # a valid COCO annotation file


def test_eval_writes_a_valid_results_file(people_dir, random_checkpoint, tmp_path, capsys):
    from pycocotools.coco import COCO

    source = json.loads((people_dir / "person_keypoints.json").read_text())
    small = {"skimage_astronaut.jpg", "opencv_messi5.jpg", "opencv_basketball1.jpg"}  # random maps decode slowly
    ids = {image["id"] for image in source["images"] if image["file_name"] in small}
    source["images"] = [image for image in source["images"] if image["id"] in ids]
    source["annotations"] = [a for a in source["annotations"] if a["image_id"] in ids]
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(source))
    output = tmp_path / "detections.json"
    argv = ["eval", "--labels", str(labels), "--images", str(people_dir), "--checkpoint", str(random_checkpoint)]
    argv += ["--output", str(output), "--subset", "2", "--device", "cpu", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert '"AP": ' in out and str(output) in out
    detections = json.loads(output.read_text())
    assert isinstance(detections, list) and detections
    for detection in detections:
        assert set(detection) == {"image_id", "category_id", "keypoints", "score"}
        assert detection["category_id"] == 1 and len(detection["keypoints"]) == 51
    assert len({d["image_id"] for d in detections} - ids) == 0
    COCO(str(labels)).loadRes(str(output))  # pycocotools reads it


def test_eval_errors_are_one_line_with_exit_code_2(people_dir, random_checkpoint, tmp_path, capsys):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [], "categories": []}))
    base = ["eval", "--images", str(people_dir), "--checkpoint", str(random_checkpoint), "--no-progress"]
    assert main([*base, "--labels", str(labels)]) == 2
    assert "no person category" in capsys.readouterr().err
    assert main([*base, "--labels", str(tmp_path / "missing.json")]) == 2
    assert "annotation file not found" in capsys.readouterr().err
    assert main([*base, "--labels", str(labels), "--height", "100"]) == 2
    assert "multiple of 8" in capsys.readouterr().err
    not_weights = tmp_path / "not_weights.pth"
    torch.save({"something": 1}, not_weights)
    argv = ["eval", "--labels", str(people_dir / "person_keypoints.json"), "--images", str(people_dir)]
    assert main([*argv, "--checkpoint", str(not_weights), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lightpose eval: error:") and err.count("\n") == 1
