"""Test helper: halting weights that make halting vary."""

import numpy as np


def randomize_halting(model, seed=0, bias=4.0, scale=1.0):
  """Random halting conv weights and a common bias, on a built model.

  With the defaults, halting varies across the images and positions of tiny
  test models (some positions halt after one unit, others run on).
  """
  if not model.built:
    model.build((None, None, None, 3))
  rng = np.random.default_rng(seed)
  for v in model.variables:
    if "halting_proba" in v.path and v.path.endswith("biases"):
      v.assign(np.full(v.shape, bias, np.float32))
    elif "halting_proba" in v.path and v.path.endswith("weights"):
      v.assign(rng.normal(0, scale, v.shape).astype(np.float32))
