"""The original `cifar_model.py`: ResNet-32/110 style networks for CIFAR."""

import keras
import tensorflow as tf

from sact_tf import act
from sact_tf import sampling
from sact_tf.layers import activations
from sact_tf.layers import normalization
from sact_tf.layers.basic_residual_unit import BasicResidualUnit
from sact_tf.layers.masked_conv2d import MaskedConv2D
from sact_tf.models import depths
from sact_tf.models.adaptive_resnet import AdaptiveResNet

WEIGHT_DECAY = 2e-4


@keras.saving.register_keras_serializable(package="sact_tf")
class CifarResNet(AdaptiveResNet):
  """CIFAR residual network with vanilla / ACT / SACT blocks.

  Root `Conv` (3x3 to `base_channels`, biases, no activation); three blocks
  `block_1..3` of `BasicResidualUnit`s with `base_channels * (1, 2, 4)`
  channels, the first unit of blocks 2 and 3 downsampling by 2 (zero-padded
  average-pooled shortcut); head: spatial mean -> `BatchNorm` + leaky ReLU ->
  1x1 `logits`. Leaky ReLU 0.1 everywhere, batch norm decay 0.9 and epsilon
  1e-3, L2 decay 2e-4, as the original. Named `resnet_residual`, the
  original's scope, so variable paths equal its checkpoint names with
  `kernel` spelt `weights`.

  Args:
    model: str, int or list. `"5"` for 5 units per block (ResNet-32), `"18"`
      for ResNet-110, or `"a_b_c"`. Defaults to `"5"`.
    num_classes: int. Defaults to 10.
    model_type: str. Defaults to `"vanilla"`.
    base_channels: int. Defaults to 16.
    tau: float or None. Ponder cost weight. Defaults to None.
    eps: float. Defaults to 0.01.
    weight_decay: float. Defaults to 2e-4.
    execution: str. `"dense"` or `"sparse"`. Defaults to `"dense"`.
    sparse_config: `sact_tf.sparse.SparseConfig`, dict or None. Defaults to
      None (the measured defaults).
    stochastic_depth: float in (0, 1]. Survival probability `p_L` of the
      last unit under stochastic depth (vanilla only). Defaults to 1 (none).
    unit_order: dict or None. Units deleted or reordered per block (vanilla
      only; see `sact_tf.models.lesion`). Defaults to None.
    folded_batch_norm: bool. The inference form (see `AdaptiveResNet`).
      Defaults to False.
    sparse_loss_weight: float >= 0 or None. Sampling loss weight. Defaults
      to None (no sparse loss).
    grid_stride: int >= 1. Sampling grid prior stride. Defaults to 4.
    sampling_evaluation: str. `"deterministic"` or `"noisy"`. Defaults to
      `"deterministic"`.
    include_head: bool. False: a feature extractor without the
      classification head. Defaults to True.

  Call arguments and returns: see `AdaptiveResNet`.
  """

  unit_class = BasicResidualUnit
  halting_activation = "leaky_relu"

  def __init__(self, model="5", num_classes=10, model_type="vanilla",
               base_channels=16, tau=None, eps=act.DEFAULT_EPS,
               weight_decay=WEIGHT_DECAY, execution="dense",
               sparse_config=None, stochastic_depth=1.0, unit_order=None,
               folded_batch_norm=False, sparse_loss_weight=None,
               grid_stride=sampling.DEFAULT_GRID_STRIDE,
               sampling_evaluation="deterministic", **kwargs):
    kwargs.setdefault("name", "resnet_residual")
    self._units = depths.cifar_units(model)
    super().__init__(model, num_classes, model_type, base_channels, tau, eps,
                     weight_decay, execution, sparse_config,
                     normalization.CIFAR_BATCH_NORM,
                     stochastic_depth=stochastic_depth, unit_order=unit_order,
                     folded_batch_norm=folded_batch_norm,
                     sparse_loss_weight=sparse_loss_weight,
                     grid_stride=grid_stride,
                     sampling_evaluation=sampling_evaluation,
                     **kwargs)
    self.root_conv = MaskedConv2D(self.base_channels, 3,
                                  weight_decay=weight_decay, name="Conv")
    if self.include_head:
      self.head_bn = normalization.batch_norm("BatchNorm", self._batch_norm,
                                               self.folded_batch_norm)
      self.logits_conv = MaskedConv2D(self.num_classes, 1,
                                      weight_decay=weight_decay,
                                      name="logits")

  def _block_specs(self):
    bc = self.base_channels
    specs = []
    for index, (num_units, scale) in enumerate(zip(self._units, (1, 2, 4))):
      first = {"depth": scale * bc, "stride": 1 if index == 0 else 2,
               "activate_before_residual": index == 0}
      rest = {"depth": scale * bc}
      specs.append((f"block_{index + 1}", [first] + [rest] * (num_units - 1)))
    return specs

  def _build_root(self, input_shape):
    self.root_conv.build(input_shape)
    return self.root_conv.compute_output_shape(input_shape)[0]

  def _build_head(self, input_shape):
    pooled_shape = (input_shape[0], 1, 1, input_shape[-1])
    self.head_bn.build(pooled_shape)
    self.logits_conv.build(pooled_shape)

  def _root(self, images, training):
    return self.root_conv(images, training=training)

  def _head(self, features, training):
    x = tf.reduce_mean(features, [1, 2], keepdims=True)
    x = activations.leaky_relu(self.head_bn(x, training=training))
    logits, flops = self.logits_conv(x, training=training)
    return tf.squeeze(logits, [1, 2]), flops


def cifar_resnet(model="5", num_classes=10, model_type="vanilla",
                 base_channels=16, **kwargs):
  """Builds a `CifarResNet` (see its docstring for the arguments)."""
  return CifarResNet(model=model, num_classes=num_classes,
                     model_type=model_type, base_channels=base_channels,
                     **kwargs)
