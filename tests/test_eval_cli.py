"""`lightpose eval` and `lightpose val-subset` on the command line."""

from __future__ import annotations

import json
import random
from pathlib import Path

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


def small_labels(people_dir, folder, names=("skimage_astronaut.jpg", "opencv_messi5.jpg", "opencv_basketball1.jpg")):
    """The shared labels cut down to a few small images (random maps decode slowly); (path, image ids)."""
    source = json.loads((people_dir / "person_keypoints.json").read_text())
    ids = {image["id"] for image in source["images"] if image["file_name"] in names}
    source["images"] = [image for image in source["images"] if image["id"] in ids]
    source["annotations"] = [a for a in source["annotations"] if a["image_id"] in ids]
    labels = folder / "labels.json"
    labels.write_text(json.dumps(source))
    return labels, ids


def test_eval_writes_a_valid_results_file(people_dir, random_checkpoint, tmp_path, capsys):
    from pycocotools.coco import COCO

    labels, ids = small_labels(people_dir, tmp_path)
    output = tmp_path / "detections.json"
    argv = ["eval", "--labels", str(labels), "--images", str(people_dir), "--checkpoint", str(random_checkpoint)]
    argv += ["--output", str(output), "--subset", "2", "--height", "184", "--device", "cpu", "--no-progress"]
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


def test_eval_checks_the_output_before_any_work(people_dir, tmp_path, capsys):
    labels = people_dir / "person_keypoints.json"
    (tmp_path / "a_file").write_text("")
    base = ["eval", "--labels", str(labels), "--images", str(people_dir), "--checkpoint", str(tmp_path / "none.pth")]
    for output, message in [
        (tmp_path / "a_file" / "det.json", "is a file, not a folder"),
        (tmp_path, "is a folder"),
        (labels, "is also an input"),
    ]:
        assert main([*base, "--output", str(output), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lightpose eval: error: --output") and message in err and "none.pth" not in err


def test_eval_on_labels_without_people_exits_2(people_dir, random_checkpoint, tmp_path, capsys):
    labels, _ = small_labels(people_dir, tmp_path)
    data = json.loads(labels.read_text())
    data["annotations"] = []
    labels.write_text(json.dumps(data))
    argv = ["eval", "--labels", str(labels), "--images", str(people_dir), "--checkpoint", str(random_checkpoint)]
    assert main([*argv, "--output", str(tmp_path / "det.json"), "--device", "cpu", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "no annotated person with keypoints" in captured.err and "AP is undefined" in captured.err
    assert '"AP"' not in captured.out and not (tmp_path / "det.json").exists()


def test_eval_late_write_failure_prints_the_ap_and_where_the_detections_are(
    people_dir, random_checkpoint, tmp_path, capsys, monkeypatch
):
    import errno
    import tempfile

    from lightpose.training import evaluate

    write = evaluate.write_json
    output = tmp_path / "det.json"

    def disk_full_at_output(path, payload):
        if Path(path) == output:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(path, payload)

    monkeypatch.setattr(evaluate, "write_json", disk_full_at_output)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    labels, _ = small_labels(people_dir, tmp_path, names=("skimage_astronaut.jpg",))
    argv = ["eval", "--labels", str(labels), "--images", str(people_dir), "--checkpoint", str(random_checkpoint)]
    assert main([*argv, "--output", str(output), "--height", "184", "--device", "cpu", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1]).keys() >= {"AP", "AR"}  # the AP is still printed
    assert captured.err.count("\n") == 1 and "No space left on device" in captured.err
    saved = list(tmp_path.glob("det-*.json"))
    assert len(saved) == 1 and f"written to {saved[0]} instead" in captured.err
    assert isinstance(json.loads(saved[0].read_text()), list) and not output.exists()


def test_eval_interrupted_exits_130(people_dir, tmp_path, capsys, monkeypatch):
    from lightpose.training import evaluate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "evaluate_coco", interrupted)
    monkeypatch.setattr("lightpose.estimator.PoseEstimator.from_pretrained", lambda *a, **k: None)
    argv = ["eval", "--labels", str(people_dir / "person_keypoints.json"), "--images", str(people_dir)]
    assert main([*argv, "--output", str(tmp_path / "det.json"), "--no-progress"]) == 130
    assert capsys.readouterr().err == "lightpose eval: interrupted\n"


def test_eval_runtime_failure_exits_1_in_one_line_and_traceback_with_v(people_dir, tmp_path, capsys, monkeypatch):
    from lightpose.training import evaluate

    def broken(*args, **kwargs):
        raise RuntimeError("the network failed: try --device cpu")

    monkeypatch.setattr(evaluate, "evaluate_coco", broken)
    monkeypatch.setattr("lightpose.estimator.PoseEstimator.from_pretrained", lambda *a, **k: None)
    argv = ["eval", "--labels", str(people_dir / "person_keypoints.json"), "--images", str(people_dir)]
    argv += ["--output", str(tmp_path / "det.json"), "--no-progress"]
    assert main(argv) == 1
    assert capsys.readouterr().err == "lightpose eval: error: the network failed: try --device cpu\n"
    assert main([*argv, "-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("lightpose eval: error: the network failed: try --device cpu\n")


def test_val_subset_checks_its_output_and_writes_with_the_umask_mode(people_dir, tmp_path, capsys, monkeypatch):
    import os

    labels = people_dir / "person_keypoints.json"
    (tmp_path / "a_file").write_text("")
    base = ["val-subset", "--labels", str(labels), "--num-images", "3", "--output"]
    assert main([*base, str(tmp_path / "a_file" / "subset.json")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    output = tmp_path / "subset.json"
    previous = os.umask(0o022)
    try:
        assert main([*base, str(output)]) == 0
    finally:
        os.umask(previous)
    assert output.stat().st_mode & 0o777 == 0o644

    def disk_full(path, payload):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("lightpose.io.write_json", disk_full)
    assert main([*base, str(tmp_path / "other.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lightpose val-subset: error: could not write") and err.count("\n") == 1
