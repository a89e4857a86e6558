"""Random networks that halt like trained ones: for benchmarks and tests.

A randomly initialised ResNet has un-normalised activations (its batch
norms hold the initial statistics) and random halting heads that halt
everywhere or nowhere. These helpers give such a network real batch norm
statistics, random halting convolutions, and one halting bias, shared by
every unit, tuned by bisection so that the network spends a chosen fraction
of the vanilla network's FLOPs. Halting then varies across the image (the
3x3 halting convolutions see different features at each position), unlike
uniform halting. The same for the sampling family (Xie et al.): random 3x3
mask convolutions and one mask bias shared by every mask, tuned likewise.
"""

import keras
import numpy as np
import tensorflow as tf


def set_batch_norm_statistics(model, images, path_contains=None):
  """Sets the batch norms' moving statistics to those of `images`.

  One training-mode pass with momentum 0 (SACT models run it dense, so the
  statistics are over all positions); the momenta are restored after.

  Args:
    model: a built model.
    images: float32 `[batch, H, W, 3]`.
    path_contains: str or None: only the batch norms whose variable paths
      contain it (e.g. `"halting"`) are set, the others keep their
      statistics (momentum 1 during the pass). None: all. Defaults to None.
  """
  layers = [l for l in model._flatten_layers()  # pylint: disable=protected-access
            if isinstance(l, keras.layers.BatchNormalization)]
  momenta = [l.momentum for l in layers]
  for layer in layers:
    selected = path_contains is None or path_contains in (
        layer.moving_mean.path)
    layer.momentum = 0.0 if selected else 1.0
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
  return _tune_bias(model, set_halting_bias, images, target_flops, low, high,
                    steps, edge_steps)


def _tune_bias(model, set_bias, images, target_flops, low, high, steps,
               edge_steps):
  """`tune_halting_bias` for any `set_bias(model, value)` whose FLOPs fall
  as the value grows."""
  run = tf.function(lambda x: model(x, training=False)["flops"])

  def flops_at(bias):
    set_bias(model, bias)
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


def _mask_variables(model):
  """The kernels and biases of the sampling family's mask convolutions."""
  return [v for v in model.variables
          if "/mask_" in v.path and "/conv/" in v.path]


def randomize_sampling(model, seed=0, bias=None):
  """Random mask convolutions, so that sampling varies like a trained one's.

  Every `SamplingMask` kernel (3x3, to one channel) is drawn from
  `N(0, 1 / fan_in)`: the mask logits then vary across positions and
  images with the unit's normalised input.

  Args:
    model: a built `"sampling"` model.
    seed: int, the draw. Defaults to 0.
    bias: float or None: the value of every mask bias; None leaves them.
      Defaults to None.
  """
  rng = np.random.default_rng(seed)
  for v in _mask_variables(model):
    if v.path.endswith("/weights"):
      std = 1 / np.sqrt(int(np.prod(v.shape[:-1])))
      v.assign(rng.normal(0, std, v.shape).astype(v.dtype))
    elif bias is not None:
      v.assign(np.full(v.shape, bias, v.dtype))


def set_sampling_bias(model, bias):
  """Sets the bias of every mask convolution of a `"sampling"` model."""
  for v in _mask_variables(model):
    if not v.path.endswith("/weights"):
      v.assign(np.full(v.shape, bias, v.dtype))


def tune_sampling_bias(model, images, target_flops, low=-15.0, high=15.0,
                       steps=20, edge_steps=10):
  """Sets the shared mask bias so the mean FLOPs reach `target_flops`.

  As `tune_halting_bias` (bisection, then the middle of the FLOPs
  plateau), for a `"sampling"` model, whose FLOPs grow with the bias: a
  position is sampled where its logit `>= 0`. Targets below the FLOPs of
  the grid prior alone (every mask logit negative) or above those of
  sampling everything end at the interval's edge.

  Returns:
    `(bias, flops)`: the bias set on the model and the mean FLOPs it gives.
  """
  bias, flops = _tune_bias(
      model, lambda m, b: set_sampling_bias(m, -b), images, target_flops,
      -high, -low, steps, edge_steps)
  return -bias, flops


def blob_halting(model, images, seed=0, ridge=1e-2):
  """Halting that follows one smooth blob per image: its centre runs longest.

  A second halting pattern besides `randomize_halting`'s, with one large
  connected region of long pondering per image, as a trained model's on an
  object. Each image gets a random centre (uniform in the middle half of
  the image); the target halting logit of a position grows linearly with
  its distance to the centre, from -2 at the centre to 2 at one image side's
  distance (the same pattern at every block's resolution). Every SACT
  head's `local_conv` gets a centre tap fitted by ridge regression of that
  target on the normalised unit output at every position of `images`
  (its other taps and the `global_conv` kernel zero), so that it halts far
  from the centre first; the shared bias is left to `tune_halting_bias`.

  Args:
    model: a built SACT model with its batch norm statistics, unfolded.
    images: float32 `[batch, H, W, 3]`, the images the pattern is fitted to.
    seed: int, the draw of the centres. Defaults to 0.
    ridge: float, the ridge penalty per position. Defaults to 1e-2.

  Returns:
    float `[batch, 2]`, the centres as fractions of the height and width.
  """
  rng = np.random.default_rng(seed)
  centres = rng.uniform(0.25, 0.75, size=(images.shape[0], 2))
  # Units run one after the other: with nothing halted, SACT is vanilla.
  # pylint: disable-next=protected-access
  features, _ = model._root(tf.constant(images), False)
  for block in model.blocks:
    for unit in block.units:
      features, _ = unit.residual_unit(features, training=False)
      head = unit.halting_head
      if head is None:
        continue
      _, h, w, c = features.shape
      x = head.activation_fn(head.local_bn(features, training=False))
      x = np.concatenate([np.reshape(x.numpy(), [-1, c]),
                          np.ones([x.shape[0] * h * w, 1])], 1)
      y, xx = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w,
                          indexing="ij")
      distance = np.sqrt((y[None] - centres[:, :1, None]) ** 2 +
                         (xx[None] - centres[:, 1:, None]) ** 2)
      target = np.reshape(4 * distance - 2, [-1])
      weights = np.linalg.solve(x.T @ x + ridge * len(x) * np.eye(c + 1),
                                x.T @ target)[:c]
      kernel = np.zeros(head.local_conv.kernel.shape, np.float32)
      kernel[1, 1, :, 0] = weights
      head.local_conv.kernel.assign(kernel)
      head.global_conv.kernel.assign(
          np.zeros(head.global_conv.kernel.shape, np.float32))
  return centres
