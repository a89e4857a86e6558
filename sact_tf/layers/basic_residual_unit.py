"""The CIFAR model's residual unit."""

import keras
import tensorflow as tf

from sact_tf.layers import normalization
from sact_tf.layers.masked_conv2d import MaskedConv2D
from sact_tf.layers.residual_unit import ResidualUnit


@keras.saving.register_keras_serializable(package="sact_tf")
class BasicResidualUnit(ResidualUnit):
  """Two 3x3 convolutions with a pre-activation (the original `residual`).

  `preact` (batch norm + leaky ReLU) -> `conv1` (3x3, stride, batch norm +
  leaky ReLU) -> `conv2` (3x3, biases, no activation). The shortcut is the
  input (or, with `activate_before_residual`, the pre-activation); when the
  depth changes it is 2x2 average pooled (VALID) and zero-padded by
  `(depth - depth_in) // 2` channels on each side. Named `residual`, as the
  original's scope, unless a name is given.

  In the original TF-Slim arg scope the leaky ReLU is set on `conv2d` and on
  `batch_norm` alike, so `conv1` applies it twice: inside its batch norm and
  after it (`lrelu(lrelu(x))`, slope 0.01 below zero). That is reproduced.

  Args:
    depth: int. Output channels.
    stride: int. 1 or 2. Defaults to 1.
    activate_before_residual: bool. Use the pre-activation as the shortcut
      (the first unit of the CIFAR network). Defaults to False.
    activation: str. Defaults to `"leaky_relu"`.
    batch_norm: dict. Defaults to the CIFAR model's (momentum 0.9, epsilon
      1e-3).
    weight_decay: float. Defaults to 2e-4.
    folded_batch_norm: bool. See `ResidualUnit`. Defaults to False.

  Call arguments and returns: see `ResidualUnit`.
  """

  def __init__(self, depth, stride=1, activate_before_residual=False,
               activation="leaky_relu",
               batch_norm=normalization.CIFAR_BATCH_NORM, weight_decay=2e-4,
               folded_batch_norm=False, **kwargs):
    kwargs.setdefault("name", "residual")
    super().__init__(depth, stride, activation, batch_norm, weight_decay,
                     folded_batch_norm, **kwargs)
    self.activate_before_residual = bool(activate_before_residual)
    self.convs = [
        MaskedConv2D(depth, 3, stride, batch_norm=self.conv_batch_norm,
                     batch_norm_activation=activation, activation=activation,
                     weight_decay=weight_decay, name="conv1"),
        MaskedConv2D(depth, 3, weight_decay=weight_decay, name="conv2"),
    ]

  def build(self, input_shape):
    depth_in = int(input_shape[-1])
    if depth_in == self.depth and self.stride != 1:
      raise ValueError(
          f"BasicResidualUnit downsamples only when the depth changes, "
          f"received stride={self.stride} with depth {self.depth} == depth_in")
    if depth_in > self.depth or (self.depth - depth_in) % 2:
      raise ValueError(
          f"BasicResidualUnit pads the shortcut by (depth - depth_in) / 2 on "
          f"each side, received depth={self.depth}, depth_in={depth_in}")
    super().build(input_shape)

  def shortcut(self, inputs, preact, training=None):
    shortcut = preact if self.activate_before_residual else inputs
    if self.depth_in != self.depth:
      shortcut = tf.nn.avg_pool2d(shortcut, self.stride, self.stride, "VALID")
      pad = (self.depth - self.depth_in) // 2
      shortcut = tf.pad(shortcut, [[0, 0], [0, 0], [0, 0], [pad, pad]])
    return shortcut, 0

  def get_config(self):
    config = super().get_config()
    config.update(activate_before_residual=self.activate_before_residual)
    return config
