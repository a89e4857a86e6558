"""Spatial mean pooling of feature maps."""

import tensorflow as tf


def spatial_mean(x):
  """The mean of a map over its positions, as a matmul.

  Same values as `tf.reduce_mean(x, [1, 2], keepdims=True)` up to float
  rounding; computed as `[batch, 1, h * w] x [batch, h * w, c]`, which on a
  2-core CPU took 0.38 ms instead of 1.0 ms for one 56x56x256 map and
  1.9 ms instead of 7.4 ms for eight (within 0.05 ms of it on the smaller
  maps of ResNet-101).

  Args:
    x: float `[batch, h, w, c]`.

  Returns:
    float `[batch, 1, 1, c]`.
  """
  shape = tf.shape(x)
  area = shape[1] * shape[2]
  weights = tf.fill(tf.stack([shape[0], 1, area]),
                    1.0 / tf.cast(area, x.dtype))
  sums = tf.matmul(weights, tf.reshape(x, [shape[0], area, x.shape[-1]]))
  return tf.reshape(sums, [shape[0], 1, 1, x.shape[-1]])
