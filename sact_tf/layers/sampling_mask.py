"""The sampling module: where one convolution of a unit is computed."""

import keras
import tensorflow as tf

from sact_tf import sampling
from sact_tf.layers.masked_conv2d import MaskedConv2D

EVALUATIONS = ("deterministic", "noisy")


@keras.saving.register_keras_serializable(package="sact_tf")
class SamplingMask(keras.layers.Layer):
  """Samples the positions one convolution computes (Xie et al., sec. 3.2).

  A 3x3 convolution of the unit's input to one channel, the mask logits
  (kernel initialised to 0, bias to 3, so the sampling starts nearly dense;
  stride and padding as the convolution it masks, so the mask lies on its
  output positions), then:

  * training: a Gumbel-sigmoid sample (`sampling.gumbel_sigmoid`) at the
    temperature `temperature`, a non-trainable variable (saved in
    checkpoints) that starts at `initial_temperature` and is multiplied by
    `temperature_decay` after every training call, i.e. every training
    step;
  * evaluation `"deterministic"` (the default): `sigmoid(logits) >= 0.5`,
    a 0/1 mask;
  * evaluation `"noisy"` (the reference's): a Gumbel-sigmoid sample `s` at
    temperature `eval_temperature`, then `s * (s >= 0.5)`.

  Every `grid_stride`-th row and column (from 0) is then always sampled
  (the grid prior, `sampling.grid_prior`).

  Args:
    strides: int. Stride of the masked convolution's output relative to
      the unit's input. Defaults to 1.
    padding: str. `"same"` or `"symmetric"` (see `MaskedConv2D`), as the
      masked convolution. Defaults to `"same"`.
    grid_stride: int >= 1. Defaults to `sampling.DEFAULT_GRID_STRIDE` (4).
    evaluation: str. `"deterministic"` or `"noisy"`. Defaults to
      `"deterministic"`.
    initial_temperature: float > 0. Defaults to 1.0.
    temperature_decay: float in (0, 1]. Defaults to 0.99998.
    eval_temperature: float > 0. Temperature of the noisy evaluation.
      Defaults to 0.03.
    weight_decay: float. L2 decay of the mask kernel. Defaults to 0.
    seed: int or None. TensorFlow op seed of the noise (stateful: new noise
      at every call; with `keras.utils.set_random_seed` reproducible).
      Defaults to None.

  Call arguments:
    inputs: float `[batch, H, W, c_in]`, the unit's input.
    training: bool.

  Returns:
    `(mask, logits, flops)`: float `[batch, h, w, 1]` in `[0, 1]` (one on
    the grid), the logits `[batch, h, w, 1]`, and the FLOPs of the mask
    convolution (every position) int64 `[batch]`.
  """

  def __init__(self, strides=1, padding="same",
               grid_stride=sampling.DEFAULT_GRID_STRIDE,
               evaluation="deterministic",
               initial_temperature=sampling.INITIAL_TEMPERATURE,
               temperature_decay=sampling.TEMPERATURE_DECAY,
               eval_temperature=sampling.NOISY_EVAL_TEMPERATURE,
               weight_decay=0.0, seed=None, **kwargs):
    super().__init__(**kwargs)
    sampling.check_grid_stride(grid_stride)
    if evaluation not in EVALUATIONS:
      raise ValueError(f"evaluation must be one of {EVALUATIONS}, received "
                       f"evaluation={evaluation!r}")
    sampling.check_temperature("initial_temperature", initial_temperature)
    sampling.check_temperature("eval_temperature", eval_temperature)
    if not (isinstance(temperature_decay, (int, float)) and
            0 < temperature_decay <= 1):
      raise ValueError(f"temperature_decay must be in (0, 1], received "
                       f"temperature_decay={temperature_decay!r}")
    self.strides = int(strides)
    self.padding = padding
    self.grid_stride = grid_stride
    self.evaluation = evaluation
    self.initial_temperature = float(initial_temperature)
    self.temperature_decay = float(temperature_decay)
    self.eval_temperature = float(eval_temperature)
    self.weight_decay = weight_decay
    self.seed = seed
    self.conv = MaskedConv2D(1, 3, self.strides, padding=padding,
                             bias_initializer=sampling.MASK_BIAS,
                             kernel_initializer=0.0,
                             weight_decay=weight_decay, name="conv")

  def build(self, input_shape):
    self.conv.build(input_shape)
    self.temperature = self.add_weight(
        name="temperature", shape=(),
        initializer=keras.initializers.Constant(self.initial_temperature),
        trainable=False, aggregation="only_first_replica")

  def call(self, inputs, training=None):
    logits, flops = self.conv(inputs, training=training)
    if training:
      temperature = tf.cast(self.temperature, logits.dtype)
      mask = sampling.gumbel_sigmoid(logits, temperature, self.seed)
      self.temperature.assign(self.temperature * self.temperature_decay)
      return sampling.grid_prior(mask, self.grid_stride), logits, flops
    if self.evaluation == "deterministic":
      mask = tf.cast(tf.sigmoid(logits) >= 0.5, logits.dtype)
      return sampling.grid_prior(mask, self.grid_stride), logits, flops
    mask = sampling.grid_prior(
        sampling.gumbel_sigmoid(logits, self.eval_temperature,
                                self.seed), self.grid_stride)
    return mask * sampling.sampled(mask), logits, flops

  def compute_output_shape(self, input_shape):
    shape = self.conv.compute_output_shape(input_shape)[0]
    return shape, shape, (input_shape[0],)

  def get_config(self):
    config = super().get_config()
    config.update(
        strides=self.strides, padding=self.padding,
        grid_stride=self.grid_stride, evaluation=self.evaluation,
        initial_temperature=self.initial_temperature,
        temperature_decay=self.temperature_decay,
        eval_temperature=self.eval_temperature,
        weight_decay=self.weight_decay, seed=self.seed)
    return config
