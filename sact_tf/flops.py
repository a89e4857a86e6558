"""FLOP accounting identical to the original `flopsometer.py`.

A convolution costs `2 * output_positions * c_out * kh * kw * c_in` FLOPs
(one multiply and one add per weight and output; biases and batch norm are
not counted). With an output mask, only the positions where the mask is one
are counted. All counts are int64 tensors of shape `[batch]`.
"""

import tensorflow as tf


def conv2d_flops(output_shape, kernel_size, in_channels, out_channels,
                 output_mask=None):
  """FLOPs of a convolution per image, as `flopsometer.conv2d` counts them.

  Args:
    output_shape: int `[4]` tensor, the (dynamic) shape `[batch, h, w,
      c_out]` of the convolution's output.
    kernel_size: pair of ints `(kh, kw)`.
    in_channels: int, `c_in`.
    out_channels: int, `c_out`.
    output_mask: optional float `[batch, h, w, 1]` of zeros and ones: the
      output positions that are really computed. Defaults to all of them.

  Returns:
    int64 `[batch]`.
  """
  if output_mask is None:
    shape = tf.cast(output_shape, tf.int64)
    positions = tf.fill(shape[:1], shape[1] * shape[2])
  else:
    positions = tf.cast(tf.reduce_sum(output_mask, [1, 2, 3]), tf.int64)
  per_position = 2 * out_channels * kernel_size[0] * kernel_size[1] * (
      in_channels)
  return positions * per_position
