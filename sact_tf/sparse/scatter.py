"""Scatters of rows into a feature map: the plain op, or XLA-compiled.

TensorFlow's CPU scatter adds rows one after another; XLA's compiled
scatter costs more per call and little per row. `scatter_nd_add` picks one
by `SparseConfig.scatter_compiled`, with the same result.
"""

import tensorflow as tf

from sact_tf.sparse import active_set as active_set_lib

# Leading binary digits kept by `geometric_capacity`: 8 capacities an octave.
CAPACITY_DIGITS = 4


def scatter_add(x, rows, active, config):
  """`x` `[batch, H, W, C]` plus `rows` `[K, C]` at the active positions.

  A set padded to a capacity is already inside an XLA kernel (the `"xla"`
  sparse kernels): its scatter is the plain op. Otherwise `scatter_nd_add`.
  """
  rows = active_set_lib.zero_dummies(rows, active)
  if active.has_dummies:
    return tf.tensor_scatter_nd_add(x, active.indices, rows)
  return scatter_nd_add(x, active.indices, rows, config)


def scatter_nd_add(x, indices, updates, config):
  """`tf.tensor_scatter_nd_add` of rows, XLA-compiled where that is faster.

  Scatters that `config.scatter_compiled` picks run compiled, their rows
  padded with zero rows at `(0, 0, 0)` to `geometric_capacity(K)`, which
  bounds the compiled variants per map shape to 8 per octave of `K`. The
  result is the plain op's (duplicate indices included), up to the order
  of the float additions at a duplicate index. A scatter of no rows
  returns `x` itself (the op would copy it).

  Args:
    x: float `[batch, H, W, C]`.
    indices: int32 `[K, 3]`, `(b, h, w)` positions, duplicates allowed.
    updates: float `[K, C]`.
    config: `SparseConfig`.

  Returns:
    float `[batch, H, W, C]`, `x` plus the rows at their positions.
  """
  count = tf.shape(indices)[0]
  channels = updates.shape[-1]

  def compiled():
    pad = geometric_capacity(count) - count
    return xla_scatter_nd_add(x, tf.pad(indices, [[0, pad], [0, 0]]),
                              tf.pad(updates, [[0, pad], [0, 0]]))

  def plain():
    return tf.cond(count > 0,
                   lambda: tf.tensor_scatter_nd_add(x, indices, updates),
                   lambda: x)

  return tf.cond(config.scatter_compiled(count, channels), compiled, plain)


@tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
def xla_scatter_nd_add(x, indices, updates):
  """`tf.tensor_scatter_nd_add`, one XLA compilation per shape."""
  return tf.tensor_scatter_nd_add(x, indices, updates)


def geometric_capacity(count):
  """`count` rounded up to its 4 leading binary digits (at most 12.5% up).

  Args:
    count: int32 scalar >= 0.

  Returns:
    int32 scalar: `count` for `count < 16`, else the least multiple of
    `2^(floor(log2(count)) - 3)` that is at least `count`.
  """
  powers = tf.constant([1 << i for i in range(31)], tf.int32)
  bits = tf.reduce_sum(tf.cast(count >= powers[1:], tf.int32))
  step = tf.gather(powers, tf.maximum(bits - (CAPACITY_DIGITS - 1), 0))
  return (count + step - 1) // step * step


def scatter_map(rows, active, shape, config):
  """`rows` `[K, C]` at the active positions of a zero `[b, H, W, C]` map."""
  return scatter_add(tf.zeros(tf.concat([shape[:3], tf.shape(rows)[1:]], 0),
                              rows.dtype), rows, active, config)
