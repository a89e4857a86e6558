"""Halting math of Adaptive Computation Time, with no layers in it.

Figurnov et al., "Spatially Adaptive Computation Time for Residual Networks",
CVPR 2017 (arXiv 1612.02297), Sec. 3, after Graves, "Adaptive Computation Time
for Recurrent Neural Networks" (arXiv 1603.08983). A block of `L` residual
units emits halting probabilities `h^1..h^{L-1}` (the last unit always halts,
`h^L = 1`). With the equation numbers the original release quotes:

* halting unit, eq. (7): `N = min{n : sum_{l<=n} h^l >= 1 - eps}`;
* remainder, eq. (8): `R = 1 - sum_{l<N} h^l`;
* halting distribution, eq. (6): `p^l = h^l` for `l < N`, `p^N = R`, else 0;
* block output: `sum_l p^l F^l`; ponder cost: `rho = N + R`.

The functions mirror the original `act.py` one for one, including the way a
unit is passed in as a callable, so that the original tests port directly:

* `adaptive_computation_time`: the math on a `[batch, max_units - 1]` tensor.
* `adaptive_computation_time_wrapper`: runs every unit, then mixes them.
* `adaptive_computation_early_stopping`: the same result, but a unit is not
  run once every image of the batch has halted.
* `spatially_adaptive_computation_time`: the same per spatial position.

The halting math runs in float32, or in float64 for float64 states and
probabilities (`halting_dtype`): never in half precision, where the running
sums could not resolve the `1 - eps` threshold.

A unit callable is `unit(state, unit_idx) -> (new_state, halting_proba,
flops)` (`spatially_adaptive_computation_time` also passes
`residual_mask=`), with `halting_proba` of shape `[batch, 1]` (ACT) or
`[batch, h, w, 1]` (SACT) for every unit but the last, where it may be None,
and `flops` an int64 `[batch]` tensor.
"""

import collections
import functools

import tensorflow as tf

DEFAULT_EPS = 0.01
# Marks a graph function that TensorFlow's optimizers must not inline.
NOINLINE_ATTRIBUTE = "_noinline"

SparseUpdate = collections.namedtuple(
    "SparseUpdate", ["state", "map", "indices", "rows", "dense", "change"])
SparseUpdate.__doc__ = """A SACT unit's new state, with its change where it ran.

A unit of `spatially_adaptive_computation_time` may return its new state in
this form (then every unit of the block must). The block output
`sum_l p^l F^l` is then accumulated as `F^1 + sum_l w^l (F^l - F^{l-1})`,
with `w^l` the halting remainder before unit `l` (see
`spatially_adaptive_computation_time`): a unit's change is non-zero only at
the positions active during it, so it is accumulated at `indices` alone,
unless the unit ran on the whole map anyway (`dense`).

Fields:
  state: the new state, handed to the next unit as it is (a float
    `[batch, h, w, c]` map, or a structure that holds one).
  map: float `[batch, h, w, c]`: for a block's first unit, its output
    (the first term of the block output); for the others any map of that
    shape, unread (`state` may hold their change unscattered).
  indices: int32 `[K, 3]`, `(b, h, w)` of (at least) the positions active
    during the unit; more entries may repeat a position with a zero row.
  rows: float `[K, c]`, the change of the state at `indices`, new minus old
    (the unit's residual; zero for extra entries).
  dense: bool scalar tensor. True: the unit computed every position and
    `indices` and `rows` are empty.
  change: float `[batch, h, w, c]`: where `dense`, the change of the state
    (the unit's masked residual); otherwise, and for a block's first unit,
    any map of that shape, unread (a `tf.cond` needs one in both branches;
    a zero map would cost a fill).
"""


def halting_dtype(dtype):
  """The dtype of the halting math for states of `dtype`."""
  return tf.float64 if tf.as_dtype(dtype) == tf.float64 else tf.float32


def _check_eps(eps):
  if not 0.0 <= eps < 1.0:
    raise ValueError(f"eps must be in [0, 1), received eps={eps!r}")


def adaptive_computation_time(halting_proba, eps=DEFAULT_EPS):
  """Ponder cost, number of units and halting distribution, eqs. (6)-(8).

  Args:
    halting_proba: float32 `[batch, max_units - 1]`, values in [0, 1]: the
      probability of halting at each unit but the last.
    eps: float in [0, 1). A position halts once the cumulative halting
      probability reaches `1 - eps`. Defaults to 0.01.

  Returns:
    ponder_cost: float32 (float64 for float64 input) `[batch]`, `N + R`,
      differentiable in `halting_proba`.
    num_units: int32 `[batch]`, `N` (one-based), no gradient.
    halting_distribution: float32 (float64) `[batch, max_units]`; rows sum
      to one.
  """
  _check_eps(eps)
  halting_proba = tf.convert_to_tensor(halting_proba)
  dtype = halting_dtype(halting_proba.dtype)
  halting_proba = tf.cast(halting_proba, dtype)
  max_units = halting_proba.shape[1] + 1
  zero_col = tf.zeros(tf.stack([tf.shape(halting_proba)[0], 1]), dtype)
  halting_padded = tf.concat([halting_proba, zero_col], 1)
  cumsum = tf.cumsum(halting_proba, axis=1)
  cumsum_padded = tf.concat([zero_col, cumsum], 1)
  # The last unit always halts.
  halt_flag = tf.concat(
      [cumsum >= 1.0 - eps, tf.ones_like(zero_col, tf.bool)], 1)
  # Zero-based halting unit, eq. (7): the number of units before the first
  # one whose flag is set.
  n = tf.reduce_sum(
      tf.cast(tf.cumsum(tf.cast(halt_flag, tf.int32), axis=1) == 0, tf.int32),
      axis=1)
  # Remainder, eq. (8).
  remainder = 1.0 - tf.gather(cumsum_padded, n, axis=1, batch_dims=1)
  num_units = n + 1
  ponder_cost = tf.cast(num_units, dtype) + remainder
  # Halting distribution, eq. (6).
  unit_index = tf.range(max_units)[None, :]
  halting_distribution = tf.where(
      unit_index < n[:, None], halting_padded,
      tf.where(unit_index == n[:, None], remainder[:, None],
               tf.zeros_like(halting_padded)))
  return ponder_cost, num_units, halting_distribution


def _run_units(inputs, unit, max_units):
  states, probas, flops = [], [], []
  state = inputs
  for unit_idx in range(max_units):
    state, proba, unit_flops = unit(state, unit_idx)
    states.append(state)
    probas.append(proba)
    flops.append(unit_flops)
  return states, probas, flops


def adaptive_computation_time_wrapper(inputs, unit, max_units,
                                      eps=DEFAULT_EPS):
  """ACT that runs every unit, then mixes their outputs (original `act`).

  Args:
    inputs: float32 `[batch, ...]`, the input state of the first unit.
    unit: callable, see the module docstring.
    max_units: int, number of units `L`.
    eps: float, see `adaptive_computation_time`. Defaults to 0.01.

  Returns:
    ponder_cost (float32 `[batch]`), num_units (int32 `[batch]`), flops
    (int64 `[batch]`: the FLOPs of the units an image used), halting
    distribution (float32 `[batch, L]`), outputs (float32, the shape of a
    unit's output: `sum_l p^l F^l`).
  """
  states, probas, unit_flops = _run_units(inputs, unit, max_units)
  if max_units > 1:
    probas = tf.concat(probas[:-1], 1)
  else:
    probas = tf.zeros(tf.stack([tf.shape(inputs)[0], 0]),
                      halting_dtype(inputs.dtype))
  ponder_cost, num_units, distribution = adaptive_computation_time(
      probas, eps=eps)
  stacked = tf.stack(states, axis=1)
  outputs = tf.einsum("bl,bl...->b...", tf.cast(distribution, stacked.dtype),
                      stacked)
  flops = tf.add_n([f * tf.cast(num_units > i, tf.int64)
                    for i, f in enumerate(unit_flops)])
  return ponder_cost, num_units, flops, distribution, outputs


class _HaltingState:
  """Running sums of Alg. 1 (ACT) / Alg. 2 (SACT) for one block.

  All tensors have the shape of the halting decisions: `[batch]` for ACT,
  `[batch, h, w]` for SACT.
  """

  def __init__(self, shape, eps, dtype):
    self.eps = eps
    self.dtype = dtype
    self.cumsum = tf.zeros(shape, dtype)
    self.finished = tf.zeros(shape, tf.bool)
    self.remainder = tf.ones(shape, dtype)
    # Starts at one: N + R counts the halting unit once through `remainder`.
    self.ponder_cost = tf.ones(shape, dtype)
    self.num_units = tf.zeros(shape, tf.int32)

  def step(self, halting_proba):
    """Accounts for one unit; returns its slice of the halting distribution.

    Args:
      halting_proba: float, the shape of the decisions; ones for the last
        unit of the block.

    Returns:
      `self.dtype`, `p^l` of this unit for every decision.
    """
    halting_proba = tf.cast(halting_proba, self.dtype)
    zeros = tf.zeros_like(halting_proba)
    self.cumsum += halting_proba
    now_finished = self.cumsum >= 1.0 - self.eps
    halting_proba = tf.where(now_finished, zeros, halting_proba)
    just_finished = tf.logical_and(tf.logical_not(self.finished), now_finished)
    distribution = tf.where(just_finished, self.remainder, halting_proba)
    self.ponder_cost += tf.where(
        now_finished, tf.where(just_finished, self.remainder, zeros),
        tf.ones_like(zeros))
    self.num_units += tf.cast(tf.logical_not(self.finished), tf.int32)
    self.remainder -= halting_proba
    self.finished = now_finished
    return distribution

  def as_tuple(self):
    return (self.cumsum, self.finished, self.remainder, self.ponder_cost,
            self.num_units)

  def set_tuple(self, values):
    (self.cumsum, self.finished, self.remainder, self.ponder_cost,
     self.num_units) = values


def _reshape_proba(proba, shape, is_last):
  if is_last:
    return tf.ones(shape)
  return tf.reshape(proba, shape)


def _weighted(state, distribution):
  """`state * p` with `p` broadcast over the trailing axes of the state."""
  distribution = tf.cast(distribution, state.dtype)
  return state * tf.reshape(
      distribution, tf.concat(
          [tf.shape(distribution), [1] * (state.shape.rank -
                                          distribution.shape.rank)], 0))


def adaptive_computation_early_stopping(inputs, unit, max_units,
                                        eps=DEFAULT_EPS):
  """ACT that stops running units once every image of the batch has halted.

  Gives the results of `adaptive_computation_time_wrapper` up to float
  rounding (it keeps running sums instead of a cumsum and a matmul). A unit
  after the first runs inside `tf.cond`, for the whole batch, only while some
  image still needs it: the saving is real in eager mode and in graphs.

  Args and returns: as `adaptive_computation_time_wrapper`.
  """
  _check_eps(eps)
  batch = tf.shape(inputs)[0]
  shape = tf.reshape(batch, [1])
  halting = _HaltingState(shape, eps, halting_dtype(inputs.dtype))
  flops = tf.zeros(shape, tf.int64)
  distributions = []
  state = outputs = None

  def run(unit_idx, state, outputs, flops, halting_values):
    halting.set_tuple(halting_values)
    evaluated = tf.cast(tf.logical_not(halting.finished), tf.int64)
    new_state, proba, unit_flops = unit(state, unit_idx)
    distribution = halting.step(
        _reshape_proba(proba, shape, unit_idx == max_units - 1))
    weighted = _weighted(new_state, distribution)
    outputs = weighted if outputs is None else outputs + weighted
    return (new_state, outputs, flops + unit_flops * evaluated,
            halting.as_tuple(), distribution)

  for unit_idx in range(max_units):
    args = (unit_idx, state if unit_idx else inputs, outputs, flops,
            halting.as_tuple())
    if unit_idx == 0:
      result = run(*args)
    else:
      result = tf.cond(
          tf.reduce_all(halting.finished),
          lambda a=args: (a[1], a[2], a[3], a[4],
                           tf.zeros(shape, halting.dtype)),
          lambda a=args: run(*a))
    state, outputs, flops, halting_values, distribution = result
    halting.set_tuple(halting_values)
    distributions.append(distribution)
  return (halting.ponder_cost, halting.num_units, flops,
          tf.stack(distributions, axis=1), outputs)


def skip_segments(max_units):
  """The units after the first of a SACT block, in segments that double.

  `[[1], [2, 3], [4, 5, 6, 7], ...]` (zero-based unit indices) up to
  `max_units - 1`: `spatially_adaptive_computation_time` skips a whole
  segment with one `tf.cond` once no position is active.

  Args:
    max_units: int, the number of units of the block.

  Returns:
    list of lists of int.
  """
  segments, start = [], 1
  while start < max_units:
    segments.append(list(range(start, min(2 * start, max_units))))
    start *= 2
  return segments


def _not_inlined(fn):
  """`fn` as one graph call op that TensorFlow does not inline (eagerly: `fn`).

  A lowered `tf.cond` (Switch / Merge) makes TF's graph executor visit every
  node of the branch not taken to propagate its deadness: about 0.4 ms for
  the ~1,000 nodes of an ImageNet sparse unit on a 2-core CPU. A branch
  that is one call costs one node. The called function is optimized as any
  other (grappler, oneDNN fusions) when it runs. TFLite's converter does not
  inline such calls; `sact_tf.export.tflite` drops the mark first.
  """
  if tf.executing_eagerly():
    return fn
  return tf.function(fn, autograph=False,
                     experimental_attributes={NOINLINE_ATTRIBUTE: True})


def spatially_adaptive_computation_time(
    inputs, unit, max_units, eps=DEFAULT_EPS, halted_flops=None,
    scatter_nd_add=tf.tensor_scatter_nd_add):
  """ACT applied to every spatial position of a block (SACT, Alg. 2).

  The unit is called as `unit(state, unit_idx, residual_mask=mask)`, with
  `mask` None for the first unit and otherwise a float32 `[batch, h, w, 1]`
  mask of the positions not yet halted: the unit must leave the other
  positions of its state unchanged (a residual unit multiplies its residual
  by the mask, or computes it only there). It may return its new state as a
  `SparseUpdate`, the first unit and then every other: the output is then
  accumulated from the state's changes, `F^1 + sum_{l>1} w^l (F^l -
  F^{l-1})` with `w^l = 1 - sum_{k<l} p^k` (the halting remainder before
  unit `l`): the same as `sum_l p^l F^l`, since the `p^l` of a position sum
  to one and a unit changes only the positions active during it, where
  `p^k = h^k` for every `k < l`. The changes are scattered at their rows,
  once for all the units of the block (or, where a unit ran dense, added as
  a map), and the first unit's map is never multiplied. The state it passes
  on is opaque here: whatever the next unit takes.

  Args:
    inputs: float32 `[batch, H, W, C]`, the input state of the first unit.
    unit: callable, see above.
    max_units: int, number of units `L`.
    eps: float, see `adaptive_computation_time`. Defaults to 0.01.
    halted_flops: optional callable, `halted_flops(unit_idx, mask)` -> int64
      `[batch]`: the FLOPs a unit counts when `mask` (all zeros) leaves it
      no active position. When given, each unit after the first runs inside
      `tf.cond` only while some position of the batch is still active; once
      none is, the unit is skipped (the halting math of a unit with no
      active position changes nothing). The units are also grouped into
      `skip_segments`, each in one more `tf.cond` whose running branch is a
      function call that is not inlined, so that the skipped rest of a
      block costs TF's graph executor a few nodes, not all of its units'
      (measured in the README's "How much faster"). The unit's state must
      then have the same structure before and after it. Defaults to None:
      every unit runs, as in the original.
    scatter_nd_add: callable with the signature and result of
      `tf.tensor_scatter_nd_add`: how the changes of `SparseUpdate`s are
      scattered into the output (`[batch, h, w, C']`, indices `[K, 3]`, rows
      `[K, C']`). Defaults to `tf.tensor_scatter_nd_add`.

  Returns:
    ponder_cost: float32 `[batch, h, w]`.
    num_units: int32 `[batch, h, w]`.
    flops: int64 `[batch]`.
    halting_distribution: float32 `[batch, h, w, L]`.
    outputs: float32 `[batch, h, w, C']`, `sum_l p^l F^l` per position.
  """
  _check_eps(eps)
  state, proba, flops = unit(inputs, 0, residual_mask=None)
  sparse = isinstance(state, SparseUpdate)
  if sparse:
    first_map, state = state.map, state.state
  else:
    first_map = state
  shape = tf.shape(first_map)[:3]
  dtype = first_map.dtype
  halting = _HaltingState(shape, eps, halting_dtype(dtype))
  distribution = halting.step(_reshape_proba(proba, shape, max_units == 1))
  outputs = first_map if sparse else _weighted(first_map, distribution)
  distributions = [distribution]
  no_indices = tf.zeros([0, 3], tf.int32)
  no_rows = tf.zeros([0, first_map.shape[-1]], dtype)
  # Sparse contributions to the output, scattered once after the loop.
  sparse_indices, sparse_rows = [], []

  def run(unit_idx, mask, state, outputs, flops, values):
    """One unit and its halting step; returns the loop variables."""
    halting.set_tuple(values)
    remainder = halting.remainder  # `w^l`, before the unit's step.
    state, proba, unit_flops = unit(state, unit_idx, residual_mask=mask)
    distribution = halting.step(
        _reshape_proba(proba, shape, unit_idx == max_units - 1))
    if isinstance(state, SparseUpdate) != sparse:
      raise TypeError(
          f"unit {unit_idx} returned a {type(state).__name__}, the first "
          f"unit {'a SparseUpdate' if sparse else 'none'}: a block's units "
          f"return SparseUpdates all or none")
    if not sparse:
      return (state, outputs + _weighted(state, distribution),
              flops + unit_flops, halting.as_tuple(), distribution,
              no_indices, no_rows)
    update = state
    weights = tf.cast(tf.gather_nd(remainder, update.indices),
                      update.rows.dtype)
    outputs = tf.cond(update.dense,
                      lambda: outputs + _weighted(update.change, remainder),
                      lambda: outputs)
    return (update.state, outputs, flops + unit_flops, halting.as_tuple(),
            distribution, update.indices, update.rows * weights[:, None])

  def run_or_skip(unit_idx, carry, skippable):
    """Unit `unit_idx`, in `tf.cond` if `skippable`: `(carry, unit_out)`.

    `carry` is `(state, outputs, flops, halting values)`, `unit_out`
    `(distribution, indices, rows)`.
    """
    halting.set_tuple(carry[3])
    mask = tf.expand_dims(tf.cast(tf.logical_not(halting.finished), dtype),
                          -1)
    args = (unit_idx, mask, *carry)
    if not skippable:
      result = run(*args)
    else:
      def skip():
        skipped_carry, (unit_out,) = skip_segment([unit_idx], carry)
        return (*skipped_carry, *unit_out)
      result = tf.cond(tf.reduce_all(halting.finished), skip,
                       lambda: run(*args))
    return result[:4], result[4:]

  def run_segment(unit_indices, carry):
    """Units `unit_indices`, each after the first in its own `tf.cond`."""
    unit_outs = []
    for unit_idx in unit_indices:
      carry, unit_out = run_or_skip(unit_idx, carry,
                                    unit_idx != unit_indices[0])
      unit_outs.append(unit_out)
    return carry, unit_outs

  def skip_segment(unit_indices, carry):
    """`run_segment` once no position is active: halted FLOPs only."""
    mask = tf.expand_dims(tf.zeros(shape, dtype), -1)
    flops = carry[2] + tf.add_n([halted_flops(unit_idx, mask)
                                 for unit_idx in unit_indices])
    return ((*carry[:2], flops, carry[3]),
            [(tf.zeros_like(distribution), no_indices, no_rows)
             for _ in unit_indices])

  carry = (state, outputs, flops, halting.as_tuple())
  unit_outs = []
  if halted_flops is None:
    for unit_idx in range(1, max_units):
      carry, unit_out = run_or_skip(unit_idx, carry, False)
      unit_outs.append(unit_out)
  else:
    for unit_indices in skip_segments(max_units):
      halting.set_tuple(carry[3])
      carry, segment_outs = tf.cond(
          tf.reduce_all(halting.finished),
          lambda: skip_segment(unit_indices, carry),
          lambda: _not_inlined(functools.partial(run_segment,
                                                 unit_indices))(carry))
      unit_outs.extend(segment_outs)
  _, outputs, flops, values = carry
  halting.set_tuple(values)
  for unit_distribution, indices, rows in unit_outs:
    distributions.append(unit_distribution)
    if indices is not no_indices:  # A sparse unit, or one in tf.cond.
      sparse_indices.append(indices)
      sparse_rows.append(rows)
  if sparse_rows:
    outputs = scatter_nd_add(outputs, tf.concat(sparse_indices, 0),
                             tf.concat(sparse_rows, 0))
  return (halting.ponder_cost, halting.num_units, flops,
          tf.stack(distributions, axis=3), outputs)
