"""Helpers on the `[batch, h, w, 1]` float masks of active positions."""

import tensorflow as tf


def dilate_mask(mask):
  """3x3 dilation of a mask: where a 3x3 stride-1 convolution reads from.

  The original computes it as a 3x3 stride-1 SAME max pool; the first
  convolution of a residual branch must be computed on the dilated mask so
  that the 3x3 convolution after it sees correct neighbours.

  Args:
    mask: float32 `[batch, h, w, 1]` of zeros and ones.

  Returns:
    float32 `[batch, h, w, 1]`.
  """
  return tf.nn.max_pool2d(mask, 3, 1, "SAME")
