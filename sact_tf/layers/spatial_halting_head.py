"""SACT halting head: one halting probability per spatial position."""

import keras
import tensorflow as tf

from sact_tf.layers import normalization
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
  Sparse execution computes the same probabilities from taps
  (`sact_tf.sparse.halting_rows`).

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
    self.local_bn = normalization.batch_norm("local_bn", self.batch_norm,
                                             self.folded_batch_norm)
    self.local_conv = MaskedConv2D(
        1, KERNEL_SIZE, bias_initializer=INIT_BIAS,
        weight_decay=self.weight_decay, name="local_conv")
    self.global_conv = self._global_conv(None, None)

  def build(self, input_shape):
    self.local_bn.build(input_shape)
    self.local_conv.build(input_shape)
    self._build_global(input_shape)

  def call(self, inputs, residual_mask=None, training=None, mean=None):
    local = self.activation_fn(self.local_bn(inputs, training=training))
    local_logit, flops = self.local_conv(
        local, output_mask=residual_mask, training=training)
    global_logit, global_flops = self.global_term(inputs, training, mean)
    return tf.sigmoid(local_logit + global_logit), flops + global_flops

  def masked_flops(self, input_shape, residual_mask):
    """The FLOPs `call` counts, without computing (int64 `[batch]`)."""
    pooled_shape = tf.concat([input_shape[:1], [1, 1, 1]], 0)
    return (self.local_conv.flops(input_shape, residual_mask) +
            self.global_conv.flops(pooled_shape))
