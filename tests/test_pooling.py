"""The spatial mean used by the halting heads and sparse execution."""

import numpy as np
import pytest
import tensorflow as tf

from sact_tf.layers import pooling


@pytest.mark.parametrize("dtype, atol", [(np.float32, 1e-6),
                                         (np.float64, 1e-14)])
def test_spatial_mean_is_the_mean_over_positions(dtype, atol):
  x = np.random.default_rng(0).normal(size=[3, 5, 7, 4]).astype(dtype)
  mean = pooling.spatial_mean(x)
  assert mean.dtype == dtype
  np.testing.assert_allclose(mean, x.mean(axis=(1, 2), keepdims=True),
                             rtol=0, atol=atol)


def test_spatial_mean_with_dynamic_shapes():
  run = tf.function(pooling.spatial_mean,
                    input_signature=[tf.TensorSpec([None, None, None, 2])])
  for shape in ([1, 4, 4, 2], [2, 3, 5, 2]):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    np.testing.assert_allclose(run(x), x.mean(axis=(1, 2), keepdims=True),
                               rtol=1e-6)
