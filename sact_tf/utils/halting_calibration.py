"""Random networks that halt like trained ones: for benchmarks and tests.

A randomly initialised ResNet has un-normalised activations (its batch
norms hold the initial statistics) and random halting heads that halt
everywhere or nowhere. These helpers give such a network real batch norm
statistics, random halting convolutions, and one halting bias, shared by
every unit, tuned by bisection so that the network spends a chosen fraction
of the vanilla network's FLOPs. Halting then varies across the image (the
3x3 halting convolutions see different features at each position), unlike
uniform halting.
"""

import keras
import numpy as np
import tensorflow as tf


def set_batch_norm_statistics(model, images):
  """Sets every batch norm's moving statistics to those of `images`.

  One training-mode pass with momentum 0 (SACT models run it dense, so the
  statistics are over all positions); the momenta are restored after.
  """
  layers = [l for l in model._flatten_layers()  # pylint: disable=protected-access
            if isinstance(l, keras.layers.BatchNormalization)]
  momenta = [l.momentum for l in layers]
  for layer in layers:
    layer.momentum = 0.0
  try:
    model(images, training=True)
  finally:
    for layer, momentum in zip(layers, momenta):
      layer.momentum = momentum


def randomize_halting(model, seed=0, scale=None, bias=None, global_term=False):
  """Random halting convolutions, so that halting varies like a trained one's.

  By default (the benchmarks' halting) the `local_conv` kernels are drawn
  from `N(0, 1 / fan_in)` and the `global_conv` kernels zeroed: the
  statistics of `global_bn`, over one pooled vector per image, are
  degenerate for a small calibration batch, and halting is to vary with the
  local features. Tests draw every halting kernel instead
  (`global_term=True`, ACT's heads have only the global one).

  Args:
    model: a built ACT/SACT model.
    seed: int, the draw. Defaults to 0.
    scale: float or None: the kernels' standard deviation; None for
      `1 / sqrt(fan_in)`. Defaults to None.
    bias: float or None: the value of every halting bias; None leaves them.
      Defaults to None.
    global_term: bool, whether the `global_conv` kernels are drawn too
      (otherwise zeroed). Defaults to False.
  """
  rng = np.random.default_rng(seed)
  for v in model.variables:
    if "halting_proba" not in v.path:
      continue
    if v.path.endswith("/weights"):
      if "global_conv" in v.path and not global_term:
        v.assign(np.zeros(v.shape, v.dtype))
      else:
        std = (1 / np.sqrt(int(np.prod(v.shape[:-1]))) if scale is None
               else scale)
        v.assign(rng.normal(0, std, v.shape).astype(v.dtype))
    elif v.path.endswith("/biases") and bias is not None:
      v.assign(np.full(v.shape, bias, v.dtype))


def set_halting_bias(model, bias):
  """Sets the bias of every halting head (`local_conv` or `global_conv`)."""
  for v in model.variables:
    if "halting_proba" in v.path and v.path.endswith("/biases"):
      v.assign(np.full(v.shape, bias, v.dtype))


def tune_halting_bias(model, images, target_flops, low=-15.0, high=15.0,
                      steps=20, edge_steps=10):
  """Sets the shared halting bias so the mean FLOPs reach `target_flops`.

  The FLOPs are a step function of the bias: each step is a position whose
  cumulative halting probability crosses `1 - eps`. Bisection ends within
  `(high - low) / 2**steps` of such a step, where float rounding (sparse
  against dense execution, another machine) could move that position to
  the other side. So the bias is then moved to the middle of the FLOPs
  plateau that bisection found: the next step above is found by doubling
  the distance, then bisected `edge_steps` times.

  Args:
    model: an ACT/SACT model (FLOPs fall as the bias grows).
    images: the batch the FLOPs are measured on.
    target_flops: float, the mean FLOPs per image wanted.
    low, high: float, the bias interval searched.
    steps: int, bisection steps.
    edge_steps: int, bisection steps for the plateau's upper edge.

  Returns:
    `(bias, flops)`: the bias set on the model and the mean FLOPs it gives.
  """
  run = tf.function(lambda x: model(x, training=False)["flops"])

  def flops_at(bias):
    set_halting_bias(model, bias)
    return run(images).numpy()

  top = high
  for _ in range(steps):
    middle = (low + high) / 2
    if float(np.mean(flops_at(middle))) > target_flops:
      low = middle
    else:
      high = middle
  # `high` lies on the plateau just past the step at (low, high]; find the
  # next step above it.
  plateau = flops_at(high)
  inside, width = high, high - low
  while inside + width < top and np.array_equal(flops_at(inside + width),
                                                plateau):
    inside, width = inside + width, 2 * width
  outside = min(inside + width, top)
  for _ in range(edge_steps):
    middle = (inside + outside) / 2
    if np.array_equal(flops_at(middle), plateau):
      inside = middle
    else:
      outside = middle
  bias = (high + inside) / 2
  return bias, float(np.mean(flops_at(bias)))
