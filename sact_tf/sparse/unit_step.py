"""One SACT unit (a residual unit and its halting head), dense or sparse.

`dense_unit` computes every position, as the layers do, keeping the mean of
the new state for the next unit's head; `sparse_unit` computes only the
active positions, from their rows. Which one runs is the block driver's
choice (`sparse.block`). `sparse_unit_kernel` gives `sparse_unit` as the
configuration's kernels run it: TensorFlow ops on exactly the active rows,
or one XLA-compiled function per unit on sets padded to capacity buckets.
"""

import functools
import weakref

import tensorflow as tf

from sact_tf.sparse import active_set as active_set_lib
from sact_tf.sparse import gather
from sact_tf.sparse import halting_rows
from sact_tf.sparse import map_state
from sact_tf.sparse import residual_rows
from sact_tf.sparse import scatter

# XLA-compiled `sparse_unit`s, one per unit, kept outside the layers so
# that they are not exported with them.
_XLA_KERNELS = weakref.WeakKeyDictionary()


def probability_or_zeros(proba, state):
  """A `[batch, H, W, 1]` probability for `tf.cond` branches (no head)."""
  return tf.zeros_like(state[:, :, :, :1]) if proba is None else proba


def dense_unit(unit, inputs, residual_mask, dilated_mask, training=None):
  """The unit on every position, its output's mean computed once.

  Args:
    unit: `sact_tf.layers.HaltingUnit` with a `SpatialHaltingHead` or none.
    inputs: float `[batch, H, W, C]`, the block state.
    residual_mask: float `[batch, H, W, 1]` of the active positions, or None
      (the first unit of a block).
    dilated_mask: its 3x3 dilation, or None.
    training: bool.

  Returns:
    `(MapState, residual, halting_proba or None, flops)`: the new state;
    float `[batch, H, W, C]`, the masked residual (`outputs - inputs` for a
    stride-1 unit); float `[batch, H, W, 1]`; int64 `[batch]`.
  """
  outputs, residual, flops = unit.residual_unit.call_with_residual(
      inputs, residual_mask=residual_mask, training=training,
      dilated_mask=dilated_mask)
  new_state = map_state.from_map(outputs)
  proba = None
  if unit.halting_head is not None:
    proba = halting_rows.probabilities_by_taps(
        unit.halting_head, outputs, new_state.mean, training)
    flops += unit.halting_head.masked_flops(tf.shape(outputs), residual_mask)
  return new_state, residual, proba, flops


def sparse_unit(unit, config, state, active, dilated, training=None):
  """The unit at the active positions.

  The state is gathered at the dilated positions for the residual branch
  (`residual_rows`). The residual, also the state's change that the block
  output accumulates, is left in the new `MapState`'s rows for the next unit
  that runs to scatter, unless the halting head reads the new map
  (`halting_rows.reads_outputs`). The spatial mean is updated from the
  residual rows.

  Args:
    unit: `sact_tf.layers.HaltingUnit`.
    config: `SparseConfig`.
    state: `MapState` with no rows pending.
    active: `ActiveSet` of the positions not yet halted.
    dilated: `ActiveSet` of their 3x3 dilation, or None to compute the
      first conv and the head's taps on the whole map instead.
    training: bool.

  Returns:
    `(new MapState, rows, halting_proba)`: rows float `[K, C]`, the residual
    at the active entries (zero for dummies); float `[batch, H, W, 1]`.
  """
  shape = tf.shape(state.map)
  dilated_rows = (None if dilated is None else
                  gather.gather_rows(state.map, dilated))
  residual = residual_rows.residual_rows(unit.residual_unit, state.map,
                                         active, dilated, dilated_rows,
                                         training)
  rows = active_set_lib.zero_dummies(residual, active)
  mean = map_state.add_to_mean(state.mean, residual, active, shape)
  head = unit.halting_head
  outputs = None
  if head is not None and halting_rows.reads_outputs(head, training):
    outputs = scatter.scatter_add(state.map, residual, active, config)
    new_state = map_state.MapState(outputs, mean,
                                   *map_state.no_rows(outputs))
  else:
    new_state = map_state.MapState(state.map, mean, active.indices, rows)
  proba = None
  if head is not None:
    proba = halting_rows.sparse_probabilities(
        head, state.map, residual, outputs, active, dilated, dilated_rows,
        mean, config, training)
  return new_state, rows, probability_or_zeros(proba, state.map)


def sparse_unit_kernel(unit, config):
  """`sparse_unit` of `unit` as `config`'s kernels run it.

  Returns:
    callable `(state, active, dilated, training) -> sparse_unit's result`;
    for the `"xla"` kernels one XLA-compiled function per unit, cached.
  """
  if config.resolved_kernels() != "xla":
    return functools.partial(sparse_unit, unit, config)
  if unit not in _XLA_KERNELS:
    _XLA_KERNELS[unit] = tf.function(
        functools.partial(sparse_unit, unit, config), jit_compile=True)
  return _XLA_KERNELS[unit]


def active_sets(config, residual_mask, dilated_mask, gather_dilation):
  """The active set and (if `gather_dilation`) the dilated one.

  Sets for the `"xla"` kernels are padded to `config.num_buckets`
  capacities.
  """
  num_buckets = (config.num_buckets if config.resolved_kernels() == "xla"
                 else None)
  active = active_set_lib.active_set(residual_mask, num_buckets)
  dilated = (active_set_lib.active_set(dilated_mask, num_buckets)
             if gather_dilation else None)
  return active, dilated
