"""Momentum SGD with the original's learning rate schedules."""

import keras


def learning_rate_schedule(learning_rate, decay_factor=0.1, boundaries=None,
                           decay_steps=None):
  """A staircase schedule: `cifar_main.py`'s or `imagenet_train.py`'s.

  Args:
    learning_rate: float, the initial rate.
    decay_factor: float, the factor at each decay. Defaults to 0.1.
    boundaries: list of int steps (CIFAR: 60000, 75000, 90000): the rate is
      `learning_rate * decay_factor**i` after the i-th boundary.
    decay_steps: int (ImageNet: 30 epochs of steps): the rate is multiplied
      by `decay_factor` every `decay_steps`.
    At most one of `boundaries` and `decay_steps`; neither is a constant.

  Returns:
    A `keras.optimizers.schedules.LearningRateSchedule` or a float.
  """
  if not learning_rate > 0:
    raise ValueError(f"learning_rate must be positive, received "
                     f"learning_rate={learning_rate!r}")
  if boundaries and decay_steps:
    raise ValueError(f"give learning rate boundaries or decay steps, not both "
                     f"(received {boundaries!r} and {decay_steps!r})")
  if boundaries:
    if list(boundaries) != sorted(set(boundaries)) or min(boundaries) < 1:
      raise ValueError(f"learning rate boundaries must be increasing positive "
                       f"steps, received {boundaries!r}")
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(b) for b in boundaries],
        [learning_rate * decay_factor**i for i in range(len(boundaries) + 1)])
  if decay_steps:
    if int(decay_steps) < 1:
      raise ValueError(f"decay_steps must be positive, received "
                       f"{decay_steps!r}")
    return keras.optimizers.schedules.ExponentialDecay(
        learning_rate, int(decay_steps), decay_factor, staircase=True)
  return float(learning_rate)


def make_optimizer(schedule, momentum=0.9):
  """TF1's `MomentumOptimizer`: `keras.optimizers.SGD` with momentum."""
  if not 0 <= momentum < 1:
    raise ValueError(f"momentum must be in [0, 1), received "
                     f"momentum={momentum!r}")
  return keras.optimizers.SGD(schedule, momentum=momentum)
