"""The original `imagenet_model.py`: ResNet-v2 bottleneck networks."""

import keras
import tensorflow as tf

from sact_tf import act
from sact_tf import sampling
from sact_tf.layers import normalization
from sact_tf.layers.bottleneck_unit import BottleneckUnit
from sact_tf.layers.masked_conv2d import MaskedConv2D
from sact_tf.models import depths
from sact_tf.models.adaptive_resnet import AdaptiveResNet

WEIGHT_DECAY = 1e-4
ROOT_CHANNELS = 64


@keras.saving.register_keras_serializable(package="sact_tf")
class ImageNetResNet(AdaptiveResNet):
  """ImageNet ResNet-v2 (pre-activation bottleneck) with ACT / SACT blocks.

  Root `conv1` (7x7 stride 2, 64 channels whatever `base_channels` is,
  symmetric `conv2d_same` padding, biases, no batch norm or activation) and
  a 3x3 stride-2 SAME max pool; blocks `block1..4` of `BottleneckUnit`s
  with `base_channels * (1, 2, 4, 8)` bottleneck channels and 4 times as
  many outputs, the first unit of blocks 2-4 downsampling by 2; head:
  `postnorm` batch norm + ReLU -> spatial mean -> 1x1 `logits`. Batch norm
  decay 0.997 and epsilon 1e-5, L2 decay 1e-4 (TF-Slim's
  `resnet_arg_scope`). Named `resnet_v2`, the original's scope. Any input
  size, square or not, and any batch size.

  Args:
    model: str, int or list. `"50" | "101" | "152" | "200"` or `"a_b_c_d"`.
      Defaults to `"101"`.
    num_classes: int. Defaults to 1001 (class 0 is "background", as in the
      original's TF-Slim ImageNet).
    model_type: str. Defaults to `"vanilla"`.
    base_channels: int. Defaults to 64.
    tau: float or None. Ponder cost weight. Defaults to None.
    eps: float. Defaults to 0.01.
    weight_decay: float. Defaults to 1e-4.
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

  unit_class = BottleneckUnit
  halting_activation = None

  def __init__(self, model="101", num_classes=1001, model_type="vanilla",
               base_channels=64, tau=None, eps=act.DEFAULT_EPS,
               weight_decay=WEIGHT_DECAY, execution="dense",
               sparse_config=None, stochastic_depth=1.0, unit_order=None,
               folded_batch_norm=False, sparse_loss_weight=None,
               grid_stride=sampling.DEFAULT_GRID_STRIDE,
               sampling_evaluation="deterministic", **kwargs):
    kwargs.setdefault("name", "resnet_v2")
    self._units = depths.imagenet_units(model)
    super().__init__(model, num_classes, model_type, base_channels, tau, eps,
                     weight_decay, execution, sparse_config,
                     normalization.IMAGENET_BATCH_NORM,
                     stochastic_depth=stochastic_depth, unit_order=unit_order,
                     folded_batch_norm=folded_batch_norm,
                     sparse_loss_weight=sparse_loss_weight,
                     grid_stride=grid_stride,
                     sampling_evaluation=sampling_evaluation,
                     **kwargs)
    self.root_conv = MaskedConv2D(ROOT_CHANNELS, 7, 2, padding="symmetric",
                                  weight_decay=weight_decay, name="conv1")
    if self.include_head:
      self.postnorm = normalization.batch_norm("postnorm", self._batch_norm,
                                               self.folded_batch_norm)
      self.logits_conv = MaskedConv2D(self.num_classes, 1,
                                      weight_decay=weight_decay,
                                      name="logits")

  def _block_specs(self):
    bc = self.base_channels
    specs = []
    for index, (num_units, scale) in enumerate(
        zip(self._units, (1, 2, 4, 8))):
      unit = {"depth": 4 * scale * bc, "depth_bottleneck": scale * bc}
      first = dict(unit, stride=1 if index == 0 else 2)
      specs.append((f"block{index + 1}", [first] + [unit] * (num_units - 1)))
    return specs

  def _build_root(self, input_shape):
    self.root_conv.build(input_shape)
    shape = self.root_conv.compute_output_shape(input_shape)[0]
    # pool1: 3x3, stride 2, SAME.
    return (shape[0], *[None if d is None else -(-d // 2) for d in shape[1:3]],
            shape[3])

  def _build_head(self, input_shape):
    self.postnorm.build(input_shape)
    self.logits_conv.build((input_shape[0], 1, 1, input_shape[-1]))

  def _root(self, images, training):
    x, flops = self.root_conv(images, training=training)
    return tf.nn.max_pool2d(x, 3, 2, "SAME"), flops

  def _head(self, features, training):
    x = tf.nn.relu(self.postnorm(features, training=training))
    x = tf.reduce_mean(x, [1, 2], keepdims=True)
    logits, flops = self.logits_conv(x, training=training)
    return tf.squeeze(logits, [1, 2]), flops


def imagenet_resnet(model="101", num_classes=1001, model_type="vanilla",
                    base_channels=64, **kwargs):
  """Builds an `ImageNetResNet` (see its docstring for the arguments)."""
  return ImageNetResNet(model=model, num_classes=num_classes,
                        model_type=model_type, base_channels=base_channels,
                        **kwargs)
