"""Sparse execution of a sampling unit (Xie et al., ECCV 2020).

The masked computation (`sact_tf.layers.SamplingUnit`) computes every
position of every convolution and mixes each with its interpolation. This
computes, for a unit at inference with 0/1 masks:

1. `conv1` only at `m1`'s sampled positions (rows, `rows.conv_rows`);
2. the first interpolation only where `conv2` reads it and `m1` skipped
   it: the 3x3 dilation of `m2`'s read centres (`read_centres`) less `m1`;
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

The interpolation at a position is a weighted sum of its 7x7 neighbours,
read from one depthwise convolution of the map (`interpolation_rows`).
The answers equal the masked computation up to float rounding.

A strided convolution (the first unit of a block: the bottleneck's `conv2`,
the basic unit's `conv1`) reads, for output `(i, j)`, the 3x3 patch of its
input centred at `(s i + o_h, s j + o_w)`, with `o` from its padding
(`read_centres`): its rows are the stride-1 patches gathered at those
centres, so both kinds of unit run on the same gathers.
"""

import tensorflow as tf

from sact_tf import sampling
from sact_tf.sparse import active_set as active_set_lib
from sact_tf.sparse import gather
from sact_tf.sparse import rows as rows_lib
from sact_tf.sparse import scatter


def supports(unit):
  """Whether `sparse_residual` can run `unit` (a built `SamplingUnit`).

  The first two convolutions 1x1 or 3x3 (strided or not), a third, if any,
  1x1 with stride 1 that commutes with the interpolation.
  """
  convs = unit.residual_unit.convs
  if len(convs) > 3:
    return False
  if any(c.kernel_size not in ((1, 1), (3, 3)) for c in convs[:2]):
    return False
  if len(convs) == 3:
    last = convs[2]
    return (last.kernel_size == (1, 1) and last.strides == 1 and
            last.normalizer is None and last.activation is None)
  return True


def _centre_offset(conv, input_size, output_size):
  """The input row (or column) of output 0's patch centre, int32 scalar.

  SAME padding puts `max((out - 1) s + k - in, 0) // 2` zeros first
  (TensorFlow's rule), symmetric padding `(k - 1) // 2`; the centre lies
  `k // 2` past the patch's first row.
  """
  k = conv.kernel_size[0]
  if conv.padding == "symmetric":
    return tf.constant(0, tf.int32)
  total = tf.maximum((output_size - 1) * conv.strides + k - input_size, 0)
  return k // 2 - total // 2


def read_centres(conv, output_mask, input_shape):
  """Where on its input `conv` centres the patches of `output_mask`'s ones.

  Args:
    conv: a `MaskedConv2D` (1x1 or 3x3, any stride).
    output_mask: float `[batch, h, w, 1]` of zeros and ones, on the
      convolution's output grid.
    input_shape: int32 `[4]`, the shape of the convolution's input.

  Returns:
    float `[batch, H, W, 1]` (`H, W` of `input_shape`): one at `(s i +
    o_h, s j + o_w)` for every one of `output_mask` at `(i, j)`, zeros
    elsewhere; `output_mask` itself at stride 1. In the row-major order of
    both maps the ones correspond one to one, so active sets of the two
    list the same positions in the same order.
  """
  s = conv.strides
  if s == 1:
    return output_mask
  shape = tf.shape(output_mask)
  # Each value followed by s - 1 zeros along both axes, ones at (s i, s j),
  # by 4-D concatenations and reshapes (TFLite's builtin ops).
  spread = tf.concat([output_mask] + [tf.zeros_like(output_mask)] * (s - 1),
                     3)
  spread = tf.reshape(spread, [shape[0], shape[1], shape[2] * s, 1])
  spread = tf.concat([spread] + [tf.zeros_like(spread)] * (s - 1), 2)
  spread = tf.reshape(spread, [shape[0], shape[1] * s, shape[2] * s, 1])
  top = _centre_offset(conv, input_shape[1], shape[1])
  left = _centre_offset(conv, input_shape[2], shape[2])
  shifted = tf.pad(spread, [[0, 0], [top, 0], [left, 0], [0, 0]])
  return shifted[:, :input_shape[1], :input_shape[2]]


def _conv_rows_at(conv, inputs, output_mask):
  """`conv` at the ones of `output_mask` (its output grid): `[K, c_out]`."""
  shape = tf.shape(inputs)
  centres = active_set_lib.active_set(read_centres(conv, output_mask, shape))
  if conv.kernel_size == (1, 1):
    patches = gather.gather_rows(inputs, centres)
  else:
    patches = gather.gather_patches(gather.to_padded(inputs), centres, shape,
                                    3)
  return rows_lib.conv_rows(conv, patches)


def interpolation_rows(mask_features, mask, lam, active, kernel_size):
  """`sampling.interpolate`'s second term at the positions of `active`.

  The kernel sums are computed as one depthwise convolution of the whole
  map (`sampling.kernel_sums`), then read at the positions: on CPU a
  depthwise convolution over the map runs far faster than gathering the
  `k x k` neighbour rows of each position, even where most positions need
  no interpolation (see docs/benchmarks.md). The FLOPs are still counted
  at the positions that need it (`sampling.interpolation_flops`), as an
  implementation gathering them would compute; the convolution also
  computes `2 k^2 (C + 1)` per other position, which are discarded.

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
  numerator, denominator = sampling.kernel_sums(mask_features, mask, lam,
                                                kernel_size)
  weight = gather.gather_rows(denominator, active)
  return gather.gather_rows(numerator, active) / weight, weight


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
  """The residual branch of a `SamplingUnit`, computed sparsely.

  Args:
    unit: a built `SamplingUnit` that `supports`.
    preact: float `[batch, H, W, c_in]`, the unit's pre-activation.
    masks: `[m1, m2]`, float `[batch, h1, w1, 1]` and `[batch, h, w, 1]`
      (the output grids of `conv1` and `conv2`) of zeros and ones.
    config: `SparseConfig`.

  Returns:
    float `[batch, h, w, depth]`, the masked computation's residual.
  """
  convs = unit.residual_unit.convs
  m1, m2 = masks
  first, second = unit.interpolations
  rows_1 = _conv_rows_at(convs[0], preact, m1)
  conv2_reads = read_centres(convs[1], m2, tf.shape(m1))
  needed_1 = active_set_lib.active_set(
      active_set_lib.dilate_mask(conv2_reads) * (1.0 - m1))
  conv2_input = _interpolated_map(rows_1, active_set_lib.active_set(m1), m1,
                                  first.lam, needed_1, first.kernel_size,
                                  config)
  rows_2 = _conv_rows_at(convs[1], conv2_input, m2)
  bias = None
  if len(convs) == 3:
    rows_2 = rows_lib.conv_rows(convs[2], rows_2)
    bias = convs[2].bias if convs[2].use_bias else None
  skipped_2 = active_set_lib.active_set(1.0 - m2)
  return _interpolated_map(rows_2, active_set_lib.active_set(m2), m2,
                           second.lam, skipped_2, second.kernel_size, config,
                           bias)
