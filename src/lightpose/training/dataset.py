"""CocoKeypointsDataset: prepared COCO labels + images -> augmented inputs, target maps and loss masks."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch.utils.data

from lightpose.errors import UnreadableSamplesError
from lightpose.skeleton import OPENPOSE_COCO, Skeleton
from lightpose.training.augment import ConvertKeypoints, CropPad, Flip, Rotate, Scale, TrainingSample, Transform
from lightpose.training.labels import load_prepared, validate_prepared_labels
from lightpose.training.targets import keypoint_heatmaps, part_affinity_fields

logger = logging.getLogger(__name__)

MAX_REPLACEMENTS = 8  # unreadable samples in a row that one __getitem__ replaces before it gives up


def crowd_mask(segmentations: list, height: int, width: int) -> np.ndarray:
    """(height, width) float32: 1 everywhere except 0 inside the crowd segmentations (COCO polygons or RLE)."""
    mask = np.ones((height, width), dtype=np.float32)
    if not segmentations:
        return mask
    try:
        from pycocotools import mask as coco_mask
    except ImportError as error:
        raise ImportError("crowd masks need pycocotools: pip install lightpose[train]") from error
    for segmentation in segmentations:
        with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword deprecation, not ours to fix
            warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
            decoded = coco_mask.decode(coco_mask.frPyObjects(segmentation, height, width))
        if decoded.ndim == 3:  # a polygon list decodes to one channel per polygon
            decoded = decoded.max(axis=2)
        mask[decoded > 0.5] = 0
    return mask


def loss_mask(mask: np.ndarray, map_size: tuple[int, int], stride: int) -> np.ndarray:
    """Mask (H, W) -> (h, w) float32 on the map grid: cv2 INTER_AREA by 1/stride, as the reference.

    Where round(d / stride) != d // stride for a side d the reference crashes (the resized mask is one cell
    larger than the d // stride maps); here the extra last row/column (a partial cell the maps do not
    cover) is dropped.
    """
    small = cv2.resize(mask, None, fx=1 / stride, fy=1 / stride, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small[: map_size[0], : map_size[1]], dtype=np.float32)


class CocoKeypointsDataset(torch.utils.data.Dataset):
    """Training samples from prepared labels (see lightpose.training.labels) and their images.

    ``dataset[i]`` is a dict of float32 arrays: ``image`` (3, S, S) = (BGR - 128) / 256, ``keypoint_maps``
    (K + 1, S/8, S/8), ``keypoint_mask`` (K + 1, S/8, S/8), ``paf_maps`` (2 L, S/8, S/8), ``paf_mask``
    (2 L, S/8, S/8) with S = ``input_size``, stride 8 and the ``skeleton``'s K keypoints and L limbs (19 and 38
    for the published layout). The skeleton is the one stored in a labels file (`save_prepared_labels`), else
    ``skeleton`` (default: the published layout); a labels file with another skeleton raises ValueError.
    Masks are 0 on crowd regions, 1 elsewhere. An unreadable sample (image
    missing, empty, corrupt or not the labelled size) is replaced by the next readable one with a warning;
    ``skipped`` (int64 (MAX_REPLACEMENTS,), -1 padded) lists the indices replaced, for the trainer to count.
    With ``augment=False`` only ConvertKeypoints runs: no crop, the image keeps its size (H, W) and the maps are
    (H // stride, W // stride).

    Randomness: sample i of epoch e uses ``numpy.random.default_rng([seed, e, i])``, so results do not depend on
    DataLoader workers or order. Call ``set_epoch(e)`` before creating each epoch's DataLoader iterator (workers
    copy the dataset when the iterator starts; with ``persistent_workers=True`` they would keep the old epoch).
    """

    def __init__(
        self,
        labels: str | Path | list[dict],
        images_folder: str | Path,
        *,
        stride: int = 8,
        sigma: float = 7,
        paf_thickness: float = 1,
        augment: bool = True,
        seed: int = 0,
        input_size: int = 368,
        skeleton: Skeleton | None = None,
    ) -> None:
        if isinstance(labels, (str, Path)):
            self._labels, stored = load_prepared(labels)
            if skeleton is not None and skeleton != stored:
                raise ValueError(
                    f"{labels} holds labels of skeleton {stored.name!r}, not {skeleton.name!r}: prepare the labels "
                    "for the skeleton to train (lightpose prepare-coco --skeleton ...)"
                )
            self.skeleton = stored
        else:
            self.skeleton = skeleton or OPENPOSE_COCO
            validate_prepared_labels(labels, "labels", self.skeleton)
            self._labels = labels
        self.images_folder = Path(images_folder)
        if not self.images_folder.is_dir():
            raise FileNotFoundError(f"images folder {self.images_folder} does not exist or is not a folder")
        if stride <= 0 or input_size <= 0 or input_size % stride:
            raise ValueError(f"input_size ({input_size}) must be a positive multiple of stride ({stride})")
        if sigma <= 0 or paf_thickness <= 0:
            raise ValueError(f"sigma ({sigma}) and paf_thickness ({paf_thickness}) must be positive")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.stride, self.sigma, self.paf_thickness = stride, sigma, paf_thickness
        self.augment, self.seed, self.input_size = augment, seed, input_size
        self.epoch = 0
        self.transforms: list[Transform] = [ConvertKeypoints(self.skeleton)]
        if augment:
            crop = CropPad(crop_x=input_size, crop_y=input_size)
            self.transforms += [Scale(), Rotate(), crop, Flip(skeleton=self.skeleton)]

    def __len__(self) -> int:
        return len(self._labels)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random augmentations ``__getitem__`` draws."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def raw_sample(self, index: int) -> TrainingSample:
        """Sample ``index`` before any transform: the image, its crowd mask and the labels' keypoints (P, K', 3)
        (COCO-17 for the published layout, else the skeleton's)."""
        label = self._labels[index]
        path = self.images_folder / label["img_paths"]
        if not path.is_file():
            raise FileNotFoundError(f"image {label['img_paths']!r} (sample {index}) not found in {self.images_folder}")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: OpenCV cannot read this image")
        height, width = label["img_height"], label["img_width"]
        if image.shape[:2] != (height, width):
            raise ValueError(f"{path} is {image.shape[1]}x{image.shape[0]} but its label says {width}x{height}")
        persons = [label["keypoints"]] + [other["keypoints"] for other in label["processed_other_annotations"]]
        return TrainingSample(
            image=image,
            mask=crowd_mask(label["segmentations"], height, width),
            keypoints=np.array(persons, dtype=np.float64),
            objpos=np.array(label["objpos"], dtype=np.float64),
            scale_provided=float(label["scale_provided"]),
        )

    def transformed_sample(self, index: int, rng: np.random.Generator | None = None) -> TrainingSample:
        """Sample ``index`` after the transform chain, with ``rng`` or this epoch's generator for ``index``."""
        return self._transform(self.raw_sample(index), index, rng)

    def _transform(self, sample: TrainingSample, index: int, rng: np.random.Generator | None) -> TrainingSample:
        if rng is None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample

    def make_targets(self, sample: TrainingSample) -> dict[str, np.ndarray]:
        """Network input, target maps and loss masks (float32, see the class docstring) of a transformed sample."""
        height, width = sample.image.shape[:2]
        map_size = (height // self.stride, width // self.stride)
        mask = loss_mask(sample.mask, map_size, self.stride)
        image = (sample.image.astype(np.float32) - 128) / 256
        skeleton = self.skeleton
        return {
            "image": np.ascontiguousarray(image.transpose(2, 0, 1)),
            "keypoint_maps": keypoint_heatmaps(
                sample.keypoints, map_size, stride=self.stride, sigma=self.sigma, skeleton=skeleton
            ),
            "keypoint_mask": np.repeat(mask[None], skeleton.num_heatmaps, axis=0),
            "paf_maps": part_affinity_fields(
                sample.keypoints, map_size, stride=self.stride, thickness=self.paf_thickness, skeleton=skeleton
            ),
            "paf_mask": np.repeat(mask[None], skeleton.num_pafs, axis=0),
        }

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < len(self._labels):
            raise IndexError(f"sample index {index} out of range for {len(self._labels)} samples")
        skipped = np.full(MAX_REPLACEMENTS, -1, dtype=np.int64)
        tries = min(MAX_REPLACEMENTS, len(self._labels) - 1) + 1
        for attempt in range(tries):
            candidate = (index + attempt) % len(self._labels)
            try:
                sample = self.raw_sample(candidate)
            except (OSError, ValueError) as error:
                logger.warning("skipping unreadable training sample %d: %s", candidate, error)
                if attempt < MAX_REPLACEMENTS:
                    skipped[attempt] = candidate
                continue
            return {**self.make_targets(self._transform(sample, candidate, None)), "skipped": skipped}
        raise UnreadableSamplesError(
            f"{tries} samples in a row (in label order, from sample {index}) could not be read (see the warnings): "
            f"check the labels and the images folder {self.images_folder}"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} samples, images_folder={str(self.images_folder)!r}, "
            f"augment={self.augment}, seed={self.seed}, epoch={self.epoch}, skeleton={self.skeleton.name!r})"
        )
