"""A per-channel affine map: a batch norm folded for inference."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="sact_tf")
class ChannelAffine(keras.layers.Layer):
  """`x * scale + offset` per channel: a batch norm at inference, folded.

  A batch norm at inference is the affine map `gamma / sqrt(var + eps)`,
  `beta - mean * gamma / sqrt(var + eps)` of its moving statistics; this
  layer holds that map as two weights, computed once
  (`sact_tf.inference.optimize`) instead of at every call. It stands in
  for the batch norms that cannot be folded into a convolution's weights:
  a pre-activation unit's `preact` (its input is a sum of a shortcut and a
  residual, no single convolution's output), a halting head's `local_bn`
  (before a 3x3 SAME convolution, whose zero padding a folded offset would
  get wrong at the border) and the networks' head batch norms. Training
  mode is the same map (no batch statistics). Variables: `scale`, `offset`
  `[channels]`.

  Call arguments:
    inputs: float `[..., channels]`.
    training: ignored.

  Returns:
    float `[..., channels]`.
  """

  def build(self, input_shape):
    channels = int(input_shape[-1])
    self.scale = self.add_weight(name="scale", shape=(channels,),
                                 initializer="ones")
    self.offset = self.add_weight(name="offset", shape=(channels,),
                                  initializer="zeros")

  def call(self, inputs, training=None):
    del training  # The same map in both modes.
    return inputs * tf.cast(self.scale, inputs.dtype) + tf.cast(
        self.offset, inputs.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape
