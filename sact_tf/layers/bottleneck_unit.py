"""The ImageNet model's bottleneck residual unit (ResNet v2)."""

import keras

from sact_tf.layers import normalization
from sact_tf.layers.masked_conv2d import MaskedConv2D
from sact_tf.layers.residual_unit import ResidualUnit


@keras.saving.register_keras_serializable(package="sact_tf")
class BottleneckUnit(ResidualUnit):
  """Pre-activation bottleneck unit (the original `bottleneck`).

  `preact` (batch norm + ReLU) -> `conv1` (1x1, batch norm + ReLU) ->
  `conv2` (3x3, stride, symmetric `conv2d_same` padding, batch norm + ReLU)
  -> `conv3` (1x1 to `depth`, biases, no activation). Shortcut: the input
  (subsampled by the stride) when the depth is unchanged, otherwise a 1x1
  strided `shortcut` conv with biases on the pre-activation (its FLOPs
  counted on every position). Named `bottleneck_v2`, as the original's
  scope, unless a name is given. Downsampling happens in the first unit of
  a block, as in the ResNet paper (not as in TF-Slim's ResNet v2).

  Args:
    depth: int. Output channels.
    depth_bottleneck: int. Channels of conv1 and conv2.
    stride: int. 1 or 2. Defaults to 1.
    activation: str. Defaults to `"relu"`.
    batch_norm: dict. Defaults to the ImageNet arg scope's (decay 0.997,
      epsilon 1e-5).
    weight_decay: float. Defaults to 1e-4.
    folded_batch_norm: bool. See `ResidualUnit`. Defaults to False.

  Call arguments and returns: see `ResidualUnit`.
  """

  def __init__(self, depth, depth_bottleneck, stride=1, activation="relu",
               batch_norm=normalization.IMAGENET_BATCH_NORM,
               weight_decay=1e-4, folded_batch_norm=False, **kwargs):
    kwargs.setdefault("name", "bottleneck_v2")
    super().__init__(depth, stride, activation, batch_norm, weight_decay,
                     folded_batch_norm, **kwargs)
    if int(depth_bottleneck) < 1:
      raise ValueError(f"depth_bottleneck must be positive, received "
                       f"depth_bottleneck={depth_bottleneck!r}")
    self.depth_bottleneck = int(depth_bottleneck)
    bn = self.conv_batch_norm
    self.convs = [
        MaskedConv2D(depth_bottleneck, 1, batch_norm=bn, activation=activation,
                     weight_decay=weight_decay, name="conv1"),
        MaskedConv2D(depth_bottleneck, 3, stride, padding="symmetric",
                     batch_norm=bn, activation=activation,
                     weight_decay=weight_decay, name="conv2"),
        MaskedConv2D(depth, 1, weight_decay=weight_decay, name="conv3"),
    ]
    self.shortcut_conv = None

  def build(self, input_shape):
    super().build(input_shape)
    if self.depth_in != self.depth:
      self.shortcut_conv = MaskedConv2D(
          self.depth, 1, self.stride, weight_decay=self.weight_decay,
          name="shortcut")
      self.shortcut_conv.build(input_shape)

  def shortcut(self, inputs, preact, training=None):
    if self.shortcut_conv is not None:
      return self.shortcut_conv(preact, training=training)
    if self.stride > 1:
      inputs = inputs[:, ::self.stride, ::self.stride, :]
    return inputs, 0

  def get_config(self):
    config = super().get_config()
    config.update(depth_bottleneck=self.depth_bottleneck)
    return config
