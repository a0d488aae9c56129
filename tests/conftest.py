"""Shared test fixtures: where ../shared lives (LIGHTPOSE_SHARED overrides), skipping when it is absent."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from lightpose.model import LightweightOpenPose

REPO_ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _reset_lightpose_logging() -> Iterator[None]:
    """CLI calls in this process configure the "lightpose" logger; give every test the default again."""
    yield
    logger = logging.getLogger("lightpose")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def shared_root() -> Path:
    return Path(os.environ.get("LIGHTPOSE_SHARED", REPO_ROOT.parent / "shared"))


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (set LIGHTPOSE_SHARED to the shared data folder to run this test)")
    return path


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """../shared/reference/golden: outputs of the published implementation."""
    return _require(shared_root() / "reference" / "golden")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference: the published checkpoint's key lists."""
    return _require(shared_root() / "reference")


@pytest.fixture(scope="session")
def people_dir() -> Path:
    """../shared/data/people: real photos with machine-made COCO keypoint labels."""
    return _require(shared_root() / "data" / "people")


@pytest.fixture(scope="session")
def mobilenet_weights() -> Path:
    """../shared/data/mobilenet_v1_imagenet.pth.tar: ImageNet MobileNet v1 in --from-mobilenet format."""
    return _require(shared_root() / "data" / "mobilenet_v1_imagenet.pth.tar")


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dict of LightweightOpenPose() with torch.manual_seed(0) weights, saved as a file."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "random.pth"
    torch.save(LightweightOpenPose().state_dict(), path)
    return path


def shared_path(*parts: str) -> Path:
    """`../shared/<parts>`, or skip the test saying it is absent."""
    return _require(shared_root().joinpath(*parts))


def fixture_model_path() -> Path:
    """../shared/data/fixture/people_fixture.pth: a small trained model whose maps hold real people."""
    return shared_path("data", "fixture", "people_fixture.pth")


@pytest.fixture(scope="session")
def fixture_checkpoint() -> Path:
    """The fixture model's checkpoint (see fixture_model_path)."""
    return fixture_model_path()


@pytest.fixture(scope="session")
def people_photos(people_dir: Path) -> list[Path]:
    """The shared photos of people, sorted by name."""
    return sorted(people_dir.glob("*.jpg"))


@pytest.fixture(scope="session")
def people_estimator(fixture_checkpoint: Path):  # noqa: ANN201 (PoseEstimator)
    """A PoseEstimator of the trained fixture model (torch fp32, height 256): finds real people in the photos."""
    from lightpose import PoseEstimator

    return PoseEstimator.from_pretrained(fixture_checkpoint, device="cpu", height=256)


@pytest.fixture
def rendered_estimator():  # noqa: ANN201 (PoseEstimator)
    """A PoseEstimator whose backend returns maps rendered from two known walking people (no ../shared needed):
    `est._runtime.people(t)` gives their keypoints in network-input pixels at call t."""
    from lightpose import PoseEstimator
    from rendered_backend import RenderedBackend

    return PoseEstimator(RenderedBackend(), height=128)
