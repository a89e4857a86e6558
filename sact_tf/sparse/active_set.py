"""The active positions of a feature map, as gather and scatter indices."""

from typing import NamedTuple

import tensorflow as tf


class ActiveSet(NamedTuple):
  """Active positions of a `[batch, H, W, C]` map.

  A set is held as `(b, h, w)` indices, for gathering rows from and
  scattering rows into the map itself, and as row indices into its padded
  layout (`gather.to_padded`): the map zero-padded by one position on each
  side and flattened to `[batch * (H+2) * (W+2), C]`, where the 3x3
  neighbours of a position are fixed offsets away and neighbours outside
  the image read the zero ring, exactly as SAME zero padding. `ordinals`
  maps each row of the padded layout to its entry, so that values computed
  on the entries of one set (a conv's output rows) are read at the
  neighbours of another's (`gather.neighbour_entries`) without scattering
  them into a layout first.

  A set may be padded to a static capacity (for XLA) with dummy entries. A
  dummy gathers the row of `(0, 0, 0)` (from a padded layout, row 0, on the
  zero ring) and is scattered as a zero row, so it never changes a real
  position; no ordinal points at it, and whatever is computed for it is
  discarded.

  Fields:
    indices: int32 `[K, 3]`, the `(b, h, w)` of each entry (dummies: 0).
    rows: int32 `[K]`, rows of the map flattened to `[batch * H * W, C]`
      (dummies: 0).
    padded_rows: int32 `[K]`, rows in the padded layout (dummies: 0).
    ordinals: int32 `[batch * (H+2) * (W+2)]`, per row of the padded layout
      the index of its entry, or `K` where the set has none (the zero ring,
      positions outside the set).
    valid: bool `[K]`, False for dummy entries.
    count: int32 scalar, the number of real entries.
    has_dummies: Python bool, whether the set was padded to a capacity.
  """

  indices: tf.Tensor
  rows: tf.Tensor
  padded_rows: tf.Tensor
  ordinals: tf.Tensor
  valid: tf.Tensor
  count: tf.Tensor
  has_dummies: bool


def dilate_mask(mask):
  """3x3 dilation of a mask: where a 3x3 stride-1 convolution reads from.

  The original computes it as a 3x3 stride-1 SAME max pool; the first
  convolution of a residual branch must be computed on the dilated mask so
  that the 3x3 convolution after it sees correct neighbours. Computed here
  as a separable maximum of shifted slices (the same values; cheaper than a
  one-channel max pool on CPU).

  Args:
    mask: float `[batch, h, w, 1]` of zeros and ones.

  Returns:
    float `[batch, h, w, 1]`.
  """
  padded = tf.pad(mask, [[0, 0], [1, 1], [1, 1], [0, 0]])
  rows = tf.maximum(tf.maximum(padded[:, :-2], padded[:, 1:-1]),
                    padded[:, 2:])
  return tf.maximum(tf.maximum(rows[:, :, :-2], rows[:, :, 1:-1]),
                    rows[:, :, 2:])


def bucket_capacity(count, total, num_buckets):
  """`count` rounded up to a multiple of `ceil(total / num_buckets)`.

  Padding active sets to these capacities bounds the number of distinct
  shapes, hence XLA compilations, per map size to `num_buckets`.

  Args:
    count: int32 scalar, the number of active positions.
    total: int32 scalar, the number of positions of the map.
    num_buckets: int.

  Returns:
    int32 scalar in `[count, count + step)`.
  """
  step = (total + num_buckets - 1) // num_buckets
  return tf.maximum((count + step - 1) // step, 1) * step


def active_set(mask, num_buckets=None):
  """The active positions of `mask`, optionally padded to a bucket.

  Args:
    mask: float `[batch, H, W, 1]` of zeros and ones.
    num_buckets: optional int: pad the set with dummy entries to
      `bucket_capacity(count, batch * H * W, num_buckets)`.

  Returns:
    `ActiveSet`, in row-major order of `(batch, h, w)`.
  """
  shape = tf.shape(mask, out_type=tf.int32)
  indices = tf.cast(tf.where(mask[:, :, :, 0] > 0), tf.int32)
  b, h, w = tf.unstack(indices, axis=1)
  rows = (b * shape[1] + h) * shape[2] + w
  padded_rows = (b * (shape[1] + 2) + h + 1) * (shape[2] + 2) + w + 1
  count = tf.shape(indices)[0]
  valid = tf.ones_like(padded_rows, tf.bool)
  capacity = count
  if num_buckets is not None:
    capacity = bucket_capacity(count, tf.reduce_prod(shape[:3]),
                               num_buckets)
    pad = capacity - count
    indices = tf.pad(indices, [[0, pad], [0, 0]])
    rows = tf.pad(rows, [[0, pad]])
    padded_rows = tf.pad(padded_rows, [[0, pad]])
    valid = tf.pad(valid, [[0, pad]], constant_values=False)
  # Entries are in row-major order: a position's entry index is the number
  # of set positions before it.
  in_set = tf.reshape(mask > 0, [-1])
  ordinals = tf.where(in_set, tf.cumsum(tf.cast(in_set, tf.int32),
                                        exclusive=True), capacity)
  ordinals = tf.pad(tf.reshape(ordinals, shape[:3]), [[0, 0], [1, 1], [1, 1]],
                    constant_values=capacity)
  return ActiveSet(indices, rows, padded_rows, tf.reshape(ordinals, [-1]),
                   valid, count, num_buckets is not None)


def zero_dummies(rows, active):
  """`rows` `[K, C]` with the rows of dummy entries set to zero."""
  if not active.has_dummies:
    return rows
  return rows * tf.cast(active.valid, rows.dtype)[:, None]
