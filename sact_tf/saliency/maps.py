"""Saliency maps: argument checks, resizing as the MIT benchmark does, and
the post-processing and baseline maps of a saliency evaluation.

The benchmark's reference code (cvzoya/saliency, `code_forMetrics`) resizes
a saliency map of another size than the ground truth with MATLAB's
`imresize` (bicubic, with an antialiasing kernel when it shrinks). `resize`
uses Pillow's bicubic resampling of 32-bit float images, the same Keys
kernel (a = -0.5) on pixel centres, likewise widened when shrinking; the
two differ at the borders (MATLAB replicates edge pixels, Pillow
renormalises the kernel weights) and in float32 rounding, so scores of
resized maps are close to the reference's, not bit-identical.
"""

import numpy as np
from PIL import Image
from scipy import ndimage


def check_map(saliency_map, name="saliency_map"):
  """A 2-D finite map as float64.

  Args:
    saliency_map: array-like `[H, W]` of any real dtype.
    name: str, the argument's name in error messages.

  Returns:
    float64 `[H, W]`.

  Raises:
    ValueError: not 2-D, empty, or with NaN / infinite values.
  """
  values = np.asarray(saliency_map)
  if values.ndim != 2 or values.size == 0:
    raise ValueError(f"{name} must be a non-empty 2-D array, received shape "
                     f"{values.shape}")
  if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
    raise ValueError(f"{name} must be numeric, received dtype {values.dtype}")
  values = values.astype(np.float64)
  if not np.all(np.isfinite(values)):
    raise ValueError(f"{name} has {np.sum(~np.isfinite(values))} NaN or "
                     f"infinite values")
  return values


def fixation_mask(truth, name="truth"):
  """The fixated pixels of a binary fixation map (`truth > 0`).

  Args:
    truth: array-like `[H, W]`, non-zero where a person fixated.
    name: str, the argument's name in error messages.

  Returns:
    bool `[H, W]`.

  Raises:
    ValueError: not a 2-D finite map, or no fixation.
  """
  mask = check_map(truth, name) > 0
  if not mask.any():
    raise ValueError(f"{name} has no fixations (no value > 0)")
  return mask


def resize(saliency_map, shape):
  """A map resized to `shape` as the benchmark's `imresize` does.

  Bicubic (Pillow, float32, antialiased when shrinking; see the module
  docstring), then clipped to the input's value range, so that the cubic
  kernel's overshoot cannot make a non-negative map negative. A map of
  the right shape is returned unchanged.

  Args:
    saliency_map: float `[h, w]`.
    shape: `(H, W)`, ints.

  Returns:
    float64 `[H, W]`.
  """
  values = check_map(saliency_map)
  shape = tuple(int(s) for s in shape)
  if len(shape) != 2 or min(shape) < 1:
    raise ValueError(f"shape must be two positive sizes, received "
                     f"shape={shape!r}")
  if values.shape == shape:
    return values
  image = Image.fromarray(values.astype(np.float32), mode="F")
  resized = np.asarray(image.resize((shape[1], shape[0]),
                                    Image.Resampling.BICUBIC), np.float64)
  return np.clip(resized, values.min(), values.max())


def _check_fraction(value, name):
  if isinstance(value, bool) or not isinstance(
      value, (int, float)) or not value >= 0:
    raise ValueError(f"{name} must be a number >= 0, received {name}="
                     f"{value!r}")


def blur(saliency_map, sigma):
  """Gaussian blur whose width is a fraction of the map's longer side.

  Saliency evaluations blur model maps: the human fixation density is
  itself blurred fixations, and a blocky map (a ponder cost map is
  constant on each block's grid cell) ranks the pixels of a cell alike.

  Args:
    saliency_map: float `[H, W]`.
    sigma: float >= 0, the standard deviation in units of `max(H, W)`
      (0.02 of a 512-pixel map: 10.24 pixels); 0 returns the map
      unchanged. Borders are extended with the nearest value.

  Returns:
    float64 `[H, W]`.
  """
  values = check_map(saliency_map)
  _check_fraction(sigma, "sigma")
  if sigma == 0:
    return values
  return ndimage.gaussian_filter(values, sigma * max(values.shape),
                                 mode="nearest")


def center_prior(shape, sigma=0.25):
  """The centre-bias baseline: a Gaussian centred on the image.

  People look at the image centre more than anywhere else, whatever the
  image shows; this map alone is a strong baseline of every benchmark.

  Args:
    shape: `(H, W)`, ints.
    sigma: float > 0, the standard deviation along each axis as a fraction
      of that axis's size (the Gaussian takes the image's aspect ratio).
      Defaults to 0.25.

  Returns:
    float64 `[H, W]`, 1 at the centre.
  """
  height, width = (int(s) for s in shape)
  if min(height, width) < 1:
    raise ValueError(f"shape must be two positive sizes, received "
                     f"shape={shape!r}")
  _check_fraction(sigma, "sigma")
  if sigma == 0:
    raise ValueError("sigma must be > 0, received sigma=0")
  rows = ((np.arange(height) + 0.5) / height - 0.5) / sigma
  cols = ((np.arange(width) + 0.5) / width - 0.5) / sigma
  return np.exp(-0.5 * (rows[:, None] ** 2 + cols[None, :] ** 2))


def standardize(saliency_map, name="saliency_map"):
  """`(m - mean) / std` with MATLAB's `std` (N - 1), as `NSS.m` and `CC.m`.

  Raises:
    ValueError: the map has zero variance (a constant map), where the
      standardisation, and so NSS and CC, are undefined.
  """
  values = check_map(saliency_map, name)
  if values.size < 2 or values.max() == values.min():
    raise ValueError(f"{name} is constant ({values.flat[0]!r}); NSS and CC "
                     f"are undefined for a map of zero variance")
  return (values - values.mean()) / values.std(ddof=1)


def normalize_range(saliency_map):
  """A map min-max normalised to [0, 1]; a constant map becomes zeros."""
  values = check_map(saliency_map)
  low, high = values.min(), values.max()
  return (values - low) / (high - low) if high > low else np.zeros_like(
      values)


def combine_center_prior(saliency_map, weight, sigma=0.25):
  """A map mixed with the centre prior: `(1 - w) m + w c`.

  `m` is the map min-max normalised to [0, 1], `c` the `center_prior` of
  its shape (also in [0, 1]); the ranking the AUCs see moves from the map
  (`w = 0`) to the centre bias (`w = 1`).

  Args:
    saliency_map: float `[H, W]`.
    weight: float in [0, 1].
    sigma: float > 0, see `center_prior`. Defaults to 0.25.

  Returns:
    float64 `[H, W]` in [0, 1]; the map unchanged for `weight = 0`.
  """
  values = check_map(saliency_map)
  if isinstance(weight, bool) or not isinstance(
      weight, (int, float)) or not 0 <= weight <= 1:
    raise ValueError(f"weight must be in [0, 1], received weight={weight!r}")
  if weight == 0:
    return values
  return ((1 - weight) * normalize_range(values)
          + weight * center_prior(values.shape, sigma))
