"""FLOP accounting identical to the original `flopsometer.py`.

A convolution costs `2 * output_positions * c_out * kh * kw * c_in` FLOPs
(one multiply and one add per weight and output; biases and batch norm are
not counted). With an output mask, only the positions where the mask is one
are counted. All counts are int64 tensors of shape `[batch]`.
"""

import tensorflow as tf


def conv2d_flops(outputs, kernel_size, in_channels, output_mask=None):
  """FLOPs of a convolution per image, as `flopsometer.conv2d` counts them.

  Args:
    outputs: float `[batch, h, w, c_out]`, the convolution's output (only
      its shape is used; dynamic shapes are fine).
    kernel_size: pair of ints `(kh, kw)`.
    in_channels: int, `c_in`.
    output_mask: optional float `[batch, h, w, 1]` of zeros and ones: the
      output positions that are really computed. Defaults to all of them.

  Returns:
    int64 `[batch]`.
  """
  shape = tf.shape(outputs, out_type=tf.int64)
  if output_mask is None:
    positions = tf.fill(shape[:1], shape[1] * shape[2])
  else:
    positions = tf.cast(tf.reduce_sum(output_mask, [1, 2, 3]), tf.int64)
  per_position = 2 * int(outputs.shape[-1]) * kernel_size[0] * kernel_size[1] * (
      in_channels)
  return positions * per_position
