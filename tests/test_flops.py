"""Tests of sact_tf.flops, ported from the original `flopsometer_test.py`."""

import numpy as np
import tensorflow as tf

from sact_tf import flops
from sact_tf.layers import MaskedConv2D


def conv_flops(inputs, kernel, strides=1, output_mask=None):
  layer = MaskedConv2D(8, kernel, strides)
  return layer(inputs, output_mask=output_mask)[1].numpy()


def test_conv2d():
  expected = 2 * 16 * 16 * 3 * 3 * 8 * 4
  np.testing.assert_array_equal(conv_flops(tf.zeros([2, 16, 16, 4]), 3),
                                [expected, expected])


def test_conv2d_unknown_size():
  layer = MaskedConv2D(8, 3)
  run = tf.function(lambda x: layer(x)[1], input_signature=[
      tf.TensorSpec([None, None, None, 4])])
  expected = 2 * 16 * 12 * 3 * 3 * 8 * 4
  np.testing.assert_array_equal(run(tf.zeros([3, 16, 12, 4])), [expected] * 3)


def test_conv2d_stride():
  expected = 2 * 8 * 8 * 3 * 3 * 8 * 4
  np.testing.assert_array_equal(
      conv_flops(tf.zeros([2, 16, 16, 4]), 3, strides=2), [expected] * 2)


def test_conv2d_output_mask():
  mask = np.random.default_rng(0).random([2, 16, 16, 1]) <= 0.6
  expected = 2 * 3 * 3 * 8 * 4 * mask.sum(axis=(1, 2, 3))
  np.testing.assert_array_equal(
      conv_flops(tf.zeros([2, 16, 16, 4]), 3,
                 output_mask=tf.constant(mask, tf.float32)), expected)


def test_conv2d_flops_dtype_and_rectangular_kernel():
  result = flops.conv2d_flops(tf.constant([2, 5, 7, 6]), (1, 3), 4, 6)
  assert result.dtype == tf.int64
  np.testing.assert_array_equal(result, [2 * 35 * 6 * 3 * 4] * 2)
