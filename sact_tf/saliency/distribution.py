"""Distribution-based saliency metrics: a map against the fixation density.

The definitions of the MIT saliency benchmark's reference code
(cvzoya/saliency, `code_forMetrics`: `CC.m`, `similarity.m`, `KLdiv.m`,
`EMD.m`; Bylinskii et al., TPAMI 2019). `truth` is the fixation density
map (fixations blurred, as CAT2000's `FIXATIONMAPS`); a saliency map of
another size is resized to the truth's (`maps.resize`).

Undefined cases raise a one-line `ValueError` where the reference returns
NaN or garbage: a truth without fixations (all zeros), a constant map for
CC (zero variance) and similarity (its min-max normalisation divides by
zero), negative values for KL and EMD (they compare distributions).
"""

import numpy as np
import pyemd

from sact_tf.saliency import maps
from sact_tf.utils import checks

# MATLAB's `eps`, the regulariser of `KLdiv.m`.
KL_EPSILON = np.finfo(np.float64).eps
EMD_DOWNSIZE = 32


def _density(truth):
  density = maps.check_map(truth, "truth")
  if density.min() < 0:
    raise ValueError(f"truth is a fixation density and must be >= 0, "
                     f"received a minimum of {density.min()!r}")
  if not density.any():
    raise ValueError("truth has no fixations (all zeros)")
  return density


def _map_and_density(saliency_map, truth):
  density = _density(truth)
  return maps.resize(saliency_map, density.shape), density


def _non_negative(values, metric):
  if values.min() < 0:
    raise ValueError(f"{metric} compares distributions: saliency_map must be "
                     f">= 0, received a minimum of {values.min()!r}")


def cc(saliency_map, truth):
  """Pearson's linear correlation coefficient of the map and the density.

  As `CC.m` (`corr2` of the two standardised maps).

  Range [-1, 1]; 1 for a map equal to the density up to positive scale and
  offset, chance 0. Symmetric, invariant to positive scale and offset of
  either map.

  Args:
    saliency_map: float `[h, w]`, not constant.
    truth: float `[H, W]` >= 0, the fixation density, not constant.

  Returns:
    float.
  """
  values, density = _map_and_density(saliency_map, truth)
  a = maps.standardize(values)
  b = maps.standardize(density, "truth")
  return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))


def _as_distribution(values):
  """Min-max normalised to [0, 1], then to sum 1, as `similarity.m`."""
  return maps.normalize_range(values) / np.sum(maps.normalize_range(values))


def similarity(saliency_map, truth):
  """Similarity (histogram intersection): `sum(min(P, Q))`.

  As `similarity.m`: each map is min-max normalised to [0, 1] and then
  divided by its sum; an all-zero saliency map stays zero (score 0).

  Range [0, 1]; 1 for a map equal to the density up to positive scale and
  offset, 0 for maps with no common support. Chance depends on the
  density's spread. Symmetric.

  Args:
    saliency_map: float `[h, w]`, not a non-zero constant.
    truth: float `[H, W]` >= 0, the fixation density, not constant.

  Returns:
    float.
  """
  values, density = _map_and_density(saliency_map, truth)
  if density.max() == density.min():
    raise ValueError("truth is constant; similarity is undefined (its "
                     "min-max normalisation divides by zero)")
  if not values.any():
    return 0.0
  if values.max() == values.min():
    raise ValueError(f"saliency_map is constant ({values.flat[0]!r}); "
                     f"similarity is undefined (its min-max normalisation "
                     f"divides by zero)")
  return float(np.minimum(_as_distribution(values),
                          _as_distribution(density)).sum())


def kl_divergence(saliency_map, truth):
  """KL divergence of the density from the map: `sum Q log(eps + Q/(P+eps))`.

  As `KLdiv.m`: both maps divided by their sums (an all-zero saliency map
  stays zero), `Q` the density, `P` the map, `eps` MATLAB's `eps`
  (2.2e-16); the information lost when the map stands for the density.

  Range [0, inf), lower is better; 0 (to about 1e-12) for a map equal to the
  density up to positive scale. A uniform map scores the log of the pixel
  count minus the density's entropy. Invariant to positive scale of either
  map, not to offsets; not symmetric.

  Args:
    saliency_map: float `[h, w]` >= 0.
    truth: float `[H, W]` >= 0, the fixation density.

  Returns:
    float.
  """
  values, density = _map_and_density(saliency_map, truth)
  _non_negative(values, "KL divergence")
  if values.any():
    values = values / values.sum()
  density = density / density.sum()
  return float(np.sum(density * np.log(
      KL_EPSILON + density / (values + KL_EPSILON))))


def emd(saliency_map, truth, downsize=EMD_DOWNSIZE):
  """Earth mover's distance between the map and the density.

  As `EMD.m`: the density is shrunk by `downsize` (`ceil(H / downsize)` x
  `ceil(W / downsize)`, `maps.resize`), the map resized to that size, both
  divided by their sums; the ground distance is the Euclidean distance
  between pixel positions; the distance is Pele and Werman's `emd_hat`
  with no extra-mass penalty, which for two maps of equal mass is the
  plain optimal transport cost. `pyemd` computes it with POT's exact
  network simplex (backend `"pot"`): the same optimum as its `"cpp"`
  backend, the FastEMD code the reference calls, which does not finish a
  CAT2000 map (1920 x 1080 shrunk by 32: 2,040 pixels) in minutes,
  where POT takes seconds.

  Range [0, inf) in pixels of the shrunk map, lower is better; 0 for a
  map equal to the density up to positive scale. Invariant to positive
  scale of either map; symmetric.

  Args:
    saliency_map: float `[h, w]` >= 0, not all zero.
    truth: float `[H, W]` >= 0, the fixation density.
    downsize: int >= 1, the shrinking factor. Defaults to 32.

  Returns:
    float.
  """
  checks.check_int("downsize", downsize, integer_types=(int, np.integer))
  density = _density(truth)
  shape = tuple(-(-s // downsize) for s in density.shape)
  density = maps.resize(density, shape)
  values = maps.resize(saliency_map, shape)
  _non_negative(values, "EMD")
  if not values.any():
    raise ValueError("saliency_map is all zeros; EMD needs mass to move")
  rows, cols = np.indices(shape)
  positions = np.stack([rows.ravel(), cols.ravel()], 1).astype(np.float64)
  distances = np.sqrt(np.sum(
      (positions[:, None, :] - positions[None, :, :]) ** 2, axis=-1))
  return float(pyemd.emd(density.ravel() / density.sum(),
                         values.ravel() / values.sum(), distances,
                         extra_mass_penalty=0.0, backend="pot"))
