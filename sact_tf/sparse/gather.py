"""Rows and convolution patches read at the positions of an active set.

The residual branch of a sparse unit is a chain of matmuls on rows: `[K, C]`
for a 1x1 conv, `[K, 9 C]` patches for a 3x3 conv, in `(dy, dx, c)` order,
zero outside the image exactly as SAME padding.
"""

import tensorflow as tf


def gather_rows(x, active):
  """The rows of `x` `[batch, H, W, C]` at the active positions: `[K, C]`."""
  return tf.gather(tf.reshape(x, [-1, x.shape[-1]]), active.rows)


def to_padded(x):
  """`[batch, H, W, C]` -> its padded layout `[batch * (H+2) * (W+2), C]`."""
  padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
  return tf.reshape(padded, [-1, x.shape[-1]])


def neighbour_rows(active, shape, kernel_size):
  """Padded-layout rows of the `k x k` neighbours: int32 `[K, k * k]`.

  Neighbours in `(dy, dx)` order; dummies read row 0, on the zero ring.
  """
  radius = kernel_size // 2
  steps = tf.range(-radius, radius + 1)
  offsets = tf.reshape(steps[:, None] * (shape[2] + 2) + steps[None, :],
                       [1, kernel_size * kernel_size])
  rows = active.padded_rows[:, None] + offsets
  return tf.where(active.valid[:, None], rows, 0) if active.has_dummies else (
      rows)


def gather_patches(padded, active, shape, kernel_size):
  """Stride-1 SAME convolution patches at the active positions.

  Args:
    padded: float `[batch * (H+2) * (W+2), C]`, a padded layout.
    active: `ActiveSet`.
    shape: int `[4]`, the shape `[batch, H, W, C]` of the map.
    kernel_size: 1 or 3.

  Returns:
    float `[K, k * k * C]`, each row the patch in `(dy, dx, c)` order, as
    `rows.conv_rows` takes it; zero outside the image.
  """
  if kernel_size not in (1, 3):
    raise ValueError(f"gather_patches takes 1x1 or 3x3 kernels, received "
                     f"kernel_size={kernel_size!r}")
  patches = tf.gather(padded, neighbour_rows(active, shape, kernel_size))
  return tf.reshape(patches,
                    [-1, kernel_size * kernel_size * padded.shape[-1]])


def neighbour_entries(source, active, shape, kernel_size):
  """Entries of `source` at the `k x k` neighbours of each entry of `active`.

  Args:
    source, active: `ActiveSet`s of one map.
    shape: int `[4]`, the shape of the map.
    kernel_size: int, `k`.

  Returns:
    int32 `[K, k * k]`, indices of `source`'s entries in `(dy, dx)` order,
    or the number of its entries where a neighbour is not in `source` or
    lies outside the image: the zero row of `with_zero_row`.
  """
  return tf.gather(source.ordinals, neighbour_rows(active, shape,
                                                   kernel_size))


def with_zero_row(rows):
  """`rows` `[N, C]` and one more row of zeros: `[N + 1, C]`."""
  return tf.concat([rows, tf.zeros_like(rows[:1])], 0)


def gather_neighbours(rows, neighbours):
  """Stride-1 SAME convolution patches read from the rows of a set.

  The same patches as `gather_patches` reads from a padded layout holding
  `rows` at the set's positions and zeros elsewhere, without building that
  layout (a scatter of the whole map).

  Args:
    rows: float `[N, C]`, a value per entry of an `ActiveSet`.
    neighbours: int32 `[K, k * k]`, `neighbour_entries` of that set.

  Returns:
    float `[K, k * k * C]`, each row a patch in `(dy, dx, c)` order.
  """
  patches = tf.gather(with_zero_row(rows), neighbours)
  return tf.reshape(patches, [-1, neighbours.shape[1] * rows.shape[-1]])


def sum_taps(taps, neighbours):
  """A single-output 3x3 convolution from per-position taps.

  For a convolution with one output channel, `taps[p, t]` is the product of
  the input at position `p` with the kernel's tap `t = 3 * dy + dx`; the
  output at `q` is the sum over `t` of the taps of its neighbour `t`:
  9 numbers gathered per output instead of a `[9 * C]` patch.

  Args:
    taps: float `[N, 9]`: the taps of a padded layout (computed at least on
      the 3x3 neighbours of the outputs), or of a set's entries with
      `with_zero_row`.
    neighbours: int32 `[K, 9]`, each output's neighbours among the rows of
      `taps` (`neighbour_rows`, `neighbour_entries`).

  Returns:
    float `[K]`.
  """
  flat = tf.reshape(taps, [-1])
  return tf.reduce_sum(tf.gather(flat, neighbours * 9 + tf.range(9)), axis=1)


def sum_taps_map(taps):
  """`sum_taps` at every position of a map.

  Args:
    taps: float `[batch, H, W, 9]`, the taps of every position.

  Returns:
    float `[batch, H, W, 1]`; taps from outside the image count as zero.
  """
  shape = tf.shape(taps)
  padded = tf.pad(taps, [[0, 0], [1, 1], [1, 1], [0, 0]])
  return tf.add_n([
      padded[:, dy:dy + shape[1], dx:dx + shape[2], tap:tap + 1]
      for tap, (dy, dx) in enumerate(
          (dy, dx) for dy in range(3) for dx in range(3))])
