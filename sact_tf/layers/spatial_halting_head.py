"""SACT halting head: one halting probability per spatial position."""

import keras
import tensorflow as tf

from sact_tf.layers import normalization
from sact_tf.layers import sparse_ops
from sact_tf.layers.halting_head import INIT_BIAS
from sact_tf.layers.halting_head import HaltingHead
from sact_tf.layers.masked_conv2d import MaskedConv2D

KERNEL_SIZE = 3


@keras.saving.register_keras_serializable(package="sact_tf")
class SpatialHaltingHead(HaltingHead):
  """Halting probabilities of every position after a residual unit (SACT).

  Sec. 3.2 of the paper: `h = sigmoid(W_local * F + W_global pool(F) + b)`:
  a 3x3 convolution of the batch-normalised unit output (`local_bn`,
  `local_conv`, bias initialised to -3) plus the pooled term broadcast over
  the positions (`global_bn`, `global_conv`, no bias). The local conv's
  FLOPs are counted on the active positions only (`residual_mask`).

  Args: see `HaltingHead`.

  Call arguments:
    inputs: float32 `[batch, h, w, c]`, the unit's output.
    residual_mask: optional float32 `[batch, h, w, 1]`, the active positions.
    training: bool.
    mean: optional float32 `[batch, 1, 1, c]`, the spatial mean of `inputs`
      when it is already known.

  Returns:
    `(halting_proba, flops)`: float32 `[batch, h, w, 1]`, int64 `[batch]`.
  """

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.local_bn = normalization.batch_norm("local_bn", self.batch_norm)
    self.local_conv = MaskedConv2D(
        1, KERNEL_SIZE, bias_initializer=INIT_BIAS,
        weight_decay=self.weight_decay, name="local_conv")
    self.global_conv = self._global_conv(None, None)

  def build(self, input_shape):
    self.local_bn.build(input_shape)
    self.local_conv.build(input_shape)
    self._build_global(input_shape)

  def call(self, inputs, residual_mask=None, training=None, mean=None):
    local = self._activation_fn(self.local_bn(inputs, training=training))
    local_logit, flops = self.local_conv(
        local, output_mask=residual_mask, training=training)
    global_logit, global_flops = self.global_term(inputs, training, mean)
    return tf.sigmoid(local_logit + global_logit), flops + global_flops

  def masked_flops(self, input_shape, residual_mask):
    """The FLOPs `call` counts, without computing (int64 `[batch]`)."""
    pooled_shape = tf.concat([input_shape[:1], [1, 1, 1]], 0)
    return (self.local_conv.flops(input_shape, residual_mask) +
            self.global_conv.flops(pooled_shape))

  def call_by_taps(self, inputs, mean, training=None):
    """`call`'s probabilities, the 3x3 `local_conv` computed as taps.

    The taps of every position (`_local_taps`) summed over each position's
    3x3 neighbourhood (`sparse_ops.sum_taps_map`): one `[h * w, c] x [c, 9]`
    matmul instead of a convolution with one output channel, 1.3 to 2.4
    times faster on a 2-core CPU (ResNet-101's maps, batches 1 and 8), and
    the global term on rows (`_global_logit`). What sparse execution runs
    on the units it computes in full (the first of each block, and those
    that run dense).

    Args:
      inputs: float32 `[batch, h, w, c]`, the unit's output.
      mean: float32 `[batch, 1, 1, c]`, the spatial mean of `inputs`.
      training: bool.

    Returns:
      float32 `[batch, h, w, 1]`, the probabilities of `call` up to float
      rounding.
    """
    local_logit = sparse_ops.sum_taps_map(self._taps_map(inputs, training))
    global_logit = tf.reshape(self._global_logit(mean, training),
                              [-1, 1, 1, 1])
    return tf.sigmoid(local_logit + self.local_conv.bias + global_logit)

  def sparse_call(self, inputs, residual, outputs, active, dilated,
                  dilated_rows, mean, training=None):
    """The halting probabilities at the active positions only.

    The 3x3 `local_conv` (one output channel) is computed as taps: the
    batch-normalised unit output at the dilated positions (at every position
    with `dilated` None) times the kernel's 9 taps (`_local_taps`), then
    each active position sums its neighbours' taps (`sparse_ops.sum_taps`).
    Where the taps are linear in the unit output (`_linear_taps`: no
    activation, inference), they are those of the unit input plus those of
    the residual at the active positions: no rows of the output are
    gathered, and the input's taps can be computed while the residual
    branch runs.

    Args:
      inputs: float32 `[batch, h, w, c]`, the unit's input.
      residual: float32 `[K, c]`, the unit's residual at the active entries
        (any values for dummies).
      outputs: float32 `[batch, h, w, c]`, the unit's output: `inputs` plus
        `residual` at the active positions; read only where
        `reads_outputs(training)`, otherwise None will do.
      active: `sparse_ops.ActiveSet` of the positions not yet halted.
      dilated: `sparse_ops.ActiveSet` of their 3x3 dilation, or None.
      dilated_rows: float32 `[K_d, c]`, `inputs` at `dilated` (None with
        `dilated`).
      mean: float32 `[batch, 1, 1, c]`, the spatial mean of `outputs`.
      training: bool.

    Returns:
      float32 `[batch, h, w, 1]`: `call(outputs)`'s probabilities at the
      active positions up to float rounding, zero at the others (where the
      halting math ignores them).
    """
    shape = tf.shape(inputs)
    linear = self._linear_taps(training)
    if dilated is None:
      taps = self._taps_map(outputs if linear is None else inputs, training,
                            linear)
      local_logit = sparse_ops.sum_taps(
          sparse_ops.to_padded(taps),
          sparse_ops.neighbour_rows(active, shape, KERNEL_SIZE))
    else:
      rows = (sparse_ops.gather_rows(outputs, dilated) if linear is None
              else dilated_rows)
      local_logit = sparse_ops.sum_taps(
          sparse_ops.with_zero_row(self._local_taps(rows, training, linear)),
          sparse_ops.neighbour_entries(dilated, active, shape, KERNEL_SIZE))
    if linear is not None:
      weights, _ = linear
      local_logit += sparse_ops.sum_taps(
          sparse_ops.with_zero_row(
              tf.matmul(residual, weights, transpose_b=True)),
          sparse_ops.neighbour_entries(active, active, shape, KERNEL_SIZE))
    logit = (local_logit[:, None] + self.local_conv.bias +
             tf.gather(self._global_logit(mean, training),
                       active.indices[:, 0]))
    return sparse_ops.scatter_map(tf.sigmoid(logit), active, shape)

  def reads_outputs(self, training=None):
    """Whether `sparse_call` reads the unit's output map.

    Not where the taps are linear (`_linear_taps`): they are then the
    input's plus the residual's.
    """
    return self.activation is not None or bool(training)

  def _global_logit(self, mean, training=None):
    """`global_term`'s logits from the spatial mean, on rows.

    `global_bn`, the activation and the 1x1 `global_conv` on `[batch, c]`
    rows (`MaskedConv2D.apply_rows`: one matmul), the same values up to
    float rounding; a convolution of a 1x1 map took 0.1 ms on a 2-core CPU,
    as long as a sparse unit's gathers.

    Args:
      mean: float32 `[batch, 1, 1, c]`, the spatial mean of the unit output.
      training: bool.

    Returns:
      float32 `[batch, 1]`.
    """
    rows = tf.reshape(mean, [-1, mean.shape[-1]])
    rows = self._activation_fn(normalization.normalize_rows(
        self.global_bn, rows, training))
    return self.global_conv.apply_rows(rows, training)

  def _taps_map(self, inputs, training=None, linear=None):
    """`_local_taps` of every position: float32 `[batch, h, w, 9]`."""
    shape = tf.shape(inputs)
    taps = self._local_taps(tf.reshape(inputs, [-1, inputs.shape[-1]]),
                            training, linear)
    return tf.reshape(taps, tf.concat([shape[:3], [KERNEL_SIZE**2]], 0))

  def _local_taps(self, rows, training=None, linear=None):
    """Rows `[N, c]` of the unit's output times the local conv's 9 taps.

    `local_bn` and the activation, then a `[N, c] x [c, 9]` matmul (tap
    `t = 3 * dy + dx`); where the taps are linear (`_linear_taps`, passed
    as `linear` or computed here), the batch norm folded into them.

    Returns:
      float32 `[N, 9]`.
    """
    linear = linear or self._linear_taps(training)
    if linear is not None:
      weights, offsets = linear
      return tf.nn.bias_add(tf.matmul(rows, weights, transpose_b=True),
                            offsets)
    kernel = tf.reshape(self.local_conv.kernel, [KERNEL_SIZE**2, -1])
    return tf.matmul(self._activation_fn(normalization.normalize_rows(
        self.local_bn, rows, training)), kernel, transpose_b=True)

  def _linear_taps(self, training=None):
    """The taps as an affine map of the unit output, where they are one.

    Without an activation (the ImageNet model) and at inference, `local_bn`
    folds into the kernel: `taps = rows x weights^T + offsets`.

    Returns:
      `(weights, offsets)`, float32 `[9, c]` and `[9]`, or None (an
      activation, or training).
    """
    if self.reads_outputs(training):
      return None
    kernel = tf.reshape(self.local_conv.kernel, [KERNEL_SIZE**2, -1])
    scale, offset = normalization.inference_affine(self.local_bn)
    return kernel * scale, tf.matmul(offset[None], kernel,
                                     transpose_b=True)[0]
