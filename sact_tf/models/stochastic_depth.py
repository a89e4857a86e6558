"""Stochastic depth (Huang et al. 2016, arXiv 1603.09382) for vanilla ResNets.

Training drops whole residual units at random: unit `l` of the `L` units of
the network (counted in order over all blocks) survives a mini-batch with
probability given by the linear decay rule (eq. (4) of the paper)

    p_l = 1 - l / L * (1 - p_L),

and a dropped unit is the identity (its branch is not computed, so a
training step costs `sum_l p_l * FLOPs_l` in expectation). At test time
every unit runs and its residual is scaled by `p_l` (eq. (5)). The first
unit of each block changes the resolution or the width (a projection or a
stride in its shortcut), so it is never dropped (`p_l = 1`), but it is
counted in `l` and `L`. The gates themselves live in
`AdaptiveBlock._run_vanilla_unit`.
"""

import numpy as np


def check_survival(p_last):
  """`p_L` as a float; ValueError unless it is in (0, 1]."""
  if isinstance(p_last, bool) or not isinstance(
      p_last, (int, float, np.floating)) or not 0 < p_last <= 1:
    raise ValueError(f"stochastic_depth (the survival probability p_L of the "
                     f"last unit) must be in (0, 1], received "
                     f"stochastic_depth={p_last!r}")
  return float(p_last)


def survival_probabilities(units_per_block, p_last):
  """Survival probability of every residual unit, by the linear decay rule.

  Args:
    units_per_block: list of ints, the units of each block.
    p_last: float in (0, 1], `p_L`, the last unit's survival probability.

  Returns:
    list (one per block) of lists of floats: `p_l = 1 - l / L (1 - p_L)`
    for unit `l` (1-based, counted over the whole network), 1 for the first
    unit of each block (never dropped).
  """
  p_last = check_survival(p_last)
  total = sum(units_per_block)
  probabilities, l = [], 0
  for num_units in units_per_block:
    block = []
    for index in range(num_units):
      l += 1
      block.append(1.0 if index == 0 else 1.0 - l / total * (1.0 - p_last))
    probabilities.append(block)
  return probabilities


def expected_flops(unit_flops, probabilities, other_flops):
  """Expected FLOPs of a training step per image under stochastic depth.

  Args:
    unit_flops: list (per block) of lists of ints, each unit's FLOPs per
      image (`lesion.unit_flops`).
    probabilities: the matching survival probabilities
      (`survival_probabilities`).
    other_flops: int, the FLOPs outside the residual units (root and head).

  Returns:
    float: `other_flops + sum_l p_l * FLOPs_l`.
  """
  return other_flops + float(sum(
      p * f for block_p, block_f in zip(probabilities, unit_flops)
      for p, f in zip(block_p, block_f)))
