"""Stochastic depth (Huang et al. 2016) on the vanilla models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sact_tf import models
from sact_tf.models import lesion
from sact_tf.models import stochastic_depth

P_LAST = 0.5
SIZE = 8


def tiny(family, **kwargs):
  """2 units per block: unit 2 of each block is the one that may drop."""
  if family == "cifar":
    model = models.cifar_resnet("2", num_classes=3, base_channels=2, **kwargs)
  else:
    model = models.imagenet_resnet("2_2_2_2", num_classes=3, base_channels=2,
                                   **kwargs)
  model.build((None, SIZE, SIZE, 3))
  return model


def seeded_pair(family):
  keras.utils.set_random_seed(1)
  vanilla = tiny(family)
  dropped = tiny(family, stochastic_depth=P_LAST)
  dropped.set_weights(vanilla.get_weights())
  return vanilla, dropped


def test_linear_decay_rule():
  # L = 6 units; l = 2, 4, 6 may drop: p_l = 1 - l / 6 * 0.5.
  np.testing.assert_allclose(
      stochastic_depth.survival_probabilities([2, 2, 2], P_LAST),
      [[1, 1 - 2 / 12], [1, 1 - 4 / 12], [1, 0.5]])
  model = tiny("imagenet", stochastic_depth=0.2)
  last = model.blocks[-1].survival_probabilities
  np.testing.assert_allclose(last, [1.0, 0.2])
  assert model.get_config()["stochastic_depth"] == 0.2


@pytest.mark.parametrize("p_last", [0, -0.5, 1.5, float("nan"), True])
def test_bad_survival_probability(p_last):
  with pytest.raises(ValueError, match=rf"received stochastic_depth={p_last}"):
    models.cifar_resnet("2", stochastic_depth=p_last)


def test_adaptive_models_refuse_stochastic_depth():
  with pytest.raises(ValueError, match="model_type='sact'"):
    models.cifar_resnet("2", model_type="sact", stochastic_depth=0.5)


@pytest.mark.parametrize("family", ["cifar", "imagenet"])
def test_p_last_one_is_vanilla_bit_for_bit(family):
  keras.utils.set_random_seed(2)
  vanilla = tiny(family)
  same = tiny(family, stochastic_depth=1.0)
  same.set_weights(vanilla.get_weights())
  images = tf.random.normal([2, SIZE, SIZE, 3])
  for training in (False, True):
    a, b = vanilla(images, training=training), same(images, training=training)
    np.testing.assert_array_equal(a["logits"], b["logits"])
    np.testing.assert_array_equal(a["flops"], b["flops"])


@pytest.mark.parametrize("family", ["cifar", "imagenet"])
def test_test_time_residual_is_scaled_by_survival(family):
  # The first block's output is F + p f(F): p times the vanilla output plus
  # (1 - p) times the output with the unit deleted.
  vanilla, dropped = seeded_pair(family)
  first = vanilla.blocks[0].name
  deleted = lesion.lesion(vanilla, delete=[f"{first}/unit_2"])
  images = tf.random.normal([2, SIZE, SIZE, 3])
  key = f"{first}/outputs"
  p = dropped.blocks[0].survival_probabilities[1]
  expected = (p * vanilla(images, training=False)[key] +
              (1 - p) * deleted(images, training=False)[key])
  np.testing.assert_allclose(dropped(images, training=False)[key], expected,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(dropped(images, training=False)["flops"],
                                vanilla(images, training=False)["flops"])


def test_survival_rates_and_expected_training_flops():
  _, model = seeded_pair("cifar")
  tf.random.set_seed(3)
  step = tf.function(lambda x: model(x, training=True))
  images = tf.random.normal([1, SIZE, SIZE, 3])
  steps = 300
  ran, flops = [], []
  costs = lesion.unit_flops(model, SIZE)
  for _ in range(steps):
    out = step(images)
    flops.append(int(out["flops"][0]))
    # Unit 1 always runs: the block ran unit 2 when it counts more.
    ran.append([int(out[f"{b.name}/flops"][0]) > costs[f"{b.name}/unit_1"]
                for b in model.blocks])
  probabilities = stochastic_depth.survival_probabilities([2, 2, 2], P_LAST)
  p = np.array([block[1] for block in probabilities])
  rate = np.mean(ran, axis=0)
  standard_error = np.sqrt(p * (1 - p) / steps)
  assert np.all(np.abs(rate - p) < 3 * standard_error), (rate, p)

  full = int(model(images, training=False)["flops"][0])
  other = full - sum(costs.values())
  unit_costs = [[costs[f"{b.name}/unit_{i + 1}"] for i in range(2)]
                for b in model.blocks]
  expected = stochastic_depth.expected_flops(unit_costs, probabilities, other)
  assert expected == pytest.approx(
      full - sum((1 - pb[1]) * cb[1] for pb, cb in zip(probabilities,
                                                        unit_costs)))
  spread = np.sqrt(sum(q * (1 - q) * cb[1] ** 2 for q, cb in zip(
      p, unit_costs)) / steps)
  assert abs(np.mean(flops) - expected) < 3 * spread
  assert set(flops) <= {other + sum(cb[0] + r * cb[1] for r, cb in zip(
      bits, unit_costs)) for bits in np.ndindex(2, 2, 2)}


def test_serialization_round_trip():
  model = tiny("cifar", stochastic_depth=0.7)
  clone = type(model).from_config(model.get_config())
  assert clone.get_config() == model.get_config()
  np.testing.assert_allclose([b.survival_probabilities for b in clone.blocks],
                             [b.survival_probabilities for b in model.blocks])
