"""Sparse execution of a sampling unit (Xie et al., ECCV 2020).

The masked computation (`sact_tf.layers.SamplingUnit`) computes every
position of every convolution and mixes each with its interpolation. This
computes, for a stride-1 unit at inference with 0/1 masks:

1. `conv1` only at `m1`'s sampled positions (rows, `rows.conv_rows`);
2. the first interpolation only where `conv2` reads it and `m1` skipped
   it: the 3x3 dilation of `m2` less `m1`;
3. `conv2` only at `m2`'s positions, on 3x3 patches of that map;
4. a third convolution (the bottleneck's `conv3`: 1x1, biases, no batch
   norm or activation) on `m2`'s rows too, before the second
   interpolation: the interpolation is linear per channel with weights
   `w_q / (W + eps)`, `W = sum_q w_q`, so `conv3(interp(G)) =
   interp(conv3(G)) + b eps / (W + eps)` (the bias term is added back
   exactly). This holds for a 1x1 convolution without batch norm in
   training (batch statistics) or a nonlinearity after it; the basic unit
   has no third convolution;
5. the second interpolation only at `m2`'s skipped positions.

The interpolation at a position is a weighted sum of its 7x7 neighbours'
rows, gathered from a layout padded by 3 (zero outside the map, as the
masked computation's SAME padding). The answers equal the masked
computation up to float rounding.
"""

import tensorflow as tf

from sact_tf import sampling
from sact_tf.sparse import active_set as active_set_lib
from sact_tf.sparse import gather
from sact_tf.sparse import rows as rows_lib
from sact_tf.sparse import scatter


def supports(unit):
  """Whether `sparse_residual` can run `unit` (a built `SamplingUnit`).

  Stride 1 (a strided unit's masks and maps have other grids) and a third
  convolution, if any, that commutes with the interpolation.
  """
  convs = unit.residual_unit.convs
  if unit.residual_unit.stride != 1 or len(convs) > 3:
    return False
  if any(c.kernel_size not in ((1, 1), (3, 3)) for c in convs[:2]):
    return False
  if len(convs) == 3:
    last = convs[2]
    return (last.kernel_size == (1, 1) and last.normalizer is None and
            last.activation is None)
  return True


def interpolation_rows(mask_features, mask, lam, active, kernel_size):
  """`sampling.interpolate`'s second term at the positions of `active`.

  Args:
    mask_features: float `[batch, H, W, C]`, `M F` (zero where skipped).
    mask: float `[batch, H, W, 1]` of zeros and ones.
    lam: float scalar, the kernel's `lambda`.
    active: `ActiveSet` of the positions to interpolate.
    kernel_size: odd int.

  Returns:
    `(values, weight)`: float `[K, C]`, `(K * (M F)) / (K * M + eps)`, and
    `[K, 1]`, `K * M + eps`, at those positions.
  """
  radius = kernel_size // 2
  shape = tf.shape(mask_features)
  pads = [[0, 0], [radius, radius], [radius, radius], [0, 0]]
  width = shape[2] + 2 * radius
  b, h, w = tf.unstack(active.indices, axis=1)
  centre = (b * (shape[1] + 2 * radius) + h + radius) * width + w + radius
  steps = tf.range(-radius, radius + 1)
  offsets = tf.reshape(steps[:, None] * width + steps[None, :], [1, -1])
  neighbours = centre[:, None] + offsets  # [K, k * k]
  kernel = tf.reshape(
      sampling.rbf_kernel(lam, kernel_size, mask_features.dtype), [-1, 1])
  channels = mask_features.shape[-1]
  features = tf.gather(
      tf.reshape(tf.pad(mask_features, pads), [-1, channels]), neighbours)
  weights = tf.gather(tf.reshape(tf.pad(mask, pads), [-1, 1]), neighbours)
  numerator = tf.reduce_sum(features * kernel, 1)
  weight = tf.reduce_sum(weights * kernel, 1) + sampling.NORMALIZER_EPS
  return numerator / weight, weight


def _interpolated_map(rows, sampled_set, mask, lam, needed, kernel_size,
                      config, bias=None):
  """A map that is `rows` on `sampled_set`, interpolated on `needed`.

  Positions in neither are zero. `bias` (float `[C]`): the output of a
  1x1 convolution moved before the interpolation, whose bias the
  interpolation scaled by `W / (W + eps)`; `b eps / (W + eps)` restores it.
  """
  # A zero map whose shape the graph (and TFLite's converter) infers from
  # the mask's: a scatter into a map of a computed shape would lose it.
  zeros = tf.zeros_like(mask) + tf.zeros([rows.shape[-1]], rows.dtype)
  mask_features = scatter.scatter_add(zeros, rows, sampled_set, config)
  values, weight = interpolation_rows(mask_features, mask, lam, needed,
                                      kernel_size)
  if bias is not None:
    values += bias * (sampling.NORMALIZER_EPS / weight)
  return scatter.scatter_add(mask_features, values, needed, config)


def sparse_residual(unit, preact, masks, config):
  """The residual branch of a stride-1 `SamplingUnit`, computed sparsely.

  Args:
    unit: a built `SamplingUnit` that `supports`.
    preact: float `[batch, H, W, c_in]`, the unit's pre-activation.
    masks: `[m1, m2]`, float `[batch, H, W, 1]` of zeros and ones.
    config: `SparseConfig`.

  Returns:
    float `[batch, H, W, depth]`, the masked computation's residual.
  """
  convs = unit.residual_unit.convs
  m1, m2 = masks
  first, second = unit.interpolations
  shape = tf.shape(preact)
  set_1 = active_set_lib.active_set(m1)
  set_2 = active_set_lib.active_set(m2)
  if convs[0].kernel_size == (1, 1):
    patches = gather.gather_rows(preact, set_1)
  else:
    patches = gather.gather_patches(gather.to_padded(preact), set_1, shape, 3)
  rows_1 = rows_lib.conv_rows(convs[0], patches)
  needed_1 = active_set_lib.active_set(
      active_set_lib.dilate_mask(m2) * (1.0 - m1))
  conv2_input = _interpolated_map(rows_1, set_1, m1, first.lam, needed_1,
                                  first.kernel_size, config)
  rows_2 = rows_lib.conv_rows(convs[1], gather.gather_patches(
      gather.to_padded(conv2_input), set_2, shape, convs[1].kernel_size[0]))
  bias = None
  if len(convs) == 3:
    rows_2 = rows_lib.conv_rows(convs[2], rows_2)
    bias = convs[2].bias if convs[2].use_bias else None
  skipped_2 = active_set_lib.active_set(1.0 - m2)
  return _interpolated_map(rows_2, set_2, m2, second.lam, skipped_2,
                           second.kernel_size, config, bias)
