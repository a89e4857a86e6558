"""Detections drawn over the SACT ponder cost map."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

from sact_tf.utils import files

SCORE_THRESHOLD = 0.3


def draw(outputs, path, count=8, score_threshold=SCORE_THRESHOLD):
  """Draws `count` images: ground truth (green), detections (red).

  Args:
    outputs: dict of numpy arrays: `images` uint8 `[N, H, W, 3]`,
      `true_boxes`, `boxes` (`yxyx` pixels), `labels`, `confidence`, and
      optionally `ponder_cost_map` `[N, H, W, 1]`, shown under the image.
    path: str. The PNG written (atomically).
    count: int. Images drawn. Defaults to 8.
    score_threshold: float. Detections drawn from this confidence.
  """
  count = min(count, len(outputs["images"]))
  ponder = outputs.get("ponder_cost_map")
  figure, axes = plt.subplots(1, count, figsize=(2.2 * count, 2.4),
                              squeeze=False)
  for n, axis in enumerate(axes[0]):
    axis.imshow(outputs["images"][n])
    if ponder is not None:
      shown = axis.imshow(ponder[n, ..., 0], cmap="viridis", alpha=0.55)
      figure.colorbar(shown, ax=axis, fraction=0.046)
    for box in outputs["true_boxes"][n]:
      if box[0] >= 0:
        axis.add_patch(plt.Rectangle((box[1] - 0.5, box[0] - 0.5),
                                     box[3] - box[1], box[2] - box[0],
                                     fill=False, color="lime", lw=1))
    for box, label, score in zip(outputs["boxes"][n], outputs["labels"][n],
                                 outputs["confidence"][n]):
      if label >= 0 and score >= score_threshold:
        axis.add_patch(plt.Rectangle((box[1] - 0.5, box[0] - 0.5),
                                     box[3] - box[1], box[2] - box[0],
                                     fill=False, color="red", lw=1))
        axis.text(box[1], box[0], f"{label} {score:.2f}", color="red",
                  fontsize=6, va="bottom")
    axis.axis("off")
  figure.tight_layout()
  with files.atomic_output(path, overwrite=True) as tmp:
    figure.savefig(tmp, dpi=100, format="png")
  plt.close(figure)
