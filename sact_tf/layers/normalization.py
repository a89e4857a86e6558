"""Batch norm as the original's TF-Slim arg scopes configure it."""

import keras
import tensorflow as tf

from sact_tf.layers import sparse_ops

CIFAR_BATCH_NORM = {"momentum": 0.9, "epsilon": 1e-3}
IMAGENET_BATCH_NORM = {"momentum": 0.997, "epsilon": 1e-5}


def batch_norm(name, config):
  """A `keras.layers.BatchNormalization` with TF-Slim's variable names.

  Args:
    name: str, the layer name (the original's scope name, e.g. `preact`).
    config: dict with `momentum` (TF-Slim's `decay`) and `epsilon`.

  Returns:
    The layer; its variables are `gamma`, `beta`, `moving_mean`,
    `moving_variance`, as in TF-Slim with `scale=True`.
  """
  unknown = set(config) - {"momentum", "epsilon"}
  if unknown:
    raise ValueError(
        f"batch_norm config takes 'momentum' and 'epsilon', received {config!r}")
  return keras.layers.BatchNormalization(
      name=name, momentum=config["momentum"], epsilon=config["epsilon"])


def inference_affine(layer):
  """Batch norm at inference as `x * scale + offset`.

  Args:
    layer: a built `keras.layers.BatchNormalization` (center and scale).

  Returns:
    `(scale, offset)`, float `[channels]`: `gamma / sqrt(var + eps)` and
    `beta - mean * scale`, from the moving statistics.
  """
  scale = layer.gamma * tf.math.rsqrt(layer.moving_variance + layer.epsilon)
  return scale, layer.beta - layer.moving_mean * scale


def normalize_rows(layer, rows, training=None):
  """A batch norm layer on rows `[K, channels]`.

  At inference one fused multiply-add with `inference_affine` (the same
  values as the layer, up to rounding); in training the layer itself, on a
  `[1, 1, K, channels]` view (batch statistics of the rows).
  """
  if training:
    return sparse_ops.on_rows(lambda x: layer(x, training=True), rows)
  scale, offset = inference_affine(layer)
  return rows * scale + offset
