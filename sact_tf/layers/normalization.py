"""Batch norm as the original's TF-Slim arg scopes configure it."""

import keras

from sact_tf.layers.channel_affine import ChannelAffine

CIFAR_BATCH_NORM = {"momentum": 0.9, "epsilon": 1e-3}
IMAGENET_BATCH_NORM = {"momentum": 0.997, "epsilon": 1e-5}


def batch_norm(name, config, folded=False):
  """A `keras.layers.BatchNormalization` with TF-Slim's variable names.

  Args:
    name: str, the layer name (the original's scope name, e.g. `preact`).
    config: dict with `momentum` (TF-Slim's `decay`) and `epsilon`.
    folded: bool. Return the batch norm folded for inference instead, a
      `ChannelAffine` (`sact_tf.inference.optimize` sets its weights).
      Defaults to False.

  Returns:
    The layer; its variables are `gamma`, `beta`, `moving_mean`,
    `moving_variance`, as in TF-Slim with `scale=True` (folded: `scale`,
    `offset`).
  """
  unknown = set(config) - {"momentum", "epsilon"}
  if unknown:
    raise ValueError(
        f"batch_norm config takes 'momentum' and 'epsilon', received {config!r}")
  if folded:
    return ChannelAffine(name=name)
  return keras.layers.BatchNormalization(
      name=name, momentum=config["momentum"], epsilon=config["epsilon"])
