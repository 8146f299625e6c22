"""Known-answer tests for the confusion-matrix metrics (detectron2 convention)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from openseg_cli.errors import UsageError
from openseg_cli.eval.metrics import SegmentationMetrics, confusion_counts

# One row of 10 pixels; the last one is ignored (target -1) although predicted 2; one pixel is unknown.
TARGET = torch.tensor([[[0, 0, 0, 0, 1, 1, 1, 2, 2, -1]]])
PREDS = torch.tensor([[[0, 0, 1, -1, 1, 1, 0, 2, 1, 2]]])


def test_three_class_confusion_by_hand():
    metric = SegmentationMetrics(num_classes=3)
    metric.update(PREDS, TARGET)
    # rows = ground truth, columns = prediction, last column = unknown.
    assert metric.confusion.tolist() == [[2, 1, 0, 1], [1, 2, 0, 0], [0, 1, 1, 0]]
    result = metric.compute()
    # gt = (4, 3, 2), predicted = (3, 4, 1), TP = (2, 2, 1); IoU = TP / (gt + pred - TP).
    iou = [Fraction(2, 5), Fraction(2, 5), Fraction(1, 2)]
    assert result["per_class_iou"] == pytest.approx([float(v) for v in iou])
    assert result["miou"] == pytest.approx(float(sum(iou) / 3))
    assert result["pixel_accuracy"] == pytest.approx(float(Fraction(5, 9)))
    assert result["mean_accuracy"] == pytest.approx(
        float((Fraction(2, 4) + Fraction(2, 3) + Fraction(1, 2)) / 3)
    )
    assert result["fwiou"] == pytest.approx(float((4 * iou[0] + 3 * iou[1] + 2 * iou[2]) / 9))
    assert (result["num_pixels"], result["unknown_pixels"], result["num_classes_evaluated"]) == (9, 1, 3)


def test_class_absent_from_ground_truth_is_left_out_of_the_mean():
    metric = SegmentationMetrics(num_classes=3)
    metric.update(torch.tensor([[0, 0, 1, 1]]), torch.tensor([[0, 0, 1, 1]]))
    metric.update(torch.tensor([[2]]), torch.tensor([[0]]))  # class 2 predicted, never in ground truth
    result = metric.compute()
    assert result["per_class_iou"][2] is None and result["per_class_accuracy"][2] is None
    # class 0: TP 2, gt 3, pred 2 → 2/3; class 1: 1; mean over the two evaluated classes only.
    assert result["per_class_iou"][:2] == pytest.approx([2 / 3, 1.0])
    assert result["miou"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert result["num_classes_evaluated"] == 2


def test_merging_two_halves_equals_the_whole():
    generator = torch.Generator().manual_seed(0)
    preds = torch.randint(-1, 5, (4, 6, 7), generator=generator)
    target = torch.randint(-1, 5, (4, 6, 7), generator=generator)
    whole = SegmentationMetrics(5)
    whole.update(preds, target)
    first, second = SegmentationMetrics(5), SegmentationMetrics(5)
    first.update(preds[:2], target[:2])
    second.update(preds[2:], target[2:])
    first.merge(second)
    assert torch.equal(first.confusion, whole.confusion)
    assert first.compute() == whole.compute()
    rebuilt = SegmentationMetrics.from_confusion(second.confusion + SegmentationMetrics(5).confusion)
    rebuilt.merge(SegmentationMetrics.from_confusion(confusion_counts(preds[:2], target[:2], 5)))
    assert rebuilt.compute() == whole.compute()
    whole.reset()
    assert int(whole.confusion.sum()) == 0


def test_agrees_with_torchmetrics_when_nothing_is_unknown():
    generator = torch.Generator().manual_seed(1)
    target = torch.randint(0, 6, (2, 16, 16), generator=generator)
    preds = torch.where(
        torch.rand(2, 16, 16, generator=generator) < 0.6,
        target,
        torch.randint(0, 6, (2, 16, 16), generator=generator),
    )
    target[0, :3] = 255  # ignore_index other than -1 (e.g. ADE20K's 255)
    ours = SegmentationMetrics(6, ignore_index=255)
    ours.update(preds, target)
    reference = MulticlassJaccardIndex(num_classes=6, average=None, ignore_index=255)
    reference.update(preds, target)
    assert ours.compute()["per_class_iou"] == pytest.approx(reference.compute().tolist())


def test_deterministic_mode_and_a_large_vocabulary():
    # torchmetrics' own bincount would build a [pixels, C²] tensor in deterministic mode; ours must not.
    target = torch.randint(0, 847, (2, 32, 32))
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        metric = SegmentationMetrics(847)
        metric.update(target, target)
    finally:
        torch.use_deterministic_algorithms(previous)
    result = metric.compute()
    assert result["miou"] == 1.0 and result["num_pixels"] == 2 * 32 * 32


def test_bad_inputs():
    metric = SegmentationMetrics(3)
    with pytest.raises(UsageError, match="class id 3"):
        metric.update(torch.tensor([[0]]), torch.tensor([[3]]))
    with pytest.raises(ValueError, match="not scores"):
        metric.update(torch.tensor([[0.5]]), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="preds must be in"):
        metric.update(torch.tensor([[-2]]), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="differ in shape"):
        metric.update(torch.zeros(1, 2, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long))


def test_nothing_evaluated_gives_nan_not_an_error():
    metric = SegmentationMetrics(2)
    metric.update(torch.tensor([[0, 1]]), torch.tensor([[-1, -1]]))
    result = metric.compute()
    assert math.isnan(result["miou"]) and result["per_class_iou"] == [None, None]


def test_torchmetrics_sync_on_compute_in_a_process_group(tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or dist.is_initialized():
        pytest.skip("torch.distributed unavailable or already initialised")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        synced = SegmentationMetrics(3, sync_on_compute=True)
        synced.update(PREDS, TARGET)
        explicit = SegmentationMetrics(3)
        explicit.update(PREDS, TARGET)
        summed = explicit.confusion.clone()
        dist.all_reduce(summed)  # what the engine does, then from_confusion
        assert synced.compute() == SegmentationMetrics.from_confusion(summed).compute()
        assert torch.equal(synced.confusion, explicit.confusion)  # local counts restored after the sync
    finally:
        dist.destroy_process_group()


def _numpy_reference(
    preds: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int
) -> np.ndarray:
    """One pixel at a time: row = ground truth, column = prediction (-1 → column C), ignored skipped."""
    matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for pred, gt in zip(preds.ravel().tolist(), target.ravel().tolist(), strict=True):
        if gt != ignore_index:
            matrix[gt, pred if pred >= 0 else num_classes] += 1
    return matrix


@pytest.mark.parametrize("ignore_index", [-1, 7, 255, 0])  # 7 = C itself, 0 = a class id turned ignore
def test_confusion_equals_a_plain_numpy_count(ignore_index):
    rng = np.random.default_rng(ignore_index + 10)
    num_classes = 7
    target = rng.integers(0, num_classes, (2, 13, 9))
    target[rng.random(target.shape) < 0.2] = ignore_index
    preds = rng.integers(-1, num_classes, target.shape)  # about 1 in 8 unknown
    preds[(target == ignore_index) & (rng.random(target.shape) < 0.5)] = 99  # never counted, never checked
    expected = _numpy_reference(preds, target, num_classes, ignore_index)
    assert expected[:, num_classes].sum() > 0  # the unknown column is exercised
    for dtype in (torch.long, torch.int32):  # int32 labels count the same
        got = confusion_counts(
            torch.from_numpy(preds).to(dtype), torch.from_numpy(target), num_classes, ignore_index
        )
        assert got.dtype == torch.long and got.shape == (num_classes, num_classes + 1)
        np.testing.assert_array_equal(got.numpy(), expected)
    metric = SegmentationMetrics(num_classes, ignore_index=ignore_index)
    with torch.inference_mode():  # as the engine runs it: the state is an inference tensor
        metric.update(torch.from_numpy(preds), torch.from_numpy(target))
        metric.update(torch.from_numpy(preds), torch.from_numpy(target))
    np.testing.assert_array_equal(metric.confusion.numpy(), 2 * expected)


def test_a_real_class_id_equal_to_c_is_refused_not_hidden_with_the_ignored_pixels():
    target = torch.tensor([[0, -1, 3, 1]])  # 3 = C: outside [0, 3), next to an ignored pixel
    with pytest.raises(UsageError, match="class id 3"):
        confusion_counts(torch.zeros_like(target), target, 3, ignore_index=-1)
    with pytest.raises(UsageError, match="class id -5"):
        confusion_counts(torch.zeros_like(target), torch.tensor([[0, -5, 1, 1]]), 3, ignore_index=-1)
    with pytest.raises(ValueError, match=r"got \[0, 4\]"):  # a counted pred out of range names the range
        confusion_counts(torch.tensor([[0, 4, 1, 1]]), torch.tensor([[0, 1, 2, 1]]), 3)
    target_before = target.clone()
    assert confusion_counts(torch.zeros_like(target), target, 4).sum() == 3  # 3 is a class when C = 4
    assert torch.equal(target, target_before)  # the caller's tensors are not modified
    assert confusion_counts(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 2).sum() == 0
