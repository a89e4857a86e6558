"""The residual branch of a unit at the active positions only."""

import tensorflow as tf

from sact_tf.sparse import gather
from sact_tf.sparse import rows as rows_lib


def sparse_cost(unit, active_fraction, dilated_fraction):
  """Fraction of the branch's multiply-adds that sparse execution does.

  The first conv runs on the dilated positions, the others on the active
  ones: for a bottleneck, `(4 p_d + 13 p) / 17`.

  Args:
    unit: a built `sact_tf.layers.ResidualUnit`.
    active_fraction: float scalar tensor, `p`.
    dilated_fraction: float scalar tensor, `p_d`.

  Returns:
    float scalar tensor in [0, 1].
  """
  macs = [c.kernel_size[0] * c.kernel_size[1] * c.in_channels * c.filters
          for c in unit.convs]
  return (macs[0] * dilated_fraction +
          sum(macs[1:]) * active_fraction) / sum(macs)


def check_sparse_unit(unit):
  """Raises unless `unit` can run sparse: stride 1, identity shortcut."""
  if unit.stride != 1 or unit.depth_in != unit.depth:
    raise ValueError(
        f"sparse execution needs a stride-1 unit with an identity shortcut, "
        f"{unit.name!r} has stride={unit.stride}, depth_in={unit.depth_in}, "
        f"depth={unit.depth}")


def residual_rows(unit, inputs, active, dilated, dilated_rows,
                  training=None):
  """The residual branch `f(F)` of eq. (1) at the active positions.

  Gives, up to float rounding, the rows of `unit.call_with_residual(inputs,
  residual_mask)`'s residual at the active positions: the first conv runs
  on the 3x3 dilation of the active set (what the next 3x3 conv reads), the
  others on the active set; each conv is one matmul on gathered rows or
  3x3 patches (`rows.conv_rows`; a conv reads the previous one's rows with
  `gather.gather_neighbours`), zero outside the image exactly as SAME
  padding. With `dilated` None the first conv runs on the whole map
  instead, as a convolution (for a dilation that covers most of the map,
  cheaper than gathering it).

  Args:
    unit: a built `sact_tf.layers.ResidualUnit` (`check_sparse_unit`).
    inputs: float `[batch, H, W, depth]`, the block state.
    active: `ActiveSet` of the positions not yet halted.
    dilated: `ActiveSet` of their 3x3 dilation, or None.
    dilated_rows: float `[K_d, depth]`, `inputs` at `dilated` (None with
      `dilated`).
    training: bool, batch norm mode.

  Returns:
    float `[K, depth]`, the residual of each active entry.
  """
  check_sparse_unit(unit)
  shape = tf.shape(inputs)
  first, *later = unit.convs
  if dilated is None:
    padded = gather.to_padded(first.normalize_and_activate(
        first.convolve(unit.preactivate(inputs, training)), training))
    previous = None
  else:
    if first.kernel_size[0] == 1:
      rows = unit.activation_fn(rows_lib.normalize_rows(
          unit.preact, dilated_rows, training))
    else:
      rows = gather.gather_patches(
          gather.to_padded(unit.preactivate(inputs, training)),
          dilated, shape, first.kernel_size[0])
    rows = rows_lib.conv_rows(first, rows, training)
    previous = dilated
  for conv in later:
    size = conv.kernel_size[0]
    if previous is None:
      rows = gather.gather_patches(padded, active, shape, size)
    elif not (previous is active and size == 1):
      # (A 1x1 conv on the rows' own positions reads them as they are.)
      rows = gather.gather_neighbours(rows, gather.neighbour_entries(
          previous, active, shape, size))
    rows = rows_lib.conv_rows(conv, rows, training)
    previous = active
  return rows
