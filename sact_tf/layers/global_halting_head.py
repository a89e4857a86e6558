"""ACT halting head: one halting probability per image."""

import keras
import tensorflow as tf

from sact_tf.layers.halting_head import INIT_BIAS
from sact_tf.layers.halting_head import HaltingHead


@keras.saving.register_keras_serializable(package="sact_tf")
class GlobalHaltingHead(HaltingHead):
  """Halting probability of a whole image after a residual unit (ACT).

  Sec. 3.1 of the paper: `h = sigmoid(W pool(F) + b)`, with the original's
  batch norm (and, in the CIFAR model, activation) before the 1x1
  convolution, and `b` initialised to -3. Variables: `global_bn/*`,
  `global_conv/{weights, biases}`.

  Args: see `HaltingHead`.

  Call arguments:
    inputs: float32 `[batch, h, w, c]`, the unit's output.
    training: bool.

  Returns:
    `(halting_proba, flops)`: float32 `[batch, 1]` in (0, 1), int64 `[batch]`.
  """

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.global_conv = self._global_conv("sigmoid", INIT_BIAS)

  def build(self, input_shape):
    self._build_global(input_shape)

  def call(self, inputs, training=None):
    proba, flops = self.global_term(inputs, training)
    return tf.reshape(proba, [-1, 1]), flops
