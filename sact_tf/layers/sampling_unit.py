"""A residual unit run with stochastic feature sampling and interpolation."""

import keras
import tensorflow as tf

from sact_tf import sampling
from sact_tf.layers.rbf_interpolation import RbfInterpolation
from sact_tf.layers.sampling_mask import SamplingMask
from sact_tf.sparse import sampling_rows


def _mask_geometry(convs, index):
  """Stride and padding of the output of `convs[index]` from the input."""
  stride, padding = 1, "same"
  for conv in convs[:index + 1]:
    stride *= conv.strides
    if conv.strides > 1:
      padding = conv.padding
  return stride, padding


@keras.saving.register_keras_serializable(package="sact_tf")
class SamplingUnit(keras.layers.Layer):
  """One unit of a `"sampling"` block (Xie et al., ECCV 2020, fig. 2).

  The residual unit's first two convolutions are masked: `mask_1` (`m1`)
  samples the output positions of `conv1`, `mask_2` (`m2`) those of
  `conv2`, both predicted (`SamplingMask`) from the unit's pre-activation
  (the reference's unit input is the previous unit's ReLU output; in a
  pre-activation network that is the batch-normalised, activated input).
  After each masked convolution (after its batch norm and activation, for
  the CIFAR unit's `conv2` after its biases) `RbfInterpolation`
  reconstructs the skipped positions; the shortcut is untouched. This is
  the masked (dense) computation: every position is computed, then mixed.
  Given a `sparse_config` at inference with deterministic masks, the unit
  (strided or not) computes its convolutions only at the sampled positions
  and fills in the interpolation only where it is needed, its kernel sums
  read from one depthwise convolution of the map
  (`sact_tf.sparse.sampling_rows`), with the same outputs up to float
  rounding and the same FLOPs.

  FLOPs, per image, counted as a sparse execution computes them:

  * the two mask convolutions on every position;
  * `conv1` on `m1`'s sampled positions, `conv2` on `m2`'s;
  * a third convolution (the bottleneck's 1x1 `conv3`) on `m2`'s positions
    too: the interpolation is linear per channel, so it commutes with a
    1x1 convolution, and the reference (its `FlopsCalculator`) counts
    `conv3` at `conv2`'s density and interpolates after it;
  * the interpolations on the skipped positions only
    (`sampling.interpolation_flops`), `m1`'s over `conv1`'s channels and
    `m2`'s over the last convolution's (the bottleneck's output depth);
  * the shortcut convolution (bottleneck, depth change) on every position.

  With both masks all ones this is the residual unit's computation and
  count plus the two mask convolutions.

  Args:
    residual_unit: `ResidualUnit` (`BasicResidualUnit` or `BottleneckUnit`).
    grid_stride: int >= 1. Defaults to 4.
    evaluation: str. `"deterministic"` or `"noisy"` (see `SamplingMask`).
      Defaults to `"deterministic"`.
    weight_decay: float. L2 decay of the mask kernels. Defaults to 0.
    seed: int or None. Seed of the masks' noise (`seed`, `seed + 1`).
      Defaults to None.

  Call arguments:
    inputs: float `[batch, H, W, c_in]`.
    training: bool.
    sparse_config: `SparseConfig` or None (masked computation).

  Returns:
    `(outputs, flops, info)`: float `[batch, h, w, depth]`, int64
    `[batch]`, and a dict with `mask_1` (`[batch, H1, W1, 1]`), `mask_2`
    (`[batch, h, w, 1]`), `sparse_loss` (`[batch]`,
    `sampling.unit_sparse_loss`) and `density` (`[batch, h, w]`, the mean
    of the sampled positions of `m2` and of `m1` average-pooled to the
    output grid).
  """

  halting_head = None

  def __init__(self, residual_unit, grid_stride=sampling.DEFAULT_GRID_STRIDE,
               evaluation="deterministic", weight_decay=0.0, seed=None,
               **kwargs):
    super().__init__(**kwargs)
    sampling.check_grid_stride(grid_stride)
    if len(residual_unit.convs) < 2:
      raise ValueError(f"a sampling unit needs a residual unit of two or "
                       f"more convolutions, received {residual_unit.name!r} "
                       f"with {len(residual_unit.convs)}")
    self.residual_unit = residual_unit
    self.grid_stride = grid_stride
    self.evaluation = evaluation
    self.weight_decay = weight_decay
    self.seed = seed
    self.masks = []
    self.interpolations = []
    for index in range(2):
      stride, padding = _mask_geometry(residual_unit.convs, index)
      self.masks.append(SamplingMask(
          stride, padding, grid_stride, evaluation, weight_decay=weight_decay,
          seed=None if seed is None else seed + index,
          name=f"mask_{index + 1}"))
      self.interpolations.append(
          RbfInterpolation(name=f"interpolation_{index + 1}"))

  def build(self, input_shape):
    unit = self.residual_unit
    if not unit.built:
      unit.build(input_shape)
    shape = input_shape
    for index, conv in enumerate(unit.convs):
      shape = conv.compute_output_shape(shape)[0]
      if index < 2:
        self.masks[index].build(input_shape)
        self.interpolations[index].build(shape)

  def call(self, inputs, training=None, sparse_config=None):
    unit = self.residual_unit
    preact = unit.preactivate(inputs, training)
    outputs, flops = unit.shortcut(inputs, preact, training)
    masks, logits = [], []
    for mask_layer in self.masks:
      mask, mask_logits, mask_flops = mask_layer(preact, training=training)
      masks.append(mask)
      logits.append(mask_logits)
      flops += mask_flops
    if (sparse_config is not None and not training and
        self.evaluation == "deterministic" and
        sampling_rows.supports(self)):
      residual = sampling_rows.sparse_residual(self, preact, masks,
                                               sparse_config)
    else:
      residual = preact
      for index, conv in enumerate(unit.convs):
        residual, _ = conv(residual, training=training)
        if index < 2:
          residual = self.interpolations[index](residual, masks[index])
    return outputs + residual, flops + self._branch_flops(masks), {
        "mask_1": masks[0], "mask_2": masks[1],
        "sparse_loss": sampling.unit_sparse_loss(*logits),
        "density": self._density(masks)}

  def _branch_flops(self, masks):
    """FLOPs of the convolutions and interpolations (see the class)."""
    convs = self.residual_unit.convs
    flops = 0
    for index, conv in enumerate(convs):
      mask = sampling.sampled(masks[min(index, 1)])
      flops += conv.flops(tf.shape(mask), mask)
    flops += self.interpolations[0].flops(masks[0], convs[0].filters)
    return flops + self.interpolations[1].flops(masks[1], convs[-1].filters)

  def _density(self, masks):
    """`[batch, h, w]`: mean sampled fraction of both masks, output grid."""
    first = sampling.sampled(masks[0])
    ratio = self.masks[1].strides // self.masks[0].strides
    if ratio > 1:
      first = tf.nn.avg_pool2d(first, ratio, ratio, "SAME")
    return 0.5 * (first + sampling.sampled(masks[1]))[..., 0]

  def compute_output_shape(self, input_shape):
    return self.residual_unit.compute_output_shape(input_shape)

  def get_config(self):
    config = super().get_config()
    config.update(
        residual_unit=keras.saving.serialize_keras_object(self.residual_unit),
        grid_stride=self.grid_stride, evaluation=self.evaluation,
        weight_decay=self.weight_decay, seed=self.seed)
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["residual_unit"] = keras.saving.deserialize_keras_object(
        config["residual_unit"])
    return cls(**config)
