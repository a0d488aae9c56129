"""Training: COCO label preparation, augmentations, ground-truth targets, dataset, loss and trainer.

Submodules are imported on demand (``from lightpose.training.dataset import CocoKeypointsDataset``);
this package imports nothing heavy itself.
"""
