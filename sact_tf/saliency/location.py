"""Location-based saliency metrics: scored at the fixated pixels.

The definitions of the MIT saliency benchmark's reference code
(cvzoya/saliency, `code_forMetrics`: `AUC_Judd.m`, `AUC_Borji.m`,
`AUC_shuffled.m`, `NSS.m`; Bylinskii et al., "What do different evaluation
metrics tell us about saliency models?", TPAMI 2019). `truth` is the binary
fixation map: non-zero at the pixels people fixated. A saliency map of
another size is resized to the truth's (`maps.resize`).

Undefined cases raise a one-line `ValueError` where the reference returns
NaN: a truth without fixations, a map of zero variance for NSS. A constant
map scores 0.5 in every AUC (it ranks no pixel above another).
"""

import numpy as np

from sact_tf.saliency import maps
from sact_tf.utils import checks


def _map_and_fixations(saliency_map, truth):
  fixated = maps.fixation_mask(truth)
  values = maps.resize(saliency_map, fixated.shape)
  return values.ravel(), fixated.ravel()


def _count_at_least(sorted_values, thresholds):
  """How many of `sorted_values` (ascending) are >= each threshold."""
  return len(sorted_values) - np.searchsorted(sorted_values, thresholds,
                                              side="left")


def _trapezoid_auc(fp, tp):
  """Area under the curve (0, 0), (fp, tp)..., (1, 1), along axis 0."""
  shape = (1,) + np.shape(fp)[1:]
  fp = np.concatenate([np.zeros(shape), fp, np.ones(shape)])
  tp = np.concatenate([np.zeros(shape), tp, np.ones(shape)])
  return np.trapezoid(tp, fp, axis=0)


def auc_judd(saliency_map, truth):
  """AUC-Judd: the ROC area with the map's values at fixations as thresholds.

  For every distinct value `t` of the map at a fixated pixel (descending),
  the true positive rate is the fraction of fixated pixels with value
  `>= t`, the false positive rate the fraction of the other pixels with
  value `>= t`; the area under these points between (0, 0) and (1, 1) is
  taken with the trapezoid rule, as `AUC_Judd.m`. Pixels of equal value
  enter at one threshold (a straight segment of the curve); the reference
  instead adds noise below 1e-7 to break such ties at random, which is the
  same up to that randomness.

  Range [0, 1]; chance (a random or a constant map) 0.5, a map that ranks
  every fixated pixel above every other pixel 1. Invariant to any
  increasing transformation of the map (scale, offset).

  Args:
    saliency_map: float `[h, w]`.
    truth: `[H, W]`, non-zero at fixated pixels.

  Returns:
    float.

  Raises:
    ValueError: bad maps, no fixations, or every pixel fixated.
  """
  values, fixated = _map_and_fixations(saliency_map, truth)
  num_fixations = int(fixated.sum())
  num_others = values.size - num_fixations
  if num_others == 0:
    raise ValueError("truth fixates every pixel; AUC-Judd needs pixels "
                     "without fixations")
  at_fixations = np.sort(values[fixated])
  thresholds = np.unique(at_fixations)[::-1]
  tp = _count_at_least(at_fixations, thresholds)
  above = _count_at_least(np.sort(values), thresholds)
  return float(_trapezoid_auc((above - tp) / num_others,
                              tp / num_fixations))


def _check_splits(num_splits, step_size):
  checks.check_int("num_splits", num_splits,
                   integer_types=(int, np.integer))
  if isinstance(step_size, bool) or not isinstance(
      step_size, (int, float)) or not 0 < step_size <= 1:
    raise ValueError(f"step_size must be in (0, 1], received "
                     f"step_size={step_size!r}")


def _split_aucs(at_fixations, negatives, step_size):
  """Mean ROC area of fixations against each column of `negatives`.

  Thresholds `0, step, 2 step, ...` up to the map's maximum, 1, as the
  reference's `0:stepSize:max(...)`; thresholds above a split's values add
  only the point (0, 0), so one set serves every split.

  Args:
    at_fixations: float `[n]`, the normalised map at the fixations.
    negatives: float `[m, num_splits]`, the normalised map at the negatives.
    step_size: float.
  """
  top = max(at_fixations.max(), negatives.max())
  thresholds = step_size * np.arange(
      int(np.floor(top / step_size * (1 + 1e-12))) + 1)[::-1]
  tp = (at_fixations[None, :] >= thresholds[:, None]).mean(axis=1)
  fp = (negatives[None, :, :] >= thresholds[:, None, None]).mean(axis=1)
  tp = np.broadcast_to(tp[:, None], fp.shape)
  return float(_trapezoid_auc(fp, tp).mean())


def auc_borji(saliency_map, truth, num_splits=100, step_size=0.1, seed=0):
  """AUC-Borji: fixations against pixels drawn uniformly from the image.

  As `AUC_Borji.m`: the map is min-max normalised to [0, 1] (a constant
  map becomes zeros); in each of `num_splits` splits as many pixels as
  there are fixations are drawn uniformly, with replacement, from all
  pixels, as `rng.integers(0, H * W, size=(num_fixations, num_splits))`
  with `rng = numpy.random.default_rng(seed)` (column s: split s, pixels
  in row-major order); the ROC of the fixations against them is swept at
  thresholds `0:step_size:max` and its trapezoid area is averaged over the
  splits.

  Range [0, 1]; chance 0.5 (a constant map exactly). A centre-bias map
  scores above 0.5, since the negatives are spread over the whole image.
  Invariant to positive scale and offset of the map.

  Args:
    saliency_map: float `[h, w]`.
    truth: `[H, W]`, non-zero at fixated pixels (at least 2, as the
      reference).
    num_splits: int. Defaults to 100, the reference's `Nsplits`.
    step_size: float in (0, 1]. Defaults to 0.1, the reference's.
    seed: int, seed of the draws. Defaults to 0.

  Returns:
    float.
  """
  _check_splits(num_splits, step_size)
  values, fixated = _map_and_fixations(saliency_map, truth)
  num_fixations = int(fixated.sum())
  if num_fixations < 2:
    raise ValueError(f"AUC-Borji needs at least 2 fixations, truth has "
                     f"{num_fixations}")
  values = maps.normalize_range(values[None])[0]
  rng = np.random.default_rng(seed)
  draws = rng.integers(0, values.size, size=(num_fixations, num_splits))
  return _split_aucs(values[fixated], values[draws], step_size)


def shuffled_auc(saliency_map, truth, other_fixations, num_splits=100,
                 step_size=0.1, seed=0):
  """Shuffled AUC: fixations against fixations of other images.

  As `AUC_shuffled.m`: the negatives are pixels fixated on other images
  (`other_fixations`, the union of the fixations of other images; Borji et
  al. take 10), so a map that only predicts the centre bias shared by all
  images scores about 0.5. The map is min-max normalised to [0, 1] (a
  constant map becomes zeros); each of `num_splits` splits takes the
  first `min(num_fixations, num_other)` of a random permutation of the
  other fixated pixels (`rng.permutation(flat indices)`, indices in
  row-major order, `rng = numpy.random.default_rng(seed)`, one permutation
  per split in turn); the ROC is swept at thresholds `0:step_size:max` and
  its trapezoid area averaged over the splits.

  Range [0, 1]; chance, and a pure centre-bias map, about 0.5 (a constant
  map exactly). Invariant to positive scale and offset of the map.

  Args:
    saliency_map: float `[h, w]`.
    truth: `[H, W]`, non-zero at fixated pixels.
    other_fixations: `[H, W]`, non-zero at the pixels fixated on other
      images (mapped to this image's size).
    num_splits: int. Defaults to 100, the reference's `Nsplits`.
    step_size: float in (0, 1]. Defaults to 0.1.
    seed: int, seed of the permutations. Defaults to 0.

  Returns:
    float.
  """
  _check_splits(num_splits, step_size)
  values, fixated = _map_and_fixations(saliency_map, truth)
  others = maps.fixation_mask(other_fixations, "other_fixations").ravel()
  if others.size != fixated.size:
    raise ValueError(f"other_fixations must have the shape of truth "
                     f"{np.shape(truth)}, received "
                     f"{np.shape(other_fixations)}")
  values = maps.normalize_range(values[None])[0]
  indices = np.flatnonzero(others)
  count = min(int(fixated.sum()), indices.size)
  rng = np.random.default_rng(seed)
  draws = np.stack([rng.permutation(indices)[:count]
                    for _ in range(num_splits)], axis=1)
  return _split_aucs(values[fixated], values[draws], step_size)


def nss(saliency_map, truth):
  """Normalized scanpath saliency: the standardised map's mean at fixations.

  As `NSS.m`: the map, resized to the truth's size, minus its mean,
  divided by its standard deviation (N - 1), averaged over the fixated
  pixels.

  Range: real numbers, higher is better; chance 0. Invariant to positive
  scale and offset of the map.

  Args:
    saliency_map: float `[h, w]`, not constant.
    truth: `[H, W]`, non-zero at fixated pixels.

  Returns:
    float.
  """
  values, fixated = _map_and_fixations(saliency_map, truth)
  return float(maps.standardize(values[None])[0][fixated].mean())
