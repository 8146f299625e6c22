"""Grounding mIoU (METHOD §5, seed): mIoU when each image's vocabulary is only its ground-truth classes.

Per image: `present_classes` picks the class ids in its ground truth, the model scores only those
(class_embeds[ids], class_valid[ids]), and `to_global_labels` maps the local argmax back to dataset ids
before `SegmentationMetrics.update` — so the usual metric measures grounding instead of recognition.
"""

from __future__ import annotations

import torch
from torch import Tensor


def present_classes(target: Tensor, ignore_index: int = -1) -> Tensor:
    """Sorted unique class ids in target ([H, W] or any shape) except ignore_index → long [K].

    K may be 0 (an image that is all ignore); the caller then skips the image.
    """
    ids = torch.unique(target.detach().to(torch.long))
    return ids[ids != ignore_index]


def to_global_labels(local_labels: Tensor, class_ids: Tensor) -> Tensor:
    """Labels indexing the K classes of `class_ids` → dataset class ids; -1 (unknown) stays -1.

    local_labels long [...] in [-1, K); class_ids long [K]. Raises ValueError for labels ≥ K.
    """
    class_ids = class_ids.to(local_labels.device, torch.long)
    if local_labels.numel() and int(local_labels.max()) >= class_ids.numel():
        raise ValueError(f"local labels reach {int(local_labels.max())} but only {class_ids.numel()} classes")
    if class_ids.numel() == 0:  # nothing to map to: every label is -1 (checked above)
        return local_labels.clone()
    return torch.where(local_labels < 0, -1, class_ids[local_labels.clamp(min=0)])
