"""The MIT saliency benchmark metrics: hand-known values, and agreement with
computations written here from the published definitions (Bylinskii et al.,
TPAMI 2019; cvzoya/saliency `code_forMetrics`)."""

import numpy as np
import pyemd
import pytest
from scipy import optimize
from scipy import stats

from sact_tf import saliency
from sact_tf.saliency import maps

SHAPE = (12, 15)
AUCS = ("auc_judd", "auc_borji", "shuffled_auc")


def _case(seed=0):
  """A fixed small set: a map, a density, fixations and others' fixations."""
  rng = np.random.default_rng(seed)
  saliency_map = rng.random(SHAPE) + 0.05
  density = rng.random(SHAPE) + 0.05
  fixations = rng.random(SHAPE) > 0.8
  others = rng.random(SHAPE) > 0.7
  return saliency_map, density, fixations, others


def _score(name, saliency_map, density, fixations, others):
  if name == "shuffled_auc":
    return saliency.shuffled_auc(saliency_map, fixations, others)
  if name == "emd":
    return saliency.emd(saliency_map, density, downsize=3)
  truth = fixations if name in AUCS + ("nss",) else density
  return getattr(saliency, name)(saliency_map, truth)


# Written from the definitions, loop by loop, independently of the package.


def _trapz(xs, ys):
  return sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2
             for i in range(len(xs) - 1))


def _reference_judd(s, f):
  """`AUC_Judd.m` without jitter (the maps here have no ties)."""
  s, f = s.ravel(), f.ravel()
  at_fix = sorted(s[f], reverse=True)
  n_fix, n_pix = len(at_fix), len(s)
  tp, fp = [0.0], [0.0]
  for i, thresh in enumerate(at_fix, start=1):
    above = int(np.sum(s >= thresh))
    tp.append(i / n_fix)
    fp.append((above - i) / (n_pix - n_fix))
  return _trapz(fp + [1.0], tp + [1.0])


def _reference_split_auc(at_fix, negatives, step):
  """One split of `AUC_Borji.m` / `AUC_shuffled.m`."""
  top = max(max(at_fix), max(negatives))
  thresholds = [step * k for k in range(int(np.floor(top / step + 1e-9)),
                                        -1, -1)]
  tp, fp = [0.0], [0.0]
  for thresh in thresholds:
    tp.append(np.mean([v >= thresh for v in at_fix]))
    fp.append(np.mean([v >= thresh for v in negatives]))
  return _trapz(fp + [1.0], tp + [1.0])


def _normalized(s):
  return (s - s.min()) / (s.max() - s.min())


def _reference_borji(s, f, splits=100, step=0.1, seed=0):
  s = _normalized(s).ravel()
  at_fix = s[f.ravel()]
  draws = np.random.default_rng(seed).integers(
      0, s.size, size=(len(at_fix), splits))
  return np.mean([_reference_split_auc(at_fix, s[draws[:, k]], step)
                  for k in range(splits)])


def _reference_shuffled(s, f, others, splits=100, step=0.1, seed=0):
  s = _normalized(s).ravel()
  at_fix = s[f.ravel()]
  rng = np.random.default_rng(seed)
  indices = np.flatnonzero(others.ravel())
  count = min(len(at_fix), len(indices))
  return np.mean([_reference_split_auc(
      at_fix, s[rng.permutation(indices)[:count]], step)
                  for _ in range(splits)])


def _reference_nss(s, f):
  return stats.zscore(s, axis=None, ddof=1)[f].mean()


def _reference_similarity(s, d):
  p = _normalized(s)
  q = _normalized(d)
  return np.minimum(p / p.sum(), q / q.sum()).sum()


def _reference_kl(s, d):
  eps = np.finfo(float).eps
  p, q = s / s.sum(), d / d.sum()
  return sum(qi * np.log(eps + qi / (pi + eps))
             for pi, qi in zip(p.ravel(), q.ravel()))


def _reference_emd(s, d):
  """The transport problem as a linear program (equal masses)."""
  p, q = (d / d.sum()).ravel(), (s / s.sum()).ravel()
  n = p.size
  rows, cols = np.indices(d.shape)
  pos = np.stack([rows.ravel(), cols.ravel()], 1)
  cost = np.linalg.norm(pos[:, None] - pos[None], axis=-1).ravel()
  a_eq = np.zeros((2 * n, n * n))
  for i in range(n):
    a_eq[i, i * n:(i + 1) * n] = 1  # mass leaving bin i of p
    a_eq[n + i, i::n] = 1  # mass arriving at bin i of q
  result = optimize.linprog(cost, A_eq=a_eq, b_eq=np.concatenate([p, q]),
                            bounds=(0, None), method="highs")
  return result.fun


def test_metrics_agree_with_the_published_formulas():
  s, d, f, o = _case()
  np.testing.assert_allclose(saliency.auc_judd(s, f), _reference_judd(s, f),
                             atol=1e-6)
  np.testing.assert_allclose(saliency.auc_borji(s, f), _reference_borji(s, f),
                             atol=1e-6)
  np.testing.assert_allclose(saliency.auc_borji(s, f, num_splits=7, seed=3),
                             _reference_borji(s, f, splits=7, seed=3),
                             atol=1e-6)
  np.testing.assert_allclose(saliency.shuffled_auc(s, f, o),
                             _reference_shuffled(s, f, o), atol=1e-6)
  np.testing.assert_allclose(
      saliency.shuffled_auc(s, f, o, num_splits=5, step_size=0.25, seed=1),
      _reference_shuffled(s, f, o, splits=5, step=0.25, seed=1), atol=1e-6)
  np.testing.assert_allclose(saliency.nss(s, f), _reference_nss(s, f),
                             atol=1e-6)
  np.testing.assert_allclose(saliency.cc(s, d), np.corrcoef(
      s.ravel(), d.ravel())[0, 1], atol=1e-6)
  np.testing.assert_allclose(saliency.similarity(s, d),
                             _reference_similarity(s, d), atol=1e-6)
  np.testing.assert_allclose(saliency.kl_divergence(s, d),
                             _reference_kl(s, d), atol=1e-6)
  small_s, small_d = s[:4, :5], d[:4, :5]
  np.testing.assert_allclose(saliency.emd(small_s, small_d, downsize=1),
                             _reference_emd(small_s, small_d), atol=1e-6)
  # The reference's FastEMD (pyemd's "cpp" backend) finds the same optimum.
  p, q = small_d / small_d.sum(), small_s / small_s.sum()
  rows, cols = np.indices(p.shape)
  pos = np.stack([rows.ravel(), cols.ravel()], 1).astype(float)
  distances = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
  np.testing.assert_allclose(
      saliency.emd(small_s, small_d, downsize=1),
      pyemd.emd(p.ravel(), q.ravel(), distances, extra_mass_penalty=0.0,
                backend="cpp"), atol=1e-6)


PINNED = {"auc_judd": 0.5702160493827161, "auc_borji": 0.5523842592592592,
          "shuffled_auc": 0.47128858024691356, "nss": 0.1884958905361919,
          "cc": 0.0014514100511892555, "similarity": 0.6870955777462917,
          "kl_divergence": 0.3483124063555664, "emd": 0.0717330687134797}
# POT's network simplex solves to about 1e-9.
TOLERANCE = {"emd": 1e-7}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_values_of_the_fixed_set(name):
  """Pinned, so that a change of any definition or of the draws shows."""
  assert _score(name, *_case()) == pytest.approx(
      PINNED[name], abs=TOLERANCE.get(name, 1e-9))


def test_a_map_equal_to_the_density():
  _, d, _, _ = _case()
  assert saliency.cc(d, d) == pytest.approx(1.0, abs=1e-12)
  assert saliency.similarity(d, d) == pytest.approx(1.0, abs=1e-12)
  assert saliency.kl_divergence(d, d) == pytest.approx(0.0, abs=1e-12)
  assert saliency.emd(d, d, downsize=3) == pytest.approx(0.0, abs=1e-9)


def test_a_constant_map():
  _, d, f, o = _case()
  constant = np.full(SHAPE, 0.3)
  assert saliency.auc_judd(constant, f) == 0.5
  assert saliency.auc_borji(constant, f) == 0.5
  assert saliency.shuffled_auc(constant, f, o) == 0.5
  for metric, truth in ((saliency.nss, f), (saliency.cc, d)):
    with pytest.raises(ValueError, match="constant .* zero variance"):
      metric(constant, truth)
  with pytest.raises(ValueError, match="constant .* similarity"):
    saliency.similarity(constant, d)
  assert saliency.similarity(np.zeros(SHAPE), d) == 0.0
  # A uniform map: KL is log(pixels) minus the density's entropy.
  q = d / d.sum()
  assert saliency.kl_divergence(constant, d) == pytest.approx(
      np.log(q.size) + np.sum(q * np.log(q)), abs=1e-9)


def test_a_perfect_ranking():
  s, _, f, o = _case()
  ranked = np.where(f, 2.0 + s, s)  # every fixated pixel above every other
  assert saliency.auc_judd(ranked, f) == 1.0
  # Ranked last: only the curve's first segment, from (0, 0) to
  # (1, 1 / fixations), has area.
  inverted = np.where(f, s, 2.0 + s)
  assert saliency.auc_judd(inverted, f) == pytest.approx(0.5 / f.sum())
  # Borji and shuffled draw negatives among all (also fixated) pixels.
  assert saliency.auc_borji(ranked, f) > 0.85
  assert saliency.nss(ranked, f) > 1.5


@pytest.mark.parametrize("name", ["auc_judd", "auc_borji", "shuffled_auc",
                                  "nss", "cc", "similarity", "kl_divergence",
                                  "emd"])
def test_swapping_maps_swaps_scores_and_scale(name):
  s, d, f, o = _case()
  t = _case(seed=1)[0]
  first = [_score(name, m, d, f, o) for m in (s, t)]
  second = [_score(name, m, d, f, o) for m in (t, s)]
  assert first == second[::-1]
  assert first[0] != first[1]
  # Every metric here is invariant to a positive scale of the map.
  assert _score(name, 3.7 * s, d, f, o) == pytest.approx(
      first[0], abs=TOLERANCE.get(name, 1e-9))


def test_symmetric_metrics_and_offsets():
  s, d, f, _ = _case()
  assert saliency.cc(s, d) == pytest.approx(saliency.cc(d, s), abs=1e-12)
  assert saliency.similarity(s, d) == pytest.approx(
      saliency.similarity(d, s), abs=1e-12)
  for metric, truth in ((saliency.auc_judd, f), (saliency.nss, f),
                        (saliency.cc, d), (saliency.similarity, d)):
    assert metric(s + 5.0, truth) == pytest.approx(metric(s, truth),
                                                   abs=1e-9)
  assert saliency.kl_divergence(s + 5.0, d) != pytest.approx(
      saliency.kl_divergence(s, d), abs=1e-3)


def test_maps_of_another_size_are_resized():
  s, d, f, _ = _case()
  small = s[::2, ::3]
  resized = maps.resize(small, SHAPE)
  assert resized.shape == SHAPE
  assert small.min() <= resized.min() and resized.max() <= small.max()
  for name in ("auc_judd", "nss", "cc", "kl_divergence"):
    assert _score(name, small, d, f, None) == _score(name, resized, d, f,
                                                     None)
  np.testing.assert_allclose(maps.resize(np.full((3, 4), 2.0), (7, 9)), 2.0,
                             rtol=1e-6)


def test_bad_input():
  s, d, f, o = _case()
  with pytest.raises(ValueError, match="truth has no fixations"):
    saliency.auc_judd(s, np.zeros(SHAPE))
  with pytest.raises(ValueError, match="truth has no fixations"):
    saliency.kl_divergence(s, np.zeros(SHAPE))
  with pytest.raises(ValueError, match="other_fixations has no fixations"):
    saliency.shuffled_auc(s, f, np.zeros(SHAPE))
  with pytest.raises(ValueError, match=r"shape of truth \(12, 15\)"):
    saliency.shuffled_auc(s, f, o[:5])
  with pytest.raises(ValueError, match="at least 2 fixations"):
    saliency.auc_borji(s, np.eye(*SHAPE) * (np.arange(15) == 0))
  with pytest.raises(ValueError, match="fixates every pixel"):
    saliency.auc_judd(s, np.ones(SHAPE))
  with pytest.raises(ValueError, match="2-D array, received shape"):
    saliency.nss(s[None], f)
  with pytest.raises(ValueError, match=f"{f.sum()} NaN or infinite"):
    saliency.cc(np.where(f, np.nan, s), d)
  with pytest.raises(ValueError, match="saliency_map must be >= 0"):
    saliency.kl_divergence(s - 1.0, d)
  with pytest.raises(ValueError, match="num_splits must be a positive int"):
    saliency.auc_borji(s, f, num_splits=0)
  with pytest.raises(ValueError, match="step_size must be in"):
    saliency.auc_borji(s, f, step_size=0.0)
  with pytest.raises(ValueError, match="downsize must be a positive int"):
    saliency.emd(s, d, downsize=0)


def test_post_processing():
  ramp = np.tile(np.arange(10.0), (6, 1))
  assert np.array_equal(maps.blur(ramp, 0), ramp)
  blurred = maps.blur(np.pad(np.ones((1, 1)), 4), 0.1)
  assert blurred.sum() == pytest.approx(1.0)
  assert blurred[4, 4] == blurred.max()
  prior = maps.center_prior((5, 9), 0.25)
  assert prior[2, 4] == 1.0 and prior[0, 0] < prior[2, 2]
  np.testing.assert_allclose(prior, prior[::-1, ::-1])
  assert np.array_equal(maps.combine_center_prior(ramp, 0), ramp)
  np.testing.assert_allclose(maps.combine_center_prior(ramp, 1.0),
                             maps.center_prior(ramp.shape))
  with pytest.raises(ValueError, match="weight must be in"):
    maps.combine_center_prior(ramp, 1.5)
  with pytest.raises(ValueError, match="sigma must be a number >= 0"):
    maps.blur(ramp, -1)
