"""lightpose.weights without a network: registry and meta schema, cache folder, safe loading of local files."""

from __future__ import annotations

import collections
import fractions
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from lightpose import errors, weights
from lightpose.errors import CheckpointError, UnsafeCheckpointError
from lightpose.model import LightweightOpenPose
from lightpose.weights import WeightsEntry

REQUIRED_META: dict[str, type | tuple[type, ...]] = {
    "num_refinement_stages": int,
    "stored_refinement_stages": int,
    "num_params": int,
    "gflops": float,
    "gflops_input_hw": tuple,
    "input_height": int,
    "coco_val2017_ap": float,
    "evaluation": str,
    "dataset": str,
    "license": str,
    "paper": str,
    "source": str,
}


def train_style_checkpoint(num_refinement_stages: int = 1, seed: int = 0) -> dict:
    """What train.py saves: state dict, optimizer and MultiStepLR states (milestones in a Counter), counters."""
    torch.manual_seed(seed)
    model = LightweightOpenPose(num_refinement_stages=num_refinement_stages)
    optimizer = torch.optim.Adam(model.parameters(), lr=4e-5)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[100, 200, 260], gamma=0.333)
    return {
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "iter": 370000,
        "current_epoch": 5,
    }


class _WritesMarker:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIGHTPOSE_HOME", "LIGHTPOSE_OFFLINE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)


def test_default_entry_is_the_published_coco_checkpoint() -> None:
    assert weights.DEFAULT_WEIGHTS in weights.list_weights()
    entry = weights.get_weights(weights.DEFAULT_WEIGHTS)
    assert entry.name == "lightweight-openpose-coco"
    assert entry.file_name == "checkpoint_iter_370000.pth"
    assert entry.sha256 is None
    assert entry.urls[0].startswith("https://download.01.org/")
    assert entry.urls[1].startswith("https://storage.openvinotoolkit.org/")
    assert all(url.endswith("/checkpoint_iter_370000.pth") for url in entry.urls)
    assert entry.meta["num_refinement_stages"] == 1 and entry.meta["coco_val2017_ap"] == 40.0
    with pytest.raises(TypeError):
        entry.meta["coco_val2017_ap"] = 99.0  # type: ignore[index]


def _conv_gflops(model: nn.Module, height: int, width: int) -> float:
    """2 x multiply-accumulates of every convolution for one (1, 3, height, width) input."""
    macs: list[int] = []

    def count(conv: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        assert isinstance(conv, nn.Conv2d)
        macs.append(output.numel() * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1])

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    for hook in hooks:
        hook.remove()
    return 2 * sum(macs) / 1e9


@pytest.mark.parametrize("name", weights.list_weights())
def test_meta_schema(name: str) -> None:
    entry = weights.get_weights(name)
    for key, kind in REQUIRED_META.items():
        assert isinstance(entry.meta.get(key), kind), f"{name}: meta[{key!r}] missing or not {kind}"
    assert 0 <= entry.meta["num_refinement_stages"] <= entry.meta["stored_refinement_stages"]
    model = LightweightOpenPose(num_refinement_stages=entry.meta["num_refinement_stages"]).eval()
    assert entry.meta["num_params"] == sum(p.numel() for p in model.parameters())
    assert entry.meta["gflops"] == round(_conv_gflops(model, *entry.meta["gflops_input_hw"]), 2)
    assert entry.meta["input_height"] % 8 == 0
    assert all(url.startswith("https://") for url in entry.urls)


@pytest.mark.parametrize(("stages", "expected"), [(1, 4_091_698), (3, 7_308_964)])
def test_network_params_match_the_reference_count(stages: int, expected: int) -> None:
    """The published network's parameter counts (its checkpoint's state dict), against the network lightpose builds."""
    assert sum(p.numel() for p in LightweightOpenPose(num_refinement_stages=stages).parameters()) == expected


def test_exceptions_come_from_lightpose_errors_under_their_old_names() -> None:
    for name in ("CheckpointError", "DownloadError", "IntegrityError", "NotCachedError", "UnsafeCheckpointError"):
        assert getattr(weights, name) is getattr(errors, name), name
    assert issubclass(weights.DownloadError, ConnectionError) and issubclass(weights.NotCachedError, FileNotFoundError)


def test_duplicate_registration_raises_and_unregister_removes() -> None:
    entry = WeightsEntry(name="test-duplicate", urls=("http://127.0.0.1:9/x.pth",), file_name="x.pth")
    weights.register_weights(entry)
    try:
        assert "test-duplicate" in weights.list_weights()
        with pytest.raises(ValueError, match="already registered"):
            weights.register_weights(WeightsEntry(name="test-duplicate", urls=entry.urls, file_name="y.pth"))
        assert weights.get_weights("test-duplicate").file_name == "x.pth"
    finally:
        weights.unregister_weights("test-duplicate")
    assert "test-duplicate" not in weights.list_weights()
    with pytest.raises(KeyError, match="lightweight-openpose-coco"):
        weights.get_weights("test-duplicate")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"urls": ()}, "urls"),
        ({"urls": ("ftp://host/x.pth",)}, "urls"),
        ({"file_name": "dir/x.pth"}, "bare file name"),
        ({"file_name": "x.pth.part"}, "must not end"),
        ({"sha256": "abc"}, "sha256"),
        ({"name": ""}, "name"),
    ],
)
def test_entry_validation(kwargs: dict, match: str) -> None:
    fields = {"name": "n", "urls": ("https://example.org/x.pth",), "file_name": "x.pth"} | kwargs
    with pytest.raises(ValueError, match=match):
        WeightsEntry(**fields)


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights.get_cache_dir() == tmp_path / "home" / ".cache" / "lightpose"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.get_cache_dir() == tmp_path / "xdg" / "lightpose"
    monkeypatch.setenv("LIGHTPOSE_HOME", str(tmp_path / "lp"))
    assert weights.get_cache_dir() == tmp_path / "lp"
    assert weights.get_cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_unknown_offline_value_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTPOSE_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="LIGHTPOSE_OFFLINE"):
        weights.resolve_checkpoint("https://127.0.0.1:9/x.pth")


def test_train_style_checkpoint_with_counter_loads_by_path(tmp_path: Path) -> None:
    original = train_style_checkpoint(num_refinement_stages=3, seed=1)
    path = tmp_path / "ckpt.pth"
    torch.save(original, path)
    state = weights.load_checkpoint_file(path)
    assert isinstance(state["scheduler"]["milestones"], collections.Counter)
    assert state["iter"] == 370000
    model, entry = weights.load_model(path)
    assert entry is None and not model.training and len(model.refinement_stages) == 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, original["state_dict"][key]), key
    model3, _ = weights.load_model(str(path), num_refinement_stages=3)
    assert len(model3.refinement_stages) == 3


def test_bare_state_dict_loads(tmp_path: Path) -> None:
    path = tmp_path / "bare.pth"
    torch.save(train_style_checkpoint()["state_dict"], path)
    model, _ = weights.load_model(path)
    assert len(model.refinement_stages) == 1


def test_missing_local_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        weights.load_model(missing)
    with pytest.raises(FileNotFoundError, match="registered weights name"):
        weights.resolve_checkpoint("not-a-registered-name")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        weights.load_checkpoint_file(missing)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    payload = {"state_dict": {"w": _WritesMarker(marker)}}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="evil.pth") as info:
        weights.load_checkpoint_file(path)
    message = str(info.value)
    assert "io.open" in message and "delete it" in message and "weights_only=False" not in message
    with pytest.raises(UnsafeCheckpointError):
        weights.load_model(path)
    assert not marker.exists()


def test_only_the_training_state_types_are_let_through(tmp_path: Path) -> None:
    path = tmp_path / "fraction.pth"
    torch.save({"state_dict": {}, "scheduler": {"gamma": fractions.Fraction(1, 3)}}, path)
    with pytest.raises(UnsafeCheckpointError, match="fractions.Fraction"):
        weights.load_checkpoint_file(path)


def test_corrupt_and_wrong_checkpoints_raise_checkpoint_error(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pth"
    torch.save(train_style_checkpoint()["state_dict"], truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        weights.load_checkpoint_file(truncated)
    wrong = tmp_path / "wrong.pth"
    state = train_style_checkpoint()["state_dict"]
    del state["cpm.align.0.weight"]
    torch.save({"state_dict": state}, wrong)
    with pytest.raises(CheckpointError, match=r"missing key.*cpm\.align\.0\.weight"):
        weights.load_model(wrong)


def test_golden_checkpoint_loads_by_path(golden_dir: Path) -> None:
    path = golden_dir / "checkpoint_random_3stages.pth"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    raw = weights.load_checkpoint_file(path)
    model, entry = weights.load_model(path)
    assert entry is None and len(model.refinement_stages) == 1
    assert torch.equal(model.state_dict()["cpm.align.0.weight"], raw["state_dict"]["cpm.align.0.weight"])
    model3, _ = weights.load_model(path, num_refinement_stages=3)
    key = "refinement_stages.2.pafs.1.0.bias"
    assert torch.equal(model3.state_dict()[key], raw["state_dict"][key])


def test_entries_are_hashable_and_compare_by_value() -> None:
    a = WeightsEntry(name="n", urls=["https://example.org/x.pth"], file_name="x.pth", meta={"k": 1})
    b = WeightsEntry(name="n", urls=("https://example.org/x.pth",), file_name="x.pth", meta={"k": 1})
    assert a == b and hash(a) == hash(b) and a.urls == ("https://example.org/x.pth",)


def test_legacy_non_zip_checkpoint_loads_weights_only(tmp_path: Path) -> None:
    """The published file dates from PyTorch 0.4.1, before the zip format."""
    original = train_style_checkpoint(seed=2)
    path = tmp_path / "legacy.pth"
    torch.save(original, path, _use_new_zipfile_serialization=False)
    model, _ = weights.load_model(path)
    key = "refinement_stages.0.trunk.4.trunk.1.0.weight"
    assert torch.equal(model.state_dict()[key], original["state_dict"][key])
