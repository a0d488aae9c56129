"""INT8 quantization (OpenVINO + NNCF) of the trained fixture model, and the pose agreement figures it reports."""

import shutil

import numpy as np
import pytest

from exported import fixture_checkpoint, people_images, run_cli
from lightpose.agreement import agreement, match_poses, oks
from lightpose.pose import Pose
from lightpose.quantize import QuantizeOptions, split_folder
from lightpose.skeleton import OPENPOSE_COCO


def pose(xy, score=1.0):
    keypoints = np.full((18, 3), np.nan, np.float32)
    keypoints[: len(xy), :2] = xy
    keypoints[: len(xy), 2] = 0.5
    return Pose(keypoints, score)


SQUARE = [(0, 0), (100, 0), (0, 100), (100, 100)]  # keypoints 0-3, box 100x100: s^2 = 10000


def test_oks_of_a_known_shift():
    shifted = [(3, 4), (100, 0), (0, 100), (100, 100)]  # keypoint 0 (nose) moved by 5 px
    k2 = OPENPOSE_COCO.oks_variances()[0]
    expected = (np.exp(-25 / (2 * 10000 * k2)) + 3) / 4
    assert oks(pose(SQUARE), pose(shifted)) == pytest.approx(expected, rel=1e-6)
    assert oks(pose(SQUARE), pose(SQUARE)) == 1.0
    assert oks(pose(SQUARE), pose(SQUARE[:2])) == pytest.approx(0.5)  # two keypoints missing score 0


def test_agreement_counts_matches_misses_and_extra_keypoints():
    far = [(x + 1000, y) for x, y in SQUARE]
    reference = [[pose(SQUARE), pose(far)], [pose(SQUARE)]]
    other = [[pose(far), pose(SQUARE[:3])], [pose(SQUARE), pose(far[:2])]]
    assert match_poses(reference[0], other[0]) == [(1, 0, 1.0), (0, 1, 0.75)]
    result = agreement(reference, other)
    assert (result.images, result.reference_poses, result.other_poses, result.matched) == (2, 3, 4, 3)
    assert result.mean_oks == pytest.approx((1.0 + 0.75 + 1.0) / 3)
    assert result.share_good == pytest.approx(2 / 3)
    assert (result.only_reference, result.only_other, result.same_count) == (1, 2, 1)
    assert "3/3 poses matched (4 found), mean OKS 0.917" in result.summary()
    assert agreement([[pose(SQUARE)]], [[]]).mean_oks == 0.0  # an unmatched reference pose counts 0
    with pytest.raises(ValueError, match="pass both for the same images"):
        agreement(reference, other[:1])


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="preset must be one of"):
        QuantizeOptions(preset="accuracy")
    with pytest.raises(ValueError, match="bias_correction must be one of"):
        QuantizeOptions(bias_correction="slow")
    with pytest.raises(ValueError, match="needs 2 or more"):
        split_folder(_folder(tmp_path, 1))


def _folder(tmp_path, count):
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for path in [p for p in people_images(40) if p.name.startswith("sports2d_")][:count]:
        shutil.copy(path, folder / path.name)
    return folder


def test_split_folder_holds_out_one_of_two_images(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(people_images(1)[0], tmp_path / name)
    calibration, validation = split_folder(tmp_path)
    assert [p.name for p in calibration] == ["a.jpg"] and [p.name for p in validation] == ["b.jpg"]


def test_split_folder_holds_out_every_fourth_image(tmp_path):
    calibration, validation = split_folder(_folder(tmp_path, 8))
    assert [p.name for p in validation] == ["sports2d_demo_f048.jpg", "sports2d_demo_f096.jpg"]
    assert len(calibration) == 6 and not set(calibration) & set(validation)


def test_cli_quantizes_the_fixture_model_and_reports_agreement(tmp_path, capsys):
    pytest.importorskip("nncf", reason="needs NNCF: pip install 'lightpose[openvino]'")
    from lightpose.backends import open_exported
    from lightpose.estimator import PoseEstimator

    output = tmp_path / "model_int8.xml"
    args = ["--checkpoint", str(fixture_checkpoint()), "--calibration", str(_folder(tmp_path, 5))]
    labels = people_images(1)[0].parent / "person_keypoints.json"
    assert run_cli("quantize", [*args, "--output", str(output), "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    ap_line = next(line for line in out.splitlines() if line.startswith("COCO AP on 1 labelled held-out images"))
    fp32_ap = float(ap_line.split("fp32 ")[1].split(",")[0])
    int8_ap = float(ap_line.split("INT8 ")[1].split(" ")[0])
    assert fp32_ap > 0.0 and 0.0 <= int8_ap <= 1.0
    assert "calibrating on 4 images, validating on 1 held-out images" in out
    assert output.is_file() and output.with_suffix(".bin").is_file()
    backend = open_exported(output)
    assert backend.int8 and backend.description == "openvino int8 (CPU)"
    line = next(line for line in out.splitlines() if line.startswith("INT8 vs torch fp32"))
    matched, total = (int(v) for v in line.split(": ", 1)[1].split(" poses matched")[0].split("/"))
    assert total > 0 and matched == total  # the people fp32 finds in the held-out photo, INT8 finds too
    result = PoseEstimator.from_pretrained(output)(tmp_path / "images" / "sports2d_demo_f048.jpg")
    assert len(result) > 0


def test_cli_refuses_labels_of_other_images_before_working(tmp_path, capsys):
    pytest.importorskip("nncf", reason="needs NNCF: pip install 'lightpose[openvino]'")
    pytest.importorskip("pycocotools", reason="needs pycocotools: pip install 'lightpose[train]'")
    labels = people_images(1)[0].parent / "person_keypoints.json"
    folder = tmp_path / "other"
    folder.mkdir()
    for i in range(2):
        shutil.copy(people_images(1)[0], folder / f"unlabelled_{i}.jpg")
    args = ["--checkpoint", "never-read.pth", "--calibration", str(folder), "--labels", str(labels)]
    assert run_cli("quantize", [*args, "--output", str(tmp_path / "int8.xml")]) == 2
    assert "annotates none of the 1 held-out images" in capsys.readouterr().err


def test_cli_refuses_a_wrong_output_before_working(tmp_path, capsys):
    args = ["--checkpoint", "never-read.pth", "--calibration", str(tmp_path)]
    assert run_cli("quantize", [*args, "--output", str(tmp_path / "int8.onnx")]) == 2
    assert "does not end in .xml" in capsys.readouterr().err
