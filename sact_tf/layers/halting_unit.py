"""A residual unit together with its halting head."""

import weakref

import keras
import tensorflow as tf

from sact_tf import act
from sact_tf.layers import masking
from sact_tf.layers import sparse_ops
from sact_tf.layers.spatial_halting_head import SpatialHaltingHead


SPARSE_KERNELS = ("auto", "xla", "tf")
# Active sets are padded to one of this many capacities for XLA.
NUM_BUCKETS = 8
# Above a `sparse_cost` (the share of the branch's multiply-adds that
# sparse execution does) the sparse unit's gathers and scatters cost more
# than they save, and the unit runs dense (masked) instead. The break-even
# rises with the width: the matmuls grow with channels squared, the gathers
# and scatters with channels. `(max depth, threshold)` pairs, the first
# that fits; wider units always run sparse.
DENSE_ABOVE_COST = ((256, 0.75), (512, 0.8), (1024, 0.85))
# A unit that runs sparse gathers the 3x3 dilation of its active positions
# for its first conv and its halting head only while the dilation covers
# less than this share of the map; above, those two run on the whole map
# (a convolution and a matmul, cheaper than gathering nearly every row).
# `(max depth, share)` pairs as above; wider units always gather (on a 7x7
# map of 2048 channels the gathers are cheap next to the matmuls).
DILATION_GATHERED_BELOW = ((1024, 0.8),)
# Both tables were measured on a 2-core CPU (the README's) with
# tools/benchmark.py's per-unit benchmark (ResNet-101 bottleneck units of
# 256 to 2048 channels, batches 1 and 8); the break-evens move with the
# machine.
# XLA-compiled sparse kernels, one per unit, kept outside the layers so that
# they are not exported with them.
_XLA_KERNELS = weakref.WeakKeyDictionary()


def resolve_sparse_kernels(sparse_kernels):
  """`"auto"` -> `"xla"` where a GPU is visible, else `"tf"`.

  On CPU, TensorFlow's own kernels beat XLA's for these gathers and small
  matmuls (tools/benchmark.py measures both; see the README).
  """
  if sparse_kernels not in SPARSE_KERNELS:
    raise ValueError(f"sparse_kernels must be one of {SPARSE_KERNELS}, "
                     f"received sparse_kernels={sparse_kernels!r}")
  if sparse_kernels == "auto":
    return "xla" if tf.config.list_logical_devices("GPU") else "tf"
  return sparse_kernels


@keras.saving.register_keras_serializable(package="sact_tf")
class HaltingUnit(keras.layers.Layer):
  """One unit of an adaptive block: `F^l` and its halting probability `h^l`.

  The original `unit_act`: runs the residual unit, then, if the unit has a
  halting head (every unit of an ACT/SACT block but the last), predicts the
  halting probability from the unit's output. Named `unit_<l>` by the block.

  Args:
    residual_unit: `ResidualUnit` layer (`BasicResidualUnit` or
      `BottleneckUnit`).
    halting_head: `GlobalHaltingHead`, `SpatialHaltingHead` or None.
      Defaults to None.

  Call arguments:
    inputs: float32 `[batch, H, W, c_in]`, the block state.
    residual_mask: optional float32 `[batch, H, W, 1]`, the positions still
      active (SACT).
    training: bool.

  Returns:
    `(outputs, halting_proba, flops)`: the new state, the halting
    probability (`[batch, 1]`, `[batch, h, w, 1]` or None without a head) and
    the FLOPs of the unit and its head (int64 `[batch]`).
  """

  def __init__(self, residual_unit, halting_head=None, **kwargs):
    super().__init__(**kwargs)
    self.residual_unit = residual_unit
    self.halting_head = halting_head

  def build(self, input_shape):
    # Sub-layers restored by `from_config` may arrive built already.
    if not self.residual_unit.built:
      self.residual_unit.build(input_shape)
    if self.halting_head is not None and not self.halting_head.built:
      self.halting_head.build(
          self.residual_unit.compute_output_shape(input_shape)[0])

  def call(self, inputs, residual_mask=None, training=None):
    outputs, flops = self.residual_unit(
        inputs, residual_mask=residual_mask, training=training)
    if self.halting_head is None:
      return outputs, None, flops
    if isinstance(self.halting_head, SpatialHaltingHead):
      proba, head_flops = self.halting_head(
          outputs, residual_mask=residual_mask, training=training)
    else:
      proba, head_flops = self.halting_head(outputs, training=training)
    return outputs, proba, flops + head_flops

  def sparse_call(self, inputs, residual_mask, training=None,
                  sparse_kernels="auto"):
    """`call` computing only the active positions (sparse SACT).

    The residual branch and the halting head's 3x3 conv run on gathered
    rows of the positions of `residual_mask` (and, for the first conv, their
    3x3 dilation); the residual is scattered into the state. When so many
    positions are active that sparse execution cannot pay off
    (`dense_above_cost`), the dense masked `call` runs; when the dilation
    covers most of the map (`dilation_gathered_below`), the first conv and
    the head's taps run on the whole map and only the rest of the branch on
    the active rows.
    Outputs and FLOPs are those of `call(inputs, residual_mask)` up to
    float rounding of the active positions; the halting probability may be
    zero at the halted positions, where the halting math ignores it. With
    no active position the sparse path runs on empty sets (the state is
    unchanged). The unit has no `tf.cond` of its own to skip itself:
    `act.spatially_adaptive_computation_time` skips the units of a block
    once nothing is active, and the extra cond cost every running unit
    (0.05 of the dense time at 100% of the FLOPs, batch 1).

    Args:
      inputs: float32 `[batch, H, W, C]`, the block state, or the
        `sparse_ops.MapState` a previous sparse unit returned.
      residual_mask: float32 `[batch, H, W, 1]`, the positions not yet
        halted, or None for the first unit of a block: then `call` runs on
        every position and the mean of its output is kept for the next
        unit.
      training: bool, batch norm mode (batch statistics would be those of
        the active rows, not of the whole map as in `call`).
      sparse_kernels: str. `"tf"`: TensorFlow kernels on exactly the active
        rows; `"xla"`: one XLA-compiled kernel, the active sets padded to
        one of `NUM_BUCKETS` capacities; `"auto"`: see
        `resolve_sparse_kernels`. Defaults to `"auto"`.

    Returns:
      `(outputs, halting_proba, flops)` as `call`, with `outputs` an
      `act.SparseUpdate` whose state is a `sparse_ops.MapState` and whose
      rows are the residual at the active positions (none when the unit
      ran dense, its change map the masked residual then). Where the unit
      ran sparse, the state holds the residual rows unscattered (the next
      unit scatters them first; `sparse_ops.materialize` gives the map).
    """
    kernels = resolve_sparse_kernels(sparse_kernels)
    if residual_mask is None:
      new_state, _, proba, flops = self._dense_update(inputs, None, None,
                                                      training)
      # The first unit's change is unread (`act.SparseUpdate`).
      return (act.SparseUpdate(new_state, new_state.map,
                               *sparse_ops.no_rows(new_state.map),
                               tf.constant(True), new_state.map), proba,
              flops)
    # The previous unit's residual, if it left one unscattered.
    state = sparse_ops.materialize(sparse_ops.map_state(inputs))
    shape = tf.shape(state.map)
    dilated_mask = masking.dilate_mask(residual_mask)
    flops = self.masked_flops(shape, residual_mask, dilated_mask)
    # Only counts are needed to choose how to run the unit; the active sets
    # are found in the sparse branch alone.
    total = tf.cast(tf.reduce_prod(shape[:3]), residual_mask.dtype)
    active_count = tf.reduce_sum(residual_mask)
    dilated_count = tf.reduce_sum(dilated_mask)
    cost = self.residual_unit.sparse_cost(active_count / total,
                                          dilated_count / total)
    no_rows = sparse_ops.no_rows(state.map)

    def dense():
      new_state, residual, proba, _ = self._dense_update(
          state.map, residual_mask, dilated_mask, training)
      return (new_state, *no_rows, self._proba_or_zeros(proba, state.map),
              tf.constant(True), residual)

    def sparse(gather_dilation):
      num_buckets = NUM_BUCKETS if kernels == "xla" else None
      active = sparse_ops.active_set(residual_mask, num_buckets)
      dilated = (sparse_ops.active_set(dilated_mask, num_buckets)
                 if gather_dilation else None)
      compute = (self._xla_kernel() if kernels == "xla" else
                 self._sparse_compute)
      new_state, rows, proba = compute(state, active, dilated, training)
      # The map and the change map are unread where the unit ran sparse.
      return (new_state, active.indices, rows, proba, tf.constant(False),
              state.map)

    gathered_below = self.dilation_gathered_below()
    run_sparse = ((lambda: sparse(True)) if gathered_below > 1 else
                  lambda: tf.cond(dilated_count >= gathered_below * total,
                                  lambda: sparse(False),
                                  lambda: sparse(True)))
    # tf.cond, not tf.switch_case: a Case op kept its variables unfrozen
    # in the TFLite conversion (TF 2.20).
    new_state, indices, rows, proba, ran_dense, change = tf.cond(
        cost > self.dense_above_cost(), dense, run_sparse)
    update = act.SparseUpdate(new_state, change, indices, rows, ran_dense,
                              change)
    return update, (proba if self.halting_head is not None else None), flops

  def masked_flops(self, input_shape, residual_mask, dilated_mask=None):
    """`ResidualUnit.masked_flops` plus those of the halting head."""
    flops = self.residual_unit.masked_flops(input_shape, residual_mask,
                                            dilated_mask)
    if self.halting_head is not None:
      flops += self.halting_head.masked_flops(input_shape, residual_mask)
    return flops

  def dense_above_cost(self):
    """The `sparse_cost` above which `sparse_call` runs the unit dense."""
    return self._depth_threshold(DENSE_ABOVE_COST)

  def dilation_gathered_below(self):
    """The dilated share of the map from which the first conv runs whole."""
    return self._depth_threshold(DILATION_GATHERED_BELOW)

  def _depth_threshold(self, table):
    """The threshold of `table` for this unit's depth (inf if none fits)."""
    for max_depth, threshold in table:
      if self.residual_unit.depth <= max_depth:
        return threshold
    return float("inf")

  def _dense_update(self, inputs, residual_mask, dilated_mask, training):
    """`call` on every position, its output's mean computed once.

    The halting head runs as `SpatialHaltingHead.call_by_taps`.

    Returns:
      `(sparse_ops.MapState, residual, halting_proba or None, flops)`, with
      `residual` as `ResidualUnit.call_with_residual`.
    """
    outputs, residual, flops = self.residual_unit.call_with_residual(
        inputs, residual_mask=residual_mask, training=training,
        dilated_mask=dilated_mask)
    new_state = sparse_ops.map_state(outputs)
    proba = None
    if self.halting_head is not None:
      proba = self.halting_head.call_by_taps(outputs, new_state.mean,
                                             training)
      flops += self.halting_head.masked_flops(tf.shape(outputs),
                                              residual_mask)
    return new_state, residual, proba, flops

  def _proba_or_zeros(self, proba, state):
    """A `[batch, H, W, 1]` probability for `tf.cond` branches (no head)."""
    return tf.zeros_like(state[:, :, :, :1]) if proba is None else proba

  def _sparse_compute(self, state, active, dilated, training=None):
    """The sparse unit from the active sets.

    The state is gathered at the dilated positions for the residual branch.
    The residual (also the state's change that the block output
    accumulates, `act.SparseUpdate`) is left in the new `MapState`'s rows,
    for the next unit that runs to scatter, unless the halting head reads
    the new map (`SpatialHaltingHead.reads_outputs`: an activation before
    its taps, or training). The head takes the state, its rows and the
    residual (`SpatialHaltingHead.sparse_call`); the spatial mean is
    updated from the residual rows.

    Args:
      state: `sparse_ops.MapState`.
      active: `sparse_ops.ActiveSet`.
      dilated: `sparse_ops.ActiveSet` of the 3x3 dilation of `active`, or
        None to compute the first conv and the halting head's taps on the
        whole map instead.
      training: bool.

    Returns:
      `(new MapState, the residual at the active entries (zero for
      dummies), halting probability [batch, H, W, 1])`.
    """
    shape = tf.shape(state.map)
    dilated_rows = (None if dilated is None else
                    sparse_ops.gather_rows(state.map, dilated))
    residual = self.residual_unit.sparse_residual(
        state.map, active, dilated, dilated_rows, training)
    rows = sparse_ops.zero_dummies(residual, active)
    mean = sparse_ops.add_to_mean(state.mean, residual, active, shape)
    head = self.halting_head
    outputs = None
    if head is not None and head.reads_outputs(training):
      outputs = sparse_ops.scatter_add(state.map, residual, active)
      new_state = sparse_ops.MapState(outputs, mean,
                                      *sparse_ops.no_rows(outputs))
    else:
      # Left for the next unit that runs to scatter.
      new_state = sparse_ops.MapState(state.map, mean, active.indices, rows)
    proba = None
    if head is not None:
      proba = head.sparse_call(state.map, residual, outputs, active, dilated,
                               dilated_rows, mean, training)
    return new_state, rows, self._proba_or_zeros(proba, state.map)

  def _xla_kernel(self):
    """`_sparse_compute` compiled with XLA (cached per unit)."""
    if self not in _XLA_KERNELS:
      _XLA_KERNELS[self] = tf.function(self._sparse_compute,
                                       jit_compile=True)
    return _XLA_KERNELS[self]

  def get_config(self):
    config = super().get_config()
    config.update(
        residual_unit=keras.saving.serialize_keras_object(self.residual_unit),
        halting_head=keras.saving.serialize_keras_object(self.halting_head))
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    for key in ("residual_unit", "halting_head"):
      config[key] = keras.saving.deserialize_keras_object(config[key])
    return cls(**config)
