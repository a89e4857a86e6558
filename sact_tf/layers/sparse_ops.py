"""Gather / scatter of the active positions of a feature map (sparse SACT).

A set of active positions of a `[batch, H, W, C]` map is held as
`(b, h, w)` indices, for gathering rows from and scattering rows into the
map itself, and as row indices into its padded layout: the map zero-padded
by one position on each side and flattened to `[batch * (H+2) * (W+2), C]`.
In the padded layout the 3x3 neighbours of a position are fixed offsets
away, and neighbours outside the image read the zero ring, exactly as SAME
zero padding. The set also maps each row of the padded layout to its entry
(`ordinals`), so that values computed on the entries of one set (a conv's
output rows) are read at the neighbours of another's (`neighbour_entries`,
`gather_neighbours`) without scattering them into a layout first.

An active set may be padded to a static `capacity` (for XLA) with dummy
entries. A dummy gathers the row of `(0, 0, 0)` (or, from a padded layout,
row 0, which is on the zero ring) and is scattered as a zero row, so it never
changes a real position; no ordinal points at it, and whatever is computed
for it is discarded.
"""

import collections

import tensorflow as tf

# The least `rows * (channels + 22)` that `scatter_nd_add` scatters with XLA
# (measured, see there).
XLA_SCATTER_MIN_SIZE = 100000

ActiveSet = collections.namedtuple(
    "ActiveSet",
    ["indices", "rows", "padded_rows", "ordinals", "valid", "count",
     "has_dummies"])
ActiveSet.__doc__ = """Active positions of a map (see the module docstring).

Fields:
  indices: int32 `[K, 3]`, the `(b, h, w)` of each entry (dummies: 0).
  rows: int32 `[K]`, rows of the map flattened to `[batch * H * W, C]`
    (dummies: 0).
  padded_rows: int32 `[K]`, rows in the padded layout (dummies: 0).
  ordinals: int32 `[batch * (H+2) * (W+2)]`, per row of the padded layout
    the index of its entry, or `K` where the set has none (the zero ring,
    positions outside the set): what `neighbour_entries` reads.
  valid: bool `[K]`, False for dummy entries.
  count: int32 scalar, the number of real entries.
  has_dummies: Python bool, whether the set was padded to a capacity.
"""


MapState = collections.namedtuple("MapState",
                                  ["map", "mean", "indices", "rows"])
MapState.__doc__ = """A block state passed between sparse units, with its mean.

The state is `map` plus `rows` at `indices`: a unit that ran sparse leaves
its residual unscattered, and the next unit that runs adds it
(`materialize`). The last unit of a block that runs thus never pays for
that scatter (a copy of the whole map), and the block output, which
accumulates the residual rows itself (`act.SparseUpdate`), never needs it.

Fields:
  map: float `[batch, H, W, C]`.
  mean: float `[batch, 1, 1, C]`, the spatial mean of the state (what the
    halting heads pool), kept up to date from the residual rows instead of
    recomputed.
  indices: int32 `[K, 3]`, `(b, h, w)` positions, duplicates allowed.
  rows: float `[K, C]`, to be added to `map` at `indices` (zero rows at
    repeated or dummy positions).
"""


def no_rows(x):
  """Empty `(indices, rows)` for a `[batch, H, W, C]` map `x`."""
  return (tf.zeros([0, 3], tf.int32), tf.zeros([0, x.shape[-1]], x.dtype))


def map_state(state):
  """`state` (a map or a `MapState`) as a `MapState`."""
  if isinstance(state, MapState):
    return state
  return MapState(state, spatial_mean(state), *no_rows(state))


def materialize(state):
  """A `MapState` with its rows scattered into its map (none left over)."""
  if state.rows.shape[0] == 0:
    return state
  return MapState(scatter_nd_add(state.map, state.indices, state.rows),
                  state.mean, *no_rows(state.map))


def spatial_mean(x):
  """The mean of a map over its positions, as a matmul.

  Same values as `tf.reduce_mean(x, [1, 2], keepdims=True)` up to float
  rounding (dense execution keeps `reduce_mean`, bit for bit the
  original's): `[batch, 1, h * w] x [batch, h * w, c]`, which on a 2-core
  CPU took 0.38 ms instead of 1.0 ms for one 56x56x256 map and 1.9 ms
  instead of 7.4 ms for eight (within 0.05 ms of it on the smaller maps of
  ResNet-101).

  Args:
    x: float `[batch, h, w, c]`.

  Returns:
    float `[batch, 1, 1, c]`.
  """
  shape = tf.shape(x)
  area = shape[1] * shape[2]
  weights = tf.fill(tf.stack([shape[0], 1, area]),
                    1.0 / tf.cast(area, x.dtype))
  sums = tf.matmul(weights, tf.reshape(x, [shape[0], area, x.shape[-1]]))
  return tf.reshape(sums, [shape[0], 1, 1, x.shape[-1]])


def add_to_mean(mean, rows, active, shape):
  """The spatial mean after adding `rows` `[K, C]` at the active positions.

  Returns:
    float `[batch, 1, 1, C]`.
  """
  # A one-hot matmul: much faster than a segment sum on CPU.
  images = tf.one_hot(active.indices[:, 0], shape[0], dtype=rows.dtype)
  sums = tf.matmul(zero_dummies(images, active), rows, transpose_a=True)
  area = tf.cast(shape[1] * shape[2], rows.dtype)
  return mean + tf.reshape(sums / area, tf.shape(mean))


def bucket_capacity(count, total, num_buckets):
  """`count` rounded up to a multiple of `ceil(total / num_buckets)`.

  Padding active sets to these capacities bounds the number of distinct
  shapes, hence XLA compilations, per map size to `num_buckets`.

  Args:
    count: int32 scalar, the number of active positions.
    total: int32 scalar, the number of positions of the map.
    num_buckets: int.

  Returns:
    int32 scalar in `[count, count + step)`.
  """
  step = (total + num_buckets - 1) // num_buckets
  return tf.maximum((count + step - 1) // step, 1) * step


def active_set(mask, num_buckets=None):
  """The active positions of `mask`, optionally padded to a bucket.

  Args:
    mask: float `[batch, H, W, 1]` of zeros and ones.
    num_buckets: optional int: pad the set with dummy entries to
      `bucket_capacity(count, batch * H * W, num_buckets)`.

  Returns:
    `ActiveSet`, in row-major order of `(batch, h, w)`.
  """
  shape = tf.shape(mask, out_type=tf.int32)
  indices = tf.cast(tf.where(mask[:, :, :, 0] > 0), tf.int32)
  b, h, w = tf.unstack(indices, axis=1)
  rows = (b * shape[1] + h) * shape[2] + w
  padded_rows = (b * (shape[1] + 2) + h + 1) * (shape[2] + 2) + w + 1
  count = tf.shape(indices)[0]
  valid = tf.ones_like(padded_rows, tf.bool)
  capacity = count
  if num_buckets is not None:
    capacity = bucket_capacity(count, tf.reduce_prod(shape[:3]),
                               num_buckets)
    pad = capacity - count
    indices = tf.pad(indices, [[0, pad], [0, 0]])
    rows = tf.pad(rows, [[0, pad]])
    padded_rows = tf.pad(padded_rows, [[0, pad]])
    valid = tf.pad(valid, [[0, pad]], constant_values=False)
  # Entries are in row-major order: a position's entry index is the number
  # of set positions before it.
  in_set = tf.reshape(mask > 0, [-1])
  ordinals = tf.where(in_set, tf.cumsum(tf.cast(in_set, tf.int32),
                                        exclusive=True), capacity)
  ordinals = tf.pad(tf.reshape(ordinals, shape[:3]), [[0, 0], [1, 1], [1, 1]],
                    constant_values=capacity)
  return ActiveSet(indices, rows, padded_rows, tf.reshape(ordinals, [-1]),
                   valid, count, num_buckets is not None)


def zero_dummies(rows, active):
  """`rows` `[K, C]` with the rows of dummy entries set to zero."""
  if not active.has_dummies:
    return rows
  return rows * tf.cast(active.valid, rows.dtype)[:, None]


def on_rows(fn, rows):
  """Applies a layer built for `[b, h, w, c]` maps to rows `[K, c]`.

  Per-channel layers (batch norm, activations) give the same values on a
  `[1, 1, K, c]` view of the rows.
  """
  return tf.reshape(fn(rows[None, None]), tf.shape(rows))


def gather_rows(x, active):
  """The rows of `x` `[batch, H, W, C]` at the active positions: `[K, C]`."""
  return tf.gather(tf.reshape(x, [-1, x.shape[-1]]), active.rows)


def scatter_add(x, rows, active):
  """`x` `[batch, H, W, C]` plus `rows` `[K, C]` at the active positions.

  A set padded to a capacity is already inside an XLA kernel (the `"xla"`
  sparse kernels): its scatter is the plain op. Otherwise `scatter_nd_add`.
  """
  rows = zero_dummies(rows, active)
  if active.has_dummies:
    return tf.tensor_scatter_nd_add(x, active.indices, rows)
  return scatter_nd_add(x, active.indices, rows)


def scatter_nd_add(x, indices, updates):
  """`tf.tensor_scatter_nd_add` of rows, XLA-compiled where that is faster.

  TensorFlow's CPU kernel adds the rows one after another, about
  `40 ns + 1.8 ns * C` a row on the 2-core CPU of the README, while XLA's
  compiled scatter costs 70-200 us a call (more for maps of many MB, which
  it copies) and little per row. Scatters of `K * (C + 22) >=
  XLA_SCATTER_MIN_SIZE` (`scatter_compiled`) run compiled: on the maps of
  ResNet-101's blocks and of their halting probabilities, at batch 1 and 8
  and 3% to 200% of the positions (`tools/benchmark.py
  --scatter_benchmark`), that picks the faster of the two in 76 of the 80
  cases, and the other four lose 3-137 us (between 72K and 164K). Their
  rows are padded with zero rows at `(0, 0, 0)` to `geometric_capacity(K)`,
  which bounds the compiled variants per map shape to 8 per octave of `K`.
  The result is the plain op's (duplicate indices included), up to the
  order of the float additions at a duplicate index. The threshold is a
  CPU measurement; no GPU has been measured.

  Args:
    x: float `[batch, H, W, C]`.
    indices: int32 `[K, 3]`, `(b, h, w)` positions, duplicates allowed.
    updates: float `[K, C]`.

  Returns:
    float `[batch, H, W, C]`, `x` plus the rows at their positions.
  """
  count = tf.shape(indices)[0]
  channels = updates.shape[-1]

  def compiled():
    pad = geometric_capacity(count) - count
    return xla_scatter_nd_add(x, tf.pad(indices, [[0, pad], [0, 0]]),
                              tf.pad(updates, [[0, pad], [0, 0]]))

  def plain():
    # Even with no rows the op would copy a map that has other consumers.
    return tf.cond(count > 0,
                   lambda: tf.tensor_scatter_nd_add(x, indices, updates),
                   lambda: x)

  return tf.cond(scatter_compiled(count, channels), compiled, plain)


def scatter_compiled(count, channels):
  """Whether `scatter_nd_add` compiles a scatter of `count` rows.

  Args:
    count: int or int32 scalar tensor, the number of rows.
    channels: int, the width of a row.

  Returns:
    bool, or a bool scalar tensor for a tensor `count`.
  """
  return count * (channels + 22) >= XLA_SCATTER_MIN_SIZE


@tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
def xla_scatter_nd_add(x, indices, updates):
  """`tf.tensor_scatter_nd_add`, one XLA compilation per shape."""
  return tf.tensor_scatter_nd_add(x, indices, updates)


def geometric_capacity(count):
  """`count` rounded up to its 4 leading binary digits (at most 12.5% up).

  Args:
    count: int32 scalar >= 0.

  Returns:
    int32 scalar: `count` for `count < 16`, else the least multiple of
    `2^(floor(log2(count)) - 3)` that is at least `count`.
  """
  powers = tf.constant([1 << i for i in range(31)], tf.int32)
  bits = tf.reduce_sum(tf.cast(count >= powers[1:], tf.int32))
  step = tf.gather(powers, tf.maximum(bits - 3, 0))
  return (count + step - 1) // step * step


def scatter_map(rows, active, shape):
  """`rows` `[K, C]` at the active positions of a zero `[b, H, W, C]` map."""
  return scatter_add(tf.zeros(tf.concat([shape[:3], tf.shape(rows)[1:]], 0),
                              rows.dtype), rows, active)


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
    `MaskedConv2D.apply_rows` takes it; zero outside the image.
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
  `rows` at the set's positions and zeros elsewhere, without building it:
  on a 2-core CPU, scattering a layout took longer than the gathers.

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
  output at `q` is the sum over `t` of the taps of its neighbour `t`.
  Gathering 9 numbers per output instead of a `[9 * C]` patch.

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
