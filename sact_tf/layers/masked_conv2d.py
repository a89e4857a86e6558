"""A TF-Slim style convolution that counts its FLOPs under an output mask."""

import keras
import tensorflow as tf

from sact_tf import flops as flops_lib
from sact_tf.layers import activations
from sact_tf.layers import normalization

PADDINGS = ("same", "symmetric")


def conv_initializer():
  """TF-Slim's `variance_scaling_initializer()`: He, fan-in, truncated."""
  return keras.initializers.VarianceScaling(
      scale=2.0, mode="fan_in", distribution="truncated_normal")


def l2_regularizer(weight_decay):
  """TF-Slim's `l2_regularizer(w)`, `w * sum(x**2) / 2`, or None for 0."""
  return keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None


@keras.saving.register_keras_serializable(package="sact_tf")
class MaskedConv2D(keras.layers.Layer):
  """`slim.conv2d` wrapped by the original `flopsometer.conv2d`.

  Convolution, then optional batch norm (the layer `BatchNorm`, as TF-Slim's
  `normalizer_fn`) with no bias before it, then an activation. Calling it
  returns the outputs and their FLOPs (see `sact_tf.flops`), counted only on
  the positions of `output_mask` when one is given; the outputs themselves
  are computed everywhere (masking them is the caller's business).
  Variables are named as in TF-Slim: `weights` `[kh, kw, c_in, c_out]`,
  `biases` `[c_out]`, `BatchNorm/{gamma, beta, moving_mean,
  moving_variance}`.

  Args:
    filters: int. Output channels `c_out`.
    kernel_size: int or pair of ints `(kh, kw)`.
    strides: int. Defaults to 1.
    padding: str. `"same"`: TensorFlow SAME padding (asymmetric for stride 2,
      as `slim.conv2d`); `"symmetric"`: `resnet_utils.conv2d_same`, explicit
      `(k - 1) // 2` leading padding then VALID when the stride is above 1.
      Defaults to `"same"`.
    batch_norm: dict or None. `{"momentum", "epsilon"}` of a batch norm
      applied after the convolution, or None. Defaults to None.
    batch_norm_activation: str or None. Activation inside the batch norm (the
      TF-Slim arg scopes can set one on `batch_norm` itself), applied before
      `activation`; without `batch_norm` (a batch norm folded into the
      kernel and biases, `sact_tf.inference.optimize`) after the biases.
      Defaults to None.
    activation: str or None. `"relu"`, `"leaky_relu"` (slope 0.1),
      `"sigmoid"` or None. Defaults to None.
    bias_initializer: float or None. Initial value of the biases; None means
      no biases. Ignored (no biases) with `batch_norm`. Defaults to 0.
    weight_decay: float. L2 weight decay of the kernel, as TF-Slim's
      `l2_regularizer(weight_decay)`. Defaults to 0.
    kernel_initializer: float or None. A constant initial value of every
      kernel weight (the sampling masks start at 0), or None for TF-Slim's
      He initialisation (`conv_initializer`). Defaults to None.

  Call arguments:
    inputs: float32 `[batch, H, W, c_in]`.
    output_mask: optional float32 `[batch, h, w, 1]`, see `sact_tf.flops`.
    training: bool, batch norm mode.

  Returns:
    `(outputs, flops)`: float32 `[batch, h, w, c_out]` and int64 `[batch]`.
  """

  def __init__(self, filters, kernel_size, strides=1, padding="same",
               batch_norm=None, batch_norm_activation=None, activation=None,
               bias_initializer=0.0, weight_decay=0.0, kernel_initializer=None,
               **kwargs):
    super().__init__(**kwargs)
    if isinstance(kernel_size, int):
      kernel_size = (kernel_size, kernel_size)
    kernel_size = tuple(int(k) for k in kernel_size)
    if int(filters) < 1:
      raise ValueError(f"filters must be positive, received filters={filters!r}")
    if len(kernel_size) != 2 or min(kernel_size) < 1:
      raise ValueError(
          f"kernel_size must be a positive int or pair, received "
          f"kernel_size={kernel_size!r}")
    if int(strides) < 1:
      raise ValueError(f"strides must be positive, received strides={strides!r}")
    if padding not in PADDINGS:
      raise ValueError(
          f"padding must be one of {PADDINGS}, received padding={padding!r}")
    if weight_decay < 0:
      raise ValueError(
          f"weight_decay must be >= 0, received weight_decay={weight_decay!r}")
    self.filters = int(filters)
    self.kernel_size = kernel_size
    self.strides = int(strides)
    self.padding = padding
    self.batch_norm = dict(batch_norm) if batch_norm else None
    self.batch_norm_activation = batch_norm_activation
    self.activation = activation
    self.bias_initializer = bias_initializer
    self.weight_decay = weight_decay
    self.kernel_initializer = kernel_initializer
    self.activation_fn = activations.get(activation)
    self.batch_norm_activation_fn = activations.get(batch_norm_activation)
    self.normalizer = (normalization.batch_norm("BatchNorm", self.batch_norm)
                       if self.batch_norm else None)
    self.use_bias = self.normalizer is None and bias_initializer is not None

  def build(self, input_shape):
    self.in_channels = int(input_shape[-1])
    self.kernel = self.add_weight(
        name="weights",
        shape=self.kernel_size + (self.in_channels, self.filters),
        initializer=(conv_initializer() if self.kernel_initializer is None
                     else keras.initializers.Constant(
                         self.kernel_initializer)),
        regularizer=l2_regularizer(self.weight_decay))
    if self.use_bias:
      self.bias = self.add_weight(
          name="biases", shape=(self.filters,),
          initializer=keras.initializers.Constant(self.bias_initializer))
    if self.normalizer is not None:
      self.normalizer.build(tuple(input_shape[:-1]) + (self.filters,))

  def call(self, inputs, output_mask=None, training=None):
    outputs = self.convolve(inputs)
    flops = self.flops(tf.shape(outputs), output_mask)
    return self.normalize_and_activate(outputs, training), flops

  def flops(self, output_shape, output_mask=None):
    """FLOPs per image for an output of `output_shape` (int `[4]`)."""
    return flops_lib.conv2d_flops(output_shape, self.kernel_size,
                                  self.in_channels, self.filters, output_mask)

  def convolve(self, inputs):
    """The convolution and bias alone (no normalizer, no activation)."""
    padding = "SAME"
    if self.padding == "symmetric" and self.strides > 1:
      pads = [(k - 1) // 2 for k in self.kernel_size]
      inputs = tf.pad(inputs, [
          [0, 0], [pads[0], self.kernel_size[0] - 1 - pads[0]],
          [pads[1], self.kernel_size[1] - 1 - pads[1]], [0, 0]])
      padding = "VALID"
    outputs = tf.nn.conv2d(inputs, self.kernel, self.strides, padding)
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, self.bias)
    return outputs

  def normalize_and_activate(self, outputs, training=None):
    """The batch norm (with its own activation) and the activation."""
    if self.normalizer is not None:
      outputs = self.normalizer(outputs, training=training)
    return self.activation_fn(self.batch_norm_activation_fn(outputs))

  def compute_output_shape(self, input_shape, output_mask=None):
    # SAME and symmetric padding both give ceil(size / stride) positions.
    spatial = [None if d is None else -(-int(d) // self.strides)
               for d in input_shape[1:3]]
    return (input_shape[0], *spatial, self.filters), (input_shape[0],)

  def get_config(self):
    config = super().get_config()
    config.update(
        filters=self.filters, kernel_size=self.kernel_size,
        strides=self.strides, padding=self.padding,
        batch_norm=self.batch_norm,
        batch_norm_activation=self.batch_norm_activation,
        activation=self.activation, bias_initializer=self.bias_initializer,
        weight_decay=self.weight_decay,
        kernel_initializer=self.kernel_initializer)
    return config
