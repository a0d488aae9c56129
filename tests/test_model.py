from pathlib import Path

import numpy as np
import pytest
import torch

from golden_tolerance import MAP_TOLERANCE, STRICT_MAP_ATOL, network_matches_golden
from lightpose.model import CheckpointError, LightweightOpenPose, fold_batchnorm, load_reference_state


def key_lines(model: torch.nn.Module) -> list[str]:
    return [f"{k} {list(v.shape)}" for k, v in model.state_dict().items()]


def read_key_file(path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def model() -> LightweightOpenPose:
    torch.manual_seed(0)
    return LightweightOpenPose().eval()


KEY_FILES = {1: "model_keys_1_refinement_stage.txt", 3: "checkpoint_keys_3_refinement_stages.txt"}


@pytest.mark.parametrize("stages", [1, 3])
def test_state_dict_layout_equals_the_reference(stages):
    expected = read_key_file(Path(__file__).parent / "data" / KEY_FILES[stages])
    assert key_lines(LightweightOpenPose(num_refinement_stages=stages)) == expected


@pytest.mark.parametrize("stages", [1, 3])
def test_repository_key_lists_equal_the_shared_reference(reference_dir, stages):
    shared = read_key_file(reference_dir / KEY_FILES[stages])
    assert read_key_file(Path(__file__).parent / "data" / KEY_FILES[stages]) == shared


def test_parameter_counts():
    assert sum(p.numel() for p in LightweightOpenPose().parameters()) == 4_091_698
    assert sum(p.numel() for p in LightweightOpenPose(num_refinement_stages=3).parameters()) == 7_308_964


def test_forward_returns_two_outputs_per_stage(model):
    with torch.inference_mode():
        outputs = LightweightOpenPose(num_refinement_stages=2).eval()(torch.zeros(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outputs] == [(1, 19, 8, 12), (1, 38, 8, 12)] * 3


def _source_state(stages: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return LightweightOpenPose(num_refinement_stages=stages).state_dict()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"state_dict": s, "optimizer": {}, "iter": 5},
        lambda s: {f"module.{k}": v for k, v in s.items()},
        lambda s: {k: v for k, v in s.items() if not k.endswith("num_batches_tracked")},
    ],
    ids=["bare", "train-py-dict", "module-prefix", "no-num-batches-tracked"],
)
def test_loader_accepts_reference_variants(wrap):
    source = _source_state()
    target = LightweightOpenPose()
    load_reference_state(target, wrap(dict(source)))
    for key, value in target.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, source[key]), key


def test_loader_ignores_extra_refinement_stages():
    source = _source_state(stages=3)
    target = LightweightOpenPose()
    ignored = load_reference_state(target, {"state_dict": source})
    assert ignored and all(k.startswith(("refinement_stages.1.", "refinement_stages.2.")) for k in ignored)
    assert torch.equal(
        target.state_dict()["refinement_stages.0.pafs.1.0.bias"], source["refinement_stages.0.pafs.1.0.bias"]
    )


def test_loader_refuses_missing_keys_naming_them():
    source = _source_state()
    del source["cpm.align.0.weight"]
    del source["model.3.1.running_var"]
    with pytest.raises(CheckpointError, match=r"2 missing key\(s\): model\.3\.1\.running_var, cpm\.align\.0\.weight"):
        load_reference_state(LightweightOpenPose(), source, "ckpt.pth")


def test_loader_refuses_wrong_shapes_naming_them():
    source = _source_state()
    source["initial_stage.heatmaps.1.0.weight"] = torch.zeros(17, 512, 1, 1)
    with pytest.raises(CheckpointError, match=r"initial_stage\.heatmaps\.1\.0\.weight \(checkpoint \(17, 512, 1, 1\)"):
        load_reference_state(LightweightOpenPose(), source)


def test_loader_refuses_non_state_dicts():
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_reference_state(LightweightOpenPose(), {"state_dict": {"a": 1}})
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_reference_state(LightweightOpenPose(), [1, 2, 3])


def test_more_stages_in_model_than_checkpoint_is_refused():
    with pytest.raises(CheckpointError, match="refinement_stages.1"):
        load_reference_state(LightweightOpenPose(num_refinement_stages=2), _source_state(stages=1))


def test_fold_batchnorm_keeps_outputs(model):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    # Non-trivial BN statistics so folding has something to do.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    with torch.inference_mode():
        reference = model(x)
    folded = LightweightOpenPose().eval()
    folded.load_state_dict(model.state_dict())
    fold_batchnorm(folded)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.inference_mode():
        outputs = folded(x)
    for a, b in zip(reference, outputs, strict=True):
        scale = float(a.abs().max())
        assert float((a - b).abs().max()) <= 1e-5 * max(1.0, scale)


def test_fold_batchnorm_needs_eval_mode():
    with pytest.raises(RuntimeError, match="eval mode"):
        fold_batchnorm(LightweightOpenPose().train())


def test_network_reproduces_reference_outputs(golden_dir):
    golden = np.load(golden_dir / "network.npz")
    checkpoint = torch.load(golden_dir / "checkpoint_random_3stages.pth", map_location="cpu", weights_only=True)
    net = LightweightOpenPose().eval()
    load_reference_state(net, checkpoint)
    strict = network_matches_golden(golden_dir)  # see tests/golden_tolerance.py
    for i in range(len(golden["files"])):
        with torch.inference_mode():
            outputs = net(torch.from_numpy(golden[f"img{i}_input"]))
        names = ["stage0_heatmaps", "stage0_pafs", "stage1_heatmaps", "stage1_pafs"]
        for output, name in zip(outputs, names, strict=True):
            expected = golden[f"img{i}_{name}"]
            atol = STRICT_MAP_ATOL if strict else MAP_TOLERANCE * float(np.abs(expected).max())
            np.testing.assert_allclose(output.numpy(), expected, rtol=0, atol=atol, err_msg=f"img{i} {name}")
