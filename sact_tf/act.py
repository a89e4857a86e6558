"""Halting math of Adaptive Computation Time: pure functions, no layers.

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
* `HaltingState`, `halting_step`: the running sums and their update after
  one unit, shared by the loops here and by sparse execution
  (`sact_tf.sparse.block`).

How SACT differs from ACT (Sec. 3.2):

1. The halting probabilities, hence `N`, `R`, `p^l` and the ponder cost,
   are per spatial position: `[batch, h, w]` instead of `[batch]`.
2. A unit after the first updates only the positions not yet halted (its
   residual is masked); the halted ones keep their state.
3. The FLOPs of a unit count only the positions it updates (its first conv
   on their 3x3 dilation, which the next 3x3 conv reads).

The halting math runs in float32, or in float64 for float64 states and
probabilities (`halting_dtype`): never in half precision, where the running
sums could not resolve the `1 - eps` threshold.

A unit callable is `unit(state, unit_idx) -> (new_state, halting_proba,
flops)` (`spatially_adaptive_computation_time` also passes
`residual_mask=`), with `halting_proba` of shape `[batch, 1]` (ACT) or
`[batch, h, w, 1]` (SACT) for every unit but the last, where it may be None,
and `flops` an int64 `[batch]` tensor.
"""

from typing import NamedTuple

import tensorflow as tf

DEFAULT_EPS = 0.01


def halting_dtype(dtype):
  """The dtype of the halting math for states of `dtype`."""
  return tf.float64 if tf.as_dtype(dtype) == tf.float64 else tf.float32


def check_eps(eps):
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
  check_eps(eps)
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
  # Per-unit products summed, not an einsum over the stacked states, whose
  # gradient on CPU made ACT train several times slower than SACT.
  outputs = tf.add_n([weighted(state, distribution[:, l])
                      for l, state in enumerate(states)])
  flops = tf.add_n([f * tf.cast(num_units > i, tf.int64)
                    for i, f in enumerate(unit_flops)])
  return ponder_cost, num_units, flops, distribution, outputs


class HaltingState(NamedTuple):
  """Running sums of Alg. 1 (ACT) / Alg. 2 (SACT) for one block.

  Every field has the shape of the halting decisions: `[batch]` for ACT,
  `[batch, h, w]` for SACT.

  Fields:
    cumsum: float, `sum_{k<=l} h^k` so far.
    finished: bool, whether the cumulative sum reached `1 - eps`.
    remainder: float, `1 - sum_{k<l} h^k` of the units before the next one:
      `R` of eq. (8) once finished.
    ponder_cost: float, `N + R` so far (starts at one: `R` counts the
      halting unit once).
    num_units: int32, the units run so far, `N` once finished.
  """

  cumsum: tf.Tensor
  finished: tf.Tensor
  remainder: tf.Tensor
  ponder_cost: tf.Tensor
  num_units: tf.Tensor


def initial_halting_state(shape, dtype):
  """The `HaltingState` before a block's first unit."""
  return HaltingState(cumsum=tf.zeros(shape, dtype),
                      finished=tf.zeros(shape, tf.bool),
                      remainder=tf.ones(shape, dtype),
                      ponder_cost=tf.ones(shape, dtype),
                      num_units=tf.zeros(shape, tf.int32))


def halting_step(state, halting_proba, eps):
  """Accounts for one unit: eqs. (6)-(8) one step at a time.

  Args:
    state: `HaltingState` before the unit.
    halting_proba: float, the shape of the decisions: `h^l` of the unit
      (ones for the last unit of the block).
    eps: float, the threshold is `1 - eps`.

  Returns:
    `(HaltingState after the unit, p^l)`: `p^l` of eq. (6), the unit's
    slice of the halting distribution, `state.cumsum.dtype`.
  """
  halting_proba = tf.cast(halting_proba, state.cumsum.dtype)
  zeros = tf.zeros_like(halting_proba)
  cumsum = state.cumsum + halting_proba
  # Eq. (7): a decision halts once its cumulative sum reaches 1 - eps.
  now_finished = cumsum >= 1.0 - eps
  halting_proba = tf.where(now_finished, zeros, halting_proba)
  just_finished = tf.logical_and(tf.logical_not(state.finished), now_finished)
  # Eq. (6): h^l before the halting unit, the remainder R at it, 0 after.
  distribution = tf.where(just_finished, state.remainder, halting_proba)
  # N + R: one per unit run before halting, R at the halting unit.
  ponder_cost = state.ponder_cost + tf.where(
      now_finished, tf.where(just_finished, state.remainder, zeros),
      tf.ones_like(zeros))
  num_units = state.num_units + tf.cast(tf.logical_not(state.finished),
                                        tf.int32)
  # Eq. (8): R = 1 - sum of the h^l before the halting unit.
  remainder = state.remainder - halting_proba
  return HaltingState(cumsum, now_finished, remainder, ponder_cost,
                      num_units), distribution


def unit_probability(proba, shape, is_last):
  """A unit's `h^l` in the shape of the decisions; ones for the last unit."""
  if is_last:
    return tf.ones(shape)
  return tf.reshape(proba, shape)


def weighted(state, distribution):
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
  check_eps(eps)
  shape = tf.reshape(tf.shape(inputs)[0], [1])
  halting = initial_halting_state(shape, halting_dtype(inputs.dtype))
  flops = tf.zeros(shape, tf.int64)
  distributions = []
  state = outputs = None

  def run(unit_idx, state, outputs, flops, halting):
    evaluated = tf.cast(tf.logical_not(halting.finished), tf.int64)
    new_state, proba, unit_flops = unit(state, unit_idx)
    halting, distribution = halting_step(
        halting, unit_probability(proba, shape, unit_idx == max_units - 1),
        eps)
    contribution = weighted(new_state, distribution)
    outputs = contribution if outputs is None else outputs + contribution
    return (new_state, outputs, flops + unit_flops * evaluated, halting,
            distribution)

  for unit_idx in range(max_units):
    args = (unit_idx, state if unit_idx else inputs, outputs, flops, halting)
    if unit_idx == 0:
      result = run(*args)
    else:
      result = tf.cond(
          tf.reduce_all(halting.finished),
          lambda a=args: (*a[1:], tf.zeros(shape, halting.cumsum.dtype)),
          lambda a=args: run(*a))
    state, outputs, flops, halting, distribution = result
    distributions.append(distribution)
  return (halting.ponder_cost, halting.num_units, flops,
          tf.stack(distributions, axis=1), outputs)


def spatially_adaptive_computation_time(inputs, unit, max_units,
                                        eps=DEFAULT_EPS):
  """ACT applied to every spatial position of a block (SACT, Alg. 2).

  The unit is called as `unit(state, unit_idx, residual_mask=mask)`, with
  `mask` None for the first unit and otherwise a float `[batch, h, w, 1]`
  mask of the positions not yet halted: the unit must leave the other
  positions of its state unchanged (a residual unit multiplies its residual
  by the mask). Every unit runs, on every position, as in the original;
  `sact_tf.sparse.block` runs the same math on the active positions only.

  Args:
    inputs: float `[batch, H, W, C]`, the input state of the first unit.
    unit: callable, see above.
    max_units: int, number of units `L`.
    eps: float, see `adaptive_computation_time`. Defaults to 0.01.

  Returns:
    ponder_cost: float32 `[batch, h, w]`.
    num_units: int32 `[batch, h, w]`.
    flops: int64 `[batch]`.
    halting_distribution: float32 `[batch, h, w, L]`.
    outputs: float32 `[batch, h, w, C']`, `sum_l p^l F^l` per position.
  """
  check_eps(eps)
  state, proba, flops = unit(inputs, 0, residual_mask=None)
  shape = tf.shape(state)[:3]
  halting = initial_halting_state(shape, halting_dtype(state.dtype))
  halting, distribution = halting_step(
      halting, unit_probability(proba, shape, max_units == 1), eps)
  outputs = weighted(state, distribution)
  distributions = [distribution]
  for unit_idx in range(1, max_units):
    mask = tf.expand_dims(
        tf.cast(tf.logical_not(halting.finished), state.dtype), -1)
    state, proba, unit_flops = unit(state, unit_idx, residual_mask=mask)
    halting, distribution = halting_step(
        halting, unit_probability(proba, shape, unit_idx == max_units - 1),
        eps)
    outputs += weighted(state, distribution)
    flops += unit_flops
    distributions.append(distribution)
  return (halting.ponder_cost, halting.num_units, flops,
          tf.stack(distributions, axis=3), outputs)
