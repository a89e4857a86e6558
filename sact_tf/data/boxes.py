"""Box-aware image ops and the checks of detection annotations.

Boxes are `ymin, xmin, ymax, xmax` in pixels (keras-hub's `"yxyx"`), padded
with rows of -1 whose label is -1. The image ops work on one image or a
batch, inside `tf.data` or a `tf.function`.
"""

import numpy as np
import tensorflow as tf


def check_annotations(boxes, labels, image_size, num_classes, name="data"):
  """Raises a one-line ValueError on a bad box or class id.

  Args:
    boxes: float `[N, M, 4]` (`yxyx` pixels, -1 rows are padding).
    labels: int `[N, M]` (-1 is padding).
    image_size: `(height, width)` of the images.
    num_classes: int.
    name: str. What the error names (a file, a split).
  """
  boxes, labels = np.asarray(boxes), np.asarray(labels)
  if boxes.ndim != 3 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[
      :2]:
    raise ValueError(f"{name}: boxes must be [N, M, 4] and labels [N, M], "
                     f"received {boxes.shape} and {labels.shape}")
  valid = labels >= 0
  bad = np.argwhere(labels >= num_classes)
  if len(bad):
    n, m = bad[0]
    raise ValueError(f"{name}: class id {labels[n, m]} of image {n} is out of "
                     f"range [0, {num_classes})")
  height, width = image_size
  b = boxes[valid]
  outside = ((b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > height) |
             (b[:, 3] > width) | (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
  if outside.any():
    n = int(np.argwhere(valid)[np.argmax(outside)][0])
    raise ValueError(f"{name}: box {b[np.argmax(outside)].tolist()} of image "
                     f"{n} is empty or outside the {height}x{width} image")


def resize(images, boxes, size):
  """Resizes images (bilinear) to `size` and scales their boxes with them.

  Args:
    images: float32 `[..., H, W, C]`.
    boxes: float32 `[..., M, 4]` pixels; padding rows (-1) stay -1.
    size: `(height, width)`.

  Returns:
    `(images [..., size[0], size[1], C], boxes)`.
  """
  shape = tf.cast(tf.shape(images)[-3:-1], tf.float32)
  scale = tf.cast(tf.constant(size), tf.float32) / shape
  scale = tf.concat([scale, scale], 0)
  scaled = tf.where(boxes < 0, boxes, boxes * scale)
  return tf.image.resize(images, size), scaled


def fitted_size(shape, size):
  """Sides of images fitted into `size` x `size`, aspect ratio kept.

  Args:
    shape: int or float `[..., 2]`, `(height, width)` of images.
    size: int.

  Returns:
    int32 `[..., 2]`: the longer side becomes `size`, the other is scaled
    with it (rounded, at least 1).
  """
  shape = tf.cast(shape, tf.float32)
  scale = tf.cast(size, tf.float32) / tf.reduce_max(shape, -1, keepdims=True)
  return tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1)


def scale_boxes(boxes, factors):
  """Boxes `[..., 4]` times `(y, x)` factors `[..., 2]`; -1 padding stays."""
  factors = tf.cast(tf.concat([factors, factors], -1), boxes.dtype)
  return tf.where(boxes < 0, boxes, boxes * factors)


def resize_with_pad(image, boxes, size):
  """Fits one image into `size` x `size`, its boxes with it.

  The image is resized bilinearly to `fitted_size` (aspect ratio kept) and
  padded with zeros at the bottom and the right, so that a box scales by
  `fitted_size / (height, width)` and moves nowhere.

  Args:
    image: uint8 `[height, width, 3]`.
    boxes: float32 `[M, 4]` (`yxyx` pixels, -1 rows are padding).
    size: int.

  Returns:
    `(image uint8 [size, size, 3], boxes float32 [M, 4])`.
  """
  shape = tf.shape(image)[:2]
  fitted = fitted_size(shape, size)
  resized = tf.image.resize(image, fitted)
  resized = tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)
  padded = tf.image.pad_to_bounding_box(resized, 0, 0, size, size)
  factors = tf.cast(fitted, tf.float32) / tf.cast(shape, tf.float32)
  return padded, scale_boxes(tf.cast(boxes, tf.float32), factors)


def scale_images(images):
  """uint8 images -> float32 in [-1, 1], the detection backbone's input."""
  return tf.cast(images, tf.float32) / 127.5 - 1.0


def detection_input(image, size):
  """One decoded image (uint8 `[h, w, 3]`) as a detector's input.

  `resize_with_pad` to `size`, then `scale_images`: float32
  `[size, size, 3]` in [-1, 1]; the boxes found on it scale back to the
  image by `(h, w) / fitted_size((h, w), size)`.
  """
  image, _ = resize_with_pad(image, tf.zeros([0, 4]), size)
  return scale_images(image)


def flip_left_right(images, boxes):
  """Mirrors images and boxes left-right (`x -> W - x`, padding kept)."""
  width = tf.cast(tf.shape(images)[-2], boxes.dtype)
  ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
  flipped = tf.stack([ymin, width - xmax, ymax, width - xmin], -1)
  return (tf.reverse(images, [-2]),
          tf.where(boxes < 0, boxes, flipped))


def random_flip_left_right(image, boxes, seed=None):
  """`flip_left_right` of one image with probability 1/2."""
  flip = tf.random.uniform([], seed=seed) < 0.5
  return tf.cond(flip, lambda: flip_left_right(image, boxes),
                 lambda: (image, boxes))


def box_mask(boxes, height, width):
  """1 inside any of the boxes, float32 `[..., height, width, 1]`.

  Pixel `(i, j)` is inside `yxyx` box `b` when `b0 <= i + 0.5 < b2` and
  `b1 <= j + 0.5 < b3` (its centre); padding rows (-1) cover nothing.
  """
  ys = tf.range(height, dtype=tf.float32) + 0.5
  xs = tf.range(width, dtype=tf.float32) + 0.5
  b = tf.cast(boxes, tf.float32)[..., None, None, :]
  inside = ((ys[:, None] >= b[..., 0]) & (ys[:, None] < b[..., 2]) &
            (xs[None, :] >= b[..., 1]) & (xs[None, :] < b[..., 3]))
  return tf.cast(tf.reduce_any(inside, axis=-3), tf.float32)[..., None]
