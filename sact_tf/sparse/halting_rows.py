"""The SACT halting head's probabilities, computed as taps.

The head of Sec. 3.2 is `h = sigmoid(W_local * F + W_global pool(F) + b)`
with `W_local` a 3x3 convolution of one output channel (after `local_bn`
and the activation). Such a convolution is a sum of taps: `taps[p, t]`, the
input at `p` times the kernel's tap `t = 3 * dy + dx`, one `[N, c] x [c, 9]`
matmul; the output at `q` sums the taps of its 9 neighbours
(`gather.sum_taps`). Sparse execution computes the taps on the rows it has
and sums them at the active positions only; the units it computes in full
use `probabilities_by_taps`. These functions read the weights of a
`sact_tf.layers.SpatialHaltingHead`.
"""

import tensorflow as tf

from sact_tf.sparse import gather
from sact_tf.sparse import rows as rows_lib
from sact_tf.sparse import scatter

KERNEL_SIZE = 3
NUM_TAPS = KERNEL_SIZE**2


def reads_outputs(head, training=None):
  """Whether `sparse_probabilities` reads the unit's output map.

  Not where the taps are linear (`linear_taps`): they are then the input's
  plus the residual's.
  """
  return head.activation is not None or bool(training)


def linear_taps(head, training=None):
  """The taps as an affine map of the unit output, where they are one.

  Without an activation (the ImageNet model) and at inference, `local_bn`
  folds into the kernel: `taps = rows x weights^T + offsets`.

  Returns:
    `(weights, offsets)`, float `[9, c]` and `[9]`, or None (an activation,
    or training).
  """
  if reads_outputs(head, training):
    return None
  kernel = tf.reshape(head.local_conv.kernel, [NUM_TAPS, -1])
  scale, offset = rows_lib.inference_affine(head.local_bn)
  return kernel * scale, tf.matmul(offset[None], kernel,
                                   transpose_b=True)[0]


def local_taps(head, rows, training=None, linear=None):
  """Rows `[N, c]` of the unit's output times the local conv's 9 taps.

  `local_bn` and the activation, then a `[N, c] x [c, 9]` matmul; where the
  taps are linear (`linear_taps`, passed as `linear` or computed here), the
  batch norm folded into them.

  Returns:
    float `[N, 9]`.
  """
  linear = linear or linear_taps(head, training)
  if linear is not None:
    weights, offsets = linear
    return tf.nn.bias_add(tf.matmul(rows, weights, transpose_b=True),
                          offsets)
  kernel = tf.reshape(head.local_conv.kernel, [NUM_TAPS, -1])
  return tf.matmul(head.activation_fn(rows_lib.normalize_rows(
      head.local_bn, rows, training)), kernel, transpose_b=True)


def taps_map(head, inputs, training=None, linear=None):
  """`local_taps` of every position: float `[batch, h, w, 9]`."""
  shape = tf.shape(inputs)
  taps = local_taps(head, tf.reshape(inputs, [-1, inputs.shape[-1]]),
                    training, linear)
  return tf.reshape(taps, tf.concat([shape[:3], [NUM_TAPS]], 0))


def global_logit(head, mean, training=None):
  """The head's pooled term from the spatial mean, on rows.

  `global_bn` (unless folded into `global_conv`), the activation and the
  1x1 `global_conv` on `[batch, c]` rows (one matmul instead of a
  convolution of a 1x1 map).

  Args:
    head: `SpatialHaltingHead`.
    mean: float `[batch, 1, 1, c]`, the spatial mean of the unit output.
    training: bool.

  Returns:
    float `[batch, 1]`.
  """
  rows = tf.reshape(mean, [-1, mean.shape[-1]])
  if head.global_bn is not None:  # (None: folded into `global_conv`.)
    rows = head.activation_fn(rows_lib.normalize_rows(head.global_bn, rows,
                                                      training))
  return rows_lib.conv_rows(head.global_conv, rows, training)


def probabilities_by_taps(head, outputs, mean, training=None):
  """The head's probabilities at every position, from taps.

  Args:
    head: `SpatialHaltingHead`.
    outputs: float `[batch, h, w, c]`, the unit's output.
    mean: float `[batch, 1, 1, c]`, the spatial mean of `outputs`.
    training: bool.

  Returns:
    float `[batch, h, w, 1]`, `head(outputs)`'s probabilities up to float
    rounding.
  """
  local_logit = gather.sum_taps_map(taps_map(head, outputs, training))
  pooled_logit = tf.reshape(global_logit(head, mean, training),
                            [-1, 1, 1, 1])
  return tf.sigmoid(local_logit + head.local_conv.bias + pooled_logit)


def sparse_probabilities(head, inputs, residual, outputs, active, dilated,
                         dilated_rows, mean, config, training=None):
  """The head's probabilities at the active positions only.

  The taps of the batch-normalised unit output at the dilated positions (at
  every position with `dilated` None), summed at each active position over
  its neighbours. Where the taps are linear in the unit output
  (`linear_taps`), they are those of the unit input plus those of the
  residual at the active positions: no rows of the output are gathered, and
  the input's taps can be computed while the residual branch runs.

  Args:
    head: `SpatialHaltingHead`.
    inputs: float `[batch, h, w, c]`, the unit's input.
    residual: float `[K, c]`, the unit's residual at the active entries (any
      values for dummies).
    outputs: float `[batch, h, w, c]`, the unit's output: `inputs` plus
      `residual` at the active positions; read only where `reads_outputs`,
      otherwise None will do.
    active: `ActiveSet` of the positions not yet halted.
    dilated: `ActiveSet` of their 3x3 dilation, or None.
    dilated_rows: float `[K_d, c]`, `inputs` at `dilated` (None with
      `dilated`).
    mean: float `[batch, 1, 1, c]`, the spatial mean of `outputs`.
    config: `SparseConfig`, for the scatter.
    training: bool.

  Returns:
    float `[batch, h, w, 1]`: `head(outputs)`'s probabilities at the active
    positions up to float rounding, zero at the others (where the halting
    math ignores them).
  """
  shape = tf.shape(inputs)
  linear = linear_taps(head, training)
  if dilated is None:
    taps = taps_map(head, outputs if linear is None else inputs, training,
                    linear)
    local_logit = gather.sum_taps(
        gather.to_padded(taps),
        gather.neighbour_rows(active, shape, KERNEL_SIZE))
  else:
    rows = (gather.gather_rows(outputs, dilated) if linear is None
            else dilated_rows)
    local_logit = gather.sum_taps(
        gather.with_zero_row(local_taps(head, rows, training, linear)),
        gather.neighbour_entries(dilated, active, shape, KERNEL_SIZE))
  if linear is not None:
    weights, _ = linear
    local_logit += gather.sum_taps(
        gather.with_zero_row(tf.matmul(residual, weights, transpose_b=True)),
        gather.neighbour_entries(active, active, shape, KERNEL_SIZE))
  logit = (local_logit[:, None] + head.local_conv.bias +
           tf.gather(global_logit(head, mean, training),
                     active.indices[:, 0]))
  return scatter.scatter_map(tf.sigmoid(logit), active, shape, config)
