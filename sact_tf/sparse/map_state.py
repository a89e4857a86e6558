"""The block state passed between sparse units."""

from typing import NamedTuple

import tensorflow as tf

from sact_tf.sparse import active_set as active_set_lib
from sact_tf.sparse import scatter


class MapState(NamedTuple):
  """A block state with its spatial mean and residual rows not yet added.

  The state is `map` plus `rows` at `indices`: a unit that ran sparse
  leaves its residual unscattered, and the next unit that runs adds it
  (`materialize`). The last unit of a block that runs thus never pays for
  that scatter (a copy of the whole map), and the block output, which
  accumulates the residual rows itself (`sparse.block`), never needs it.

  Fields:
    map: float `[batch, H, W, C]`.
    mean: float `[batch, 1, 1, C]`, the spatial mean of the state (what the
      halting heads pool), kept up to date from the residual rows instead
      of recomputed.
    indices: int32 `[K, 3]`, `(b, h, w)` positions, duplicates allowed.
    rows: float `[K, C]`, to be added to `map` at `indices` (zero rows at
      repeated or dummy positions).
  """

  map: tf.Tensor
  mean: tf.Tensor
  indices: tf.Tensor
  rows: tf.Tensor


def no_rows(x):
  """Empty `(indices, rows)` for a `[batch, H, W, C]` map `x`."""
  return (tf.zeros([0, 3], tf.int32), tf.zeros([0, x.shape[-1]], x.dtype))


def from_map(x):
  """A `MapState` of the map `x` `[batch, H, W, C]`, its mean computed."""
  return MapState(x, spatial_mean(x), *no_rows(x))


def materialize(state, config):
  """`state` with its rows scattered into its map (none left over).

  Args:
    state: `MapState`.
    config: `SparseConfig`, for the scatter.
  """
  if state.rows.shape[0] == 0:
    return state
  return MapState(scatter.scatter_nd_add(state.map, state.indices,
                                         state.rows, config),
                  state.mean, *no_rows(state.map))


def spatial_mean(x):
  """The mean of a map over its positions, as a matmul.

  Same values as `tf.reduce_mean(x, [1, 2], keepdims=True)` up to float
  rounding (dense execution keeps `reduce_mean`, bit for bit the
  original's): `[batch, 1, h * w] x [batch, h * w, c]`, which CPU kernels
  run faster than the reduction.

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


def add_to_mean(mean, rows, active, shape):
  """The spatial mean after adding `rows` `[K, C]` at the active positions.

  A one-hot `[K, batch]` matmul sums the rows per image (faster than a
  segment sum on CPU).

  Returns:
    float `[batch, 1, 1, C]`.
  """
  images = tf.one_hot(active.indices[:, 0], shape[0], dtype=rows.dtype)
  sums = tf.matmul(active_set_lib.zero_dummies(images, active), rows,
                   transpose_a=True)
  area = tf.cast(shape[1] * shape[2], rows.dtype)
  return mean + tf.reshape(sums / area, tf.shape(mean))
