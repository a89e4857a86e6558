"""TensorBoard summaries: scalars and the original's SACT heatmap images."""

import tensorflow as tf

HEATMAP_IMAGES = 3
HEATMAP_ALPHA = 0.75


def sact_heatmap_image(images, heat, max_value, alpha=HEATMAP_ALPHA,
                       border=5):
  """The original `summary_utils.sact_image_heatmap`.

  Each image (min-max normalized to [0, 1]) next to a copy with the map in
  the red channel, `alpha * map / max_value` over `(1 - alpha) * image`,
  with a black border between them.

  Args:
    images: float32 `[n, H, W, 3]`, the network inputs.
    heat: float32 `[n, H, W, 1]`, the per-block maps summed at the input
      size (the model's `ponder_cost_map` or `num_units_map`).
    max_value: float, the largest possible sum of the maps (the number of
      units of all blocks; plus the number of blocks for ponder cost).
    alpha: float. Defaults to 0.75.
    border: int, pixels. Defaults to 5.

  Returns:
    float32 `[n, H, 2 W + border, 3]` in [0, 1].
  """
  images = tf.convert_to_tensor(images, tf.float32)
  images -= tf.reduce_min(images, [1, 2, 3], keepdims=True)
  images /= tf.maximum(tf.reduce_max(images, [1, 2, 3], keepdims=True), 1e-12)
  heat = tf.cast(heat, tf.float32)
  heat = tf.concat([heat, tf.zeros_like(heat), tf.zeros_like(heat)], -1)
  overlay = images * (1.0 - alpha) + heat * (alpha / max_value)
  gap = tf.zeros_like(images[:, :, :border])
  return tf.clip_by_value(tf.concat([images, gap, overlay], 2), 0.0, 1.0)


def heatmap_images(model, images, outputs):
  """`{"heatmaps/ponder_cost": ..., "heatmaps/num_units": ...}` of a SACT model."""
  num_units = sum(len(block.units) for block in model.blocks)
  return {
      "heatmaps/ponder_cost": sact_heatmap_image(
          images, outputs["ponder_cost_map"], num_units + len(model.blocks)),
      "heatmaps/num_units": sact_heatmap_image(
          images, outputs["num_units_map"], num_units),
  }


def write(writer, step, scalars=None, images=None):
  """Writes scalars and `[n, h, w, c]` images at `step`, then flushes."""
  with writer.as_default(step=step):
    for name, value in (scalars or {}).items():
      tf.summary.scalar(name, value)
    for name, value in (images or {}).items():
      tf.summary.image(name, value, max_outputs=HEATMAP_IMAGES)
  writer.flush()
