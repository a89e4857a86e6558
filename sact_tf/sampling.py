"""Stochastic feature sampling and interpolation: the pure math.

Xie, Zhang, Zhu, Huang, Lin, "Spatially Adaptive Inference with Stochastic
Feature Sampling and Interpolation", ECCV 2020 (reference code:
zdaxie/SpatiallyAdaptiveInference-Detection). A residual unit computes its
convolutions only at sampled positions and reconstructs the others from
their sampled neighbours. How this differs from SACT (`sact_tf.act`):

1. Nothing halts: every unit runs, but each of its first two convolutions
   only at the positions of its own mask (`m1`, `m2`), predicted from the
   unit's input.
2. Training samples the masks with a Gumbel-sigmoid (a relaxed Bernoulli)
   instead of a differentiable halting sum; the feature is mixed with its
   interpolation by the soft sample.
3. Skipped positions are not copied from the previous unit but interpolated
   from sampled ones by a learned RBF kernel (`interpolate`).
4. The cost to minimise is the mean sampling probability (`sparse loss`),
   not the ponder cost.

All functions are shape-polymorphic in batch, height and width and work in
any float dtype (float64 for the exactness tests).
"""

import tensorflow as tf

INITIAL_TEMPERATURE = 1.0
TEMPERATURE_DECAY = 0.99998  # Per training step, as the reference.
NOISY_EVAL_TEMPERATURE = 0.03  # The reference's evaluation temperature.
# Every 4th row and column is always sampled. The 7x7 kernel reaches 3
# positions away, so with a stride of at most 4 every position of a map of
# any size has a grid position inside its kernel window and the
# interpolation is never left without support. It fixes the lowest density
# at about 1/16 whatever the map size (the reference's stride 11 on its
# detection maps of about 250x400 forces 1/121 and leaves gaps).
DEFAULT_GRID_STRIDE = 4
KERNEL_SIZE = 7
# Initial RBF `lambda`: K(d) = exp(-0.5 |d|^2) gives a grid neighbour two
# rows and two columns away (|d|^2 = 8, the farthest a stride-4 grid leaves
# any position) the weight 0.018, far above the normaliser's 1e-5.
INITIAL_LAMBDA = 0.5
NORMALIZER_EPS = 1e-5
MASK_BIAS = 3.0  # sigmoid(3) = 0.95: nearly dense at the start.
UNIT_LOSS_WEIGHTS = (0.25, 0.75)  # Of mean(sigmoid(m1)), mean(sigmoid(m2)).


def check_temperature(name, value):
  """ValueError unless `value` is a positive number."""
  if not (isinstance(value, (int, float)) and value > 0):
    raise ValueError(f"{name} must be > 0, received {name}={value!r}")


def check_grid_stride(grid_stride):
  """ValueError unless `grid_stride` is an integer >= 1."""
  if isinstance(grid_stride, bool) or not isinstance(grid_stride, int) or (
      grid_stride < 1):
    raise ValueError(f"grid_stride must be an integer >= 1, received "
                     f"grid_stride={grid_stride!r}")


def logistic_noise(shape, dtype, seed=None):
  """`log u - log(1 - u)`, `u ~ U(0, 1)`: the difference of two Gumbels.

  Args:
    shape: int `[4]` tensor.
    dtype: float dtype.
    seed: None or an int (a stateful draw, TensorFlow's op seed; new noise
      at every call), or a pair of ints (a stateless draw: the same noise
      for the same pair).
  """
  tiny = 1e-7 if dtype == tf.float32 else 1e-12
  if isinstance(seed, (tuple, list)) or tf.is_tensor(seed):
    u = tf.random.stateless_uniform(shape, seed, tiny, 1.0 - tiny, dtype)
  else:
    u = tf.random.uniform(shape, tiny, 1.0 - tiny, dtype, seed=seed)
  return tf.math.log(u) - tf.math.log1p(-u)


def gumbel_sigmoid(logits, temperature, seed=None):
  """A relaxed Bernoulli sample with `P(sample >= 1/2) = sigmoid(logits)`.

  The reference's two-class Gumbel-softmax on `[log p, log(1 - p)]`, `p =
  sigmoid(logits)`: its first component is `sigmoid((log p - log(1 - p) +
  g1 - g2) / T)` with `g1, g2` Gumbel, i.e. `sigmoid((logits + L) / T)`
  with `L` logistic. `T -> 0` gives the hard Bernoulli sample `logits + L
  >= 0`.

  Args:
    logits: float `[batch, h, w, 1]`.
    temperature: positive float scalar (tensor or number).
    seed: None, an int or a pair of ints (see `logistic_noise`).

  Returns:
    `[batch, h, w, 1]` in `(0, 1)`, the dtype of `logits`.
  """
  noise = logistic_noise(tf.shape(logits), logits.dtype, seed)
  return tf.sigmoid((logits + noise) / tf.cast(temperature, logits.dtype))


def grid(shape, grid_stride, dtype):
  """Ones on every `grid_stride`-th row and column from 0, else zeros.

  Args:
    shape: int `[4]` tensor `[batch, h, w, 1]`.
    grid_stride: int >= 1.
    dtype: float dtype.

  Returns:
    `dtype` `[1, h, w, 1]`.
  """
  rows = tf.equal(tf.range(shape[1]) % grid_stride, 0)
  columns = tf.equal(tf.range(shape[2]) % grid_stride, 0)
  on = tf.logical_and(rows[:, None], columns[None, :])
  return tf.cast(on, dtype)[None, :, :, None]


def grid_prior(mask, grid_stride):
  """`mask` with every grid position (see `grid`) set to one."""
  return tf.maximum(mask, grid(tf.shape(mask), grid_stride, mask.dtype))


def sampled(mask):
  """The positions computed: `mask >= 1/2` as 0/1 of `mask`'s dtype.

  Evaluation masks are 0/1 already (or, with noisy evaluation, zero or at
  least 1/2); a soft training sample counts where it is at least 1/2.
  """
  return tf.cast(mask >= 0.5, mask.dtype)


def rbf_kernel(lam, kernel_size=KERNEL_SIZE, dtype=tf.float32):
  """`K(d) = exp(-lambda |d|^2)` on a `kernel_size` square (section 3.3).

  Args:
    lam: float scalar, `lambda`.
    kernel_size: odd int.
    dtype: float dtype.

  Returns:
    `dtype` `[kernel_size, kernel_size]`, 1 in the centre.
  """
  r = (kernel_size - 1) // 2
  d = tf.range(-r, r + 1, dtype=dtype)
  squared = d[:, None]**2 + d[None, :]**2
  return tf.exp(-tf.cast(lam, dtype) * squared)


def interpolate(features, mask, lam, kernel_size=KERNEL_SIZE):
  """The interpolation module: `M F + (1 - M) (K * (M F)) / (K * M + eps)`.

  `*` is a depthwise "same" convolution with the RBF kernel (zero outside
  the map), `eps = 1e-5`. Where `M = 1` the output is `F` exactly (the
  second term is multiplied by zero); elsewhere it is the kernel-weighted
  mean of the sampled neighbours, which with weights summing to
  `K*M / (K*M + eps)` (one up to `eps`) is linear per channel.

  Args:
    features: float `[batch, h, w, c]`.
    mask: float `[batch, h, w, 1]` in `[0, 1]`.
    lam: float scalar, the kernel's `lambda`.
    kernel_size: odd int. Defaults to 7.

  Returns:
    `[batch, h, w, c]`, the dtype of `features`.
  """
  numerator, denominator = kernel_sums(features * mask, mask, lam,
                                       kernel_size)
  return mask * features + (1.0 - mask) * (numerator / denominator)


def kernel_sums(mask_features, mask, lam, kernel_size=KERNEL_SIZE):
  """`(K * (M F), K * M + eps)`: the interpolation's two kernel sums.

  Args:
    mask_features: float `[batch, h, w, c]`, `M F`.
    mask: float `[batch, h, w, 1]`.
    lam: float scalar, the kernel's `lambda`.
    kernel_size: odd int. Defaults to 7.

  Returns:
    `[batch, h, w, c]` and `[batch, h, w, 1]`, the dtype of `mask_features`:
    depthwise "same" convolutions with the RBF kernel, zero outside the map.
  """
  kernel = rbf_kernel(lam, kernel_size, mask_features.dtype)[:, :, None,
                                                             None]
  channels = tf.shape(mask_features)[-1]
  numerator = tf.nn.depthwise_conv2d(
      mask_features, tf.tile(kernel, [1, 1, channels, 1]), [1, 1, 1, 1],
      "SAME")
  return numerator, tf.nn.conv2d(mask, kernel, 1, "SAME") + NORMALIZER_EPS


def interpolation_flops(mask, channels, kernel_size=KERNEL_SIZE):
  """FLOPs of `interpolate` computed only where it is needed, per image.

  Only the positions not sampled (`1 - sampled(mask)`) are interpolated:
  each costs a `kernel_size`^2 depthwise sum over `channels` and one over
  the mask (`2 * k^2 * (channels + 1)`, multiply and add, as `sact_tf.flops`
  counts convolutions; the division and mixing are not counted, like
  biases and batch norm). Zero on a fully sampled map.

  Args:
    mask: float `[batch, h, w, 1]`.
    channels: int.
    kernel_size: int.

  Returns:
    int64 `[batch]`.
  """
  skipped = tf.reduce_sum(1.0 - sampled(mask), [1, 2, 3])
  per_position = 2 * kernel_size * kernel_size * (channels + 1)
  return tf.cast(skipped, tf.int64) * per_position


def unit_sparse_loss(logits_1, logits_2):
  """`0.25 mean(sigmoid(m1)) + 0.75 mean(sigmoid(m2))` per image.

  Args:
    logits_1, logits_2: float `[batch, h_k, w_k, 1]`, the mask logits.

  Returns:
    `[batch]`, the dtype of the logits.
  """
  w1, w2 = UNIT_LOSS_WEIGHTS
  return (w1 * tf.reduce_mean(tf.sigmoid(logits_1), [1, 2, 3]) +
          w2 * tf.reduce_mean(tf.sigmoid(logits_2), [1, 2, 3]))
