"""COCO detection metrics with pycocotools, from arrays in memory.

`coco_metrics` runs pycocotools' `COCOeval` (the reference implementation
of the COCO detection metrics: AP averaged over IoU thresholds 0.5:0.95,
101-point interpolated precision) on ground truths and detections given
as arrays, without writing COCO JSON files.
"""

import contextlib
import io

import numpy as np
from pycocotools import coco
from pycocotools import cocoeval

# The order of `COCOeval.stats`.
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10",
                "AR100", "ARs", "ARm", "ARl")


def _xywh(boxes):
  """`yxyx` -> COCO's `[x, y, width, height]`."""
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  return np.stack([boxes[:, 1], boxes[:, 0], boxes[:, 3] - boxes[:, 1],
                   boxes[:, 2] - boxes[:, 0]], 1)


def coco_metrics(ground_truths, detections, num_classes):
  """COCO AP / AR of detections against ground truths.

  Args:
    ground_truths: list (one per image) of dicts with `boxes` float
      `[M, 4]` (`yxyx` pixels) and `labels` int `[M]`; rows with label -1
      are padding.
    detections: list (same images) of dicts with `boxes` `[K, 4]`,
      `scores` `[K]`, `labels` `[K]`; rows with label -1 are padding.
    num_classes: int. Class ids are `0 .. num_classes - 1`.

  Returns:
    dict of floats, `METRIC_NAMES` (COCO's `stats`; -1 where the ground
    truths have no object of that size, as pycocotools reports).

  Raises:
    ValueError: the lists differ in length, or there is no ground-truth
      object at all.
  """
  if len(ground_truths) != len(detections):
    raise ValueError(f"{len(ground_truths)} ground truths but "
                     f"{len(detections)} detections")
  images, annotations, results = [], [], []
  for image_id, (truth, found) in enumerate(zip(ground_truths, detections)):
    images.append({"id": image_id})
    labels = np.asarray(truth["labels"]).reshape(-1)
    keep = labels >= 0
    for box, label in zip(_xywh(truth["boxes"])[keep], labels[keep]):
      annotations.append({
          "id": len(annotations) + 1, "image_id": image_id,
          "category_id": int(label), "bbox": box.tolist(),
          "area": float(box[2] * box[3]), "iscrowd": 0})
    labels = np.asarray(found["labels"]).reshape(-1)
    keep = labels >= 0
    for box, label, score in zip(_xywh(found["boxes"])[keep], labels[keep],
                                 np.asarray(found["scores"]).reshape(-1)[keep]):
      results.append({"image_id": image_id, "category_id": int(label),
                      "bbox": box.tolist(), "score": float(score)})
  if not annotations:
    raise ValueError("the ground truths hold no object: COCO AP is undefined")
  if not results:
    return {name: 0.0 for name in METRIC_NAMES}
  truth = coco.COCO()
  truth.dataset = {"images": images, "annotations": annotations,
                   "categories": [{"id": c} for c in range(num_classes)]}
  with contextlib.redirect_stdout(io.StringIO()):
    truth.createIndex()
    evaluation = cocoeval.COCOeval(truth, truth.loadRes(results), "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
  return {name: float(value)
          for name, value in zip(METRIC_NAMES, evaluation.stats)}
