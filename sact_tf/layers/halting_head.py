"""Base class of the halting heads."""

import keras
import tensorflow as tf

from sact_tf.layers import activations
from sact_tf.layers import normalization
from sact_tf.layers.masked_conv2d import MaskedConv2D

INIT_BIAS = -3.0


class HaltingHead(keras.layers.Layer):
  """Base of the layers that predict halting probabilities after a unit.

  Holds what both heads share: the constructor arguments and the pooled
  branch `global_bn` -> activation -> 1x1 `global_conv` applied to the
  spatial mean of the unit's output. The layer is named `halting_proba`, as
  the original's variable scope, unless a name is given.

  Args:
    activation: str or None. Activation after each batch norm
      (`"leaky_relu"` in the CIFAR model, None in the ImageNet model).
      Defaults to None.
    batch_norm: dict. `{"momentum", "epsilon"}`. Defaults to ImageNet's.
    weight_decay: float. L2 decay of the conv kernels. Defaults to 0.
    folded_batch_norm: bool. The inference form
      (`sact_tf.inference.optimize`): without an activation `global_bn` is
      folded into `global_conv`'s kernel and biases (`global_bn` is None),
      otherwise it and `local_bn` are `ChannelAffine`s. Defaults to False.
  """

  def __init__(self, activation=None,
               batch_norm=normalization.IMAGENET_BATCH_NORM, weight_decay=0.0,
               folded_batch_norm=False, **kwargs):
    kwargs.setdefault("name", "halting_proba")
    super().__init__(**kwargs)
    self.activation = activation
    self.batch_norm = dict(batch_norm)
    self.weight_decay = weight_decay
    self.folded_batch_norm = bool(folded_batch_norm)
    self.activation_fn = activations.get(activation)
    # Without an activation, the pooled batch norm feeds a 1x1 conv of a
    # 1x1 map: folded into the conv's weights, exactly.
    self.global_bn = (
        None if self.folded_batch_norm and activation is None else
        normalization.batch_norm("global_bn", self.batch_norm,
                                 self.folded_batch_norm))

  def _global_conv(self, activation, bias_initializer):
    if self.global_bn is None and bias_initializer is None:
      bias_initializer = 0.0  # The folded batch norm's offset.
    return MaskedConv2D(1, 1, activation=activation,
                        bias_initializer=bias_initializer,
                        weight_decay=self.weight_decay, name="global_conv")

  def _build_global(self, input_shape):
    pooled_shape = (input_shape[0], 1, 1, input_shape[-1])
    if self.global_bn is not None:
      self.global_bn.build(pooled_shape)
    self.global_conv.build(pooled_shape)

  def global_term(self, inputs, training=None, mean=None):
    """The pooled branch: `[batch, 1, 1, 1]` and its FLOPs `[batch]`.

    Args:
      inputs: float `[batch, h, w, c]`, the unit's output.
      training: bool.
      mean: optional float `[batch, 1, 1, c]`, the spatial mean of `inputs`
        when it is already known.
    """
    if mean is None:
      mean = tf.reduce_mean(inputs, [1, 2], keepdims=True)
    if self.global_bn is not None:
      mean = self.activation_fn(self.global_bn(mean, training=training))
    return self.global_conv(mean, training=training)

  def get_config(self):
    config = super().get_config()
    config.update(activation=self.activation, batch_norm=self.batch_norm,
                  weight_decay=self.weight_decay,
                  folded_batch_norm=self.folded_batch_norm)
    return config
