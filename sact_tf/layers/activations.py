"""Activations of the original architectures, by name."""

import tensorflow as tf

LEAKINESS = 0.1


def leaky_relu(x):
  """The CIFAR model's `lrelu`: `max(x, 0.1 x)`."""
  return tf.nn.leaky_relu(x, LEAKINESS)


_ACTIVATIONS = {
    None: lambda x: x,
    "relu": tf.nn.relu,
    "leaky_relu": leaky_relu,
    "sigmoid": tf.sigmoid,
}


def get(name):
  """Returns the activation function called `name` (None: identity)."""
  if name not in _ACTIVATIONS:
    raise ValueError(
        f"activation must be one of {sorted(k for k in _ACTIVATIONS if k)} "
        f"or None, received activation={name!r}")
  return _ACTIVATIONS[name]
