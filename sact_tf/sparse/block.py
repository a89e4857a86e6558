"""The sparse SACT block driver: Alg. 2 computing only the active positions.

Gives what `act.spatially_adaptive_computation_time` gives for a block of
`HaltingUnit`s (outputs and FLOPs up to float rounding), unit by unit:

1. The first unit runs on every position (`unit_step.dense_unit`); its
   output `F^1` starts the block output.
2. Each later unit `l` runs on the positions not yet halted, its mask.
   Where the share of the branch's multiply-adds that would run sparse
   (`residual_rows.sparse_cost`) is above `SparseConfig.dense_above`, it
   runs dense and masked, and its masked residual, weighted, joins the
   block output at once. Otherwise it runs sparse (`unit_step.sparse_unit`),
   gathering the 3x3 dilation of its mask for its first conv and halting
   head unless that dilation covers more than
   `SparseConfig.gathered_below` of the map (then those two run on the
   whole map).
3. The block output is accumulated in residual form,
   `F^1 + sum_{l>1} w^l (F^l - F^{l-1})` with `w^l = 1 - sum_{k<l} p^k` the
   halting remainder before unit `l`: the same as `sum_l p^l F^l`, since
   the `p^l` of a position sum to one and a unit changes only the positions
   active during it, where `p^k = h^k` for every `k < l`. A sparse unit's
   change is its residual rows; they are scattered into the output once,
   for all the units of the block.
4. Once no position is active the remaining units are skipped and only
   their halted FLOPs counted. The units after the first run in
   `skip_segments` that double in length, each behind one `tf.cond` whose
   running branch is a function call that TensorFlow does not inline: a
   lowered `tf.cond` makes TF's graph executor visit every node of the
   branch not taken, and a call is one node. TFLite conversion drops the
   mark first (`sact_tf.export.tflite`).
"""

import functools
from typing import NamedTuple

import tensorflow as tf

from sact_tf import act
from sact_tf.sparse import active_set as active_set_lib
from sact_tf.sparse import map_state
from sact_tf.sparse import residual_rows
from sact_tf.sparse import scatter
from sact_tf.sparse import unit_step

# Marks a graph function that TensorFlow's optimizers must not inline.
NOINLINE_ATTRIBUTE = "_noinline"


class BlockCarry(NamedTuple):
  """What one unit hands the next in the block loop.

  Fields:
    state: `MapState`, the block state (rows may be pending).
    outputs: float `[batch, h, w, C]`, the block output so far: `F^1` plus
      the weighted changes of the units that ran dense.
    flops: int64 `[batch]`.
    halting: `act.HaltingState`.
  """

  state: map_state.MapState
  outputs: tf.Tensor
  flops: tf.Tensor
  halting: act.HaltingState


class UnitRows(NamedTuple):
  """A unit's slice of the halting distribution and its sparse change.

  Fields:
    distribution: float `[batch, h, w]`, `p^l`.
    indices: int32 `[K, 3]`, the positions the unit computed sparse (none
      where it ran dense or was skipped).
    rows: float `[K, C]`, its residual there, weighted by `w^l`.
  """

  distribution: tf.Tensor
  indices: tf.Tensor
  rows: tf.Tensor


def skip_segments(max_units):
  """The units after the first of a block, in segments that double.

  `[[1], [2, 3], [4, 5, 6, 7], ...]` (zero-based unit indices) up to
  `max_units - 1`.

  Args:
    max_units: int, the number of units of the block.

  Returns:
    list of lists of int.
  """
  segments, start = [], 1
  while start < max_units:
    segments.append(list(range(start, min(2 * start, max_units))))
    start *= 2
  return segments


def not_inlined(fn):
  """`fn` as one graph call op that TensorFlow does not inline.

  Eagerly, `fn` itself. The called function is optimized as any other
  (grappler, oneDNN fusions) when it runs.
  """
  if tf.executing_eagerly():
    return fn
  return tf.function(fn, autograph=False,
                     experimental_attributes={NOINLINE_ATTRIBUTE: True})


def sparse_block(units, inputs, eps, config, training=None):
  """A SACT block of `HaltingUnit`s, computing only the active positions.

  Args:
    units: list of `sact_tf.layers.HaltingUnit`, all but the last with a
      `SpatialHaltingHead`; those after the first stride 1 with an identity
      shortcut.
    inputs: float `[batch, H, W, C]`.
    eps: float, the halting threshold is `1 - eps`.
    config: `SparseConfig`.
    training: bool, batch norm mode.

  Returns:
    As `act.spatially_adaptive_computation_time`: ponder cost `[batch, h,
    w]`, number of units `[batch, h, w]`, FLOPs int64 `[batch]`, halting
    distribution `[batch, h, w, L]`, outputs `[batch, h, w, C']`.
  """
  act.check_eps(eps)
  max_units = len(units)
  state, _, proba, flops = unit_step.dense_unit(units[0], inputs, None, None,
                                                training)
  shape = tf.shape(state.map)[:3]
  dtype = state.map.dtype
  halting, distribution = act.halting_step(
      act.initial_halting_state(shape, act.halting_dtype(dtype)),
      act.unit_probability(proba, shape, max_units == 1), eps)
  no_indices, no_rows = map_state.no_rows(state.map)

  def active_mask(halting):
    return tf.expand_dims(tf.cast(tf.logical_not(halting.finished), dtype),
                          -1)

  def run_unit(unit_idx, carry):
    """Unit `unit_idx` on the active positions, dense or sparse."""
    unit = units[unit_idx]
    residual_mask = active_mask(carry.halting)
    remainder = carry.halting.remainder  # `w^l`, before the unit's step.
    # The previous unit's residual, if it left one unscattered.
    state = map_state.materialize(carry.state, config)
    map_shape = tf.shape(state.map)
    dilated_mask = active_set_lib.dilate_mask(residual_mask)
    unit_flops = unit.masked_flops(map_shape, residual_mask, dilated_mask)
    # Only counts are needed to choose how to run the unit; the active sets
    # are found in the sparse branch alone.
    total = tf.cast(tf.reduce_prod(map_shape[:3]), dtype)
    dilated_count = tf.reduce_sum(dilated_mask)
    cost = residual_rows.sparse_cost(unit.residual_unit,
                                     tf.reduce_sum(residual_mask) / total,
                                     dilated_count / total)
    depth = unit.residual_unit.depth

    def dense():
      new_state, residual, proba, _ = unit_step.dense_unit(
          unit, state.map, residual_mask, dilated_mask, training)
      return (new_state, carry.outputs + act.weighted(residual, remainder),
              no_indices, no_rows,
              unit_step.probability_or_zeros(proba, state.map))

    def sparse(gather_dilation):
      active, dilated = unit_step.active_sets(config, residual_mask,
                                              dilated_mask, gather_dilation)
      new_state, rows, proba = unit_step.sparse_unit_kernel(unit, config)(
          state, active, dilated, training)
      return new_state, carry.outputs, active.indices, rows, proba

    gathered_below = config.gathered_below(depth)
    run_sparse = ((lambda: sparse(True)) if gathered_below > 1 else
                  lambda: tf.cond(dilated_count >= gathered_below * total,
                                  lambda: sparse(False),
                                  lambda: sparse(True)))
    # tf.cond, not tf.switch_case: a Case op kept its variables unfrozen in
    # the TFLite conversion.
    new_state, outputs, indices, rows, proba = tf.cond(
        cost > config.dense_above(depth), dense, run_sparse)
    halting, distribution = act.halting_step(
        carry.halting,
        act.unit_probability(proba, shape, unit_idx == max_units - 1), eps)
    weights = tf.cast(tf.gather_nd(remainder, indices), rows.dtype)
    return (BlockCarry(new_state, outputs, carry.flops + unit_flops,
                       halting),
            UnitRows(distribution, indices, rows * weights[:, None]))

  def skip_segment(unit_indices, carry):
    """The units `unit_indices` once no position is active: FLOPs only."""
    zero_mask = tf.expand_dims(tf.zeros(shape, dtype), -1)
    halted_flops = [
        units[i].masked_flops(
            tf.concat([shape, [units[i].residual_unit.depth_in]], 0),
            zero_mask)
        for i in unit_indices]
    return (carry._replace(flops=carry.flops + tf.add_n(halted_flops)),
            [UnitRows(tf.zeros_like(distribution), no_indices, no_rows)
             for _ in unit_indices])

  def run_segment(unit_indices, carry):
    """The units `unit_indices`, each after the first skipped if halted."""
    first, *rest = unit_indices
    carry, unit_rows = run_unit(first, carry)
    segment_rows = [unit_rows]
    for unit_idx in rest:
      carry, (unit_rows,) = tf.cond(
          tf.reduce_all(carry.halting.finished),
          functools.partial(skip_segment, [unit_idx], carry),
          functools.partial(run_segment, [unit_idx], carry))
      segment_rows.append(unit_rows)
    return carry, segment_rows

  carry = BlockCarry(state, state.map, flops, halting)
  all_rows = [UnitRows(distribution, no_indices, no_rows)]
  for unit_indices in skip_segments(max_units):
    carry, segment_rows = tf.cond(
        tf.reduce_all(carry.halting.finished),
        functools.partial(skip_segment, unit_indices, carry),
        functools.partial(not_inlined(functools.partial(run_segment,
                                                        unit_indices)),
                          carry))
    all_rows.extend(segment_rows)
  outputs = carry.outputs
  if max_units > 1:
    outputs = scatter.scatter_nd_add(
        outputs, tf.concat([r.indices for r in all_rows[1:]], 0),
        tf.concat([r.rows for r in all_rows[1:]], 0), config)
  return (carry.halting.ponder_cost, carry.halting.num_units, carry.flops,
          tf.stack([r.distribution for r in all_rows], axis=3), outputs)
