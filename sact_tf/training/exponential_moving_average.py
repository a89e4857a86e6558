"""Exponential moving averages of model weights, as TF1's optimizer wrappers."""

import tensorflow as tf


class ExponentialMovingAverage(tf.Module):
  """Shadow copies of variables that follow them with an exponential decay.

  TF1's `tf.train.ExponentialMovingAverage(decay, num_updates=global_step)`,
  which the original's ImageNet training kept of every model variable
  (weights and batch norm statistics): at step `t` each average moves by

    average -= (1 - d_t) * (average - variable),  d_t = min(decay, (1 + t) / (10 + t))

  so it follows the variables closely early in training. Works in a
  replica context of any `tf.distribute` strategy (create it inside
  `strategy.scope()`): the variables are identical on every replica, so the
  first replica's update is kept. The averages are tracked, so a
  `tf.train.Checkpoint` holding this module saves and restores them.

  Args:
    variables: list of variables (`keras.Variable` or `tf.Variable`) to
      average; the averages start at their current values.
    decay: float in [0, 1). Defaults to 0.9999.

  Attributes:
    averages: list of float `tf.Variable`s, one per variable, same shapes.
  """

  def __init__(self, variables, decay=0.9999, name="ema"):
    super().__init__(name=name)
    if not 0 <= decay < 1:
      raise ValueError(f"decay must be in [0, 1), received decay={decay!r}")
    self.decay = float(decay)
    # A tuple of the caller's variables, which checkpoints must not track
    # again under this module.
    self._variables = _Untracked(variables)
    if not self._variables.items:
      raise ValueError("ExponentialMovingAverage received no variables")
    self.averages = [
        tf.Variable(tf.convert_to_tensor(v), trainable=False,
                    name=_name(v) + "/ExponentialMovingAverage",
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        for v in self._variables.items]

  def update(self, step):
    """Moves every average towards its variable (graph or eager).

    Args:
      step: int or scalar integer tensor, the number of updates so far `t`.
    """
    step = tf.cast(step, tf.float32)
    decay = tf.minimum(self.decay, (1.0 + step) / (10.0 + step))
    for average, variable in zip(self.averages, self._variables.items):
      average.assign_sub((1.0 - decay) * (
          average - tf.cast(tf.convert_to_tensor(variable), average.dtype)))

  def reset(self):
    """Sets every average to its variable's current value."""
    for average, variable in zip(self.averages, self._variables.items):
      average.assign(tf.convert_to_tensor(variable))

  def copy_to_variables(self):
    """Overwrites the variables with their averages (for evaluation)."""
    for average, variable in zip(self.averages, self._variables.items):
      variable.assign(tf.convert_to_tensor(average))


def _name(variable):
  return getattr(variable, "path", None) or variable.name.split(":")[0]


class _Untracked:
  """Holds objects out of sight of `tf.Module`'s dependency tracking."""

  def __init__(self, items):
    self.items = tuple(items)
