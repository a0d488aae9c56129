"""A Backend that returns heatmaps and PAFs rendered from known people: real poses without trained weights."""

from __future__ import annotations

import numpy as np

from lightpose.skeleton import STRIDE
from lightpose.training.synthetic import render_maps, stick_figure


class RenderedBackend:
    """Each call t renders two standing people whose necks move `step` input pixels right per call.

    People are placed relative to the network input's size: necks at 30% and 70% of its width, a quarter down,
    each 60% of its height tall.
    """

    name = "rendered"
    description = "rendered maps (test backend)"

    def __init__(self, step: float = 4.0) -> None:
        self.step = step
        self.calls = 0
        self.input_size: tuple[int, int] | None = None

    def people(self, t: int, input_size: tuple[int, int]) -> list[np.ndarray]:
        """The (18, 2) keypoints in network-input pixels of the people rendered at call t."""
        h, w = input_size
        return [stick_figure(fx * w + self.step * t, 0.25 * h, 0.6 * h) for fx in (0.3, 0.7)]

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, _, h, w = batch.shape
        self.input_size = (h, w)
        heatmaps, pafs = [], []
        for _ in range(n):
            maps = render_maps(self.people(self.calls, (h, w)), (h // STRIDE, w // STRIDE), paf_thickness=2)
            heatmaps.append(maps[0])
            pafs.append(maps[1])
            self.calls += 1
        return np.stack(heatmaps), np.stack(pafs)
