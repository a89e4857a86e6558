"""The lesion experiments and LesionResNet, with a known evaluation."""

import keras
import numpy as np
import pytest

from sact_tf import models
from sact_tf.models import lesion
from sact_tf.training import lesion_study

SIZE = 8


@pytest.fixture(scope="module")
def model():
  keras.utils.set_random_seed(5)
  model = models.cifar_resnet("3", num_classes=3, base_channels=2)
  model.build((None, SIZE, SIZE, 3))
  return model


class KnownEvaluation:
  """Error: the sum of the weights of the deleted units, + 0.01 per unit
  out of its place; FLOPs: the full network's minus the deleted units'."""

  def __init__(self, model, weights):
    self.names = lesion.unit_names(model)
    self.costs = lesion.unit_flops(model, SIZE)
    self.weights = weights
    self.calls = 0

  def __call__(self, candidate):
    self.calls += 1
    names = lesion.unit_names(candidate)
    deleted = set(self.names) - set(names)
    moved = sum(a != b for a, b in zip(
        names, [n for n in self.names if n not in deleted]))
    return {"error": sum(self.weights[u] for u in deleted) + 0.01 * moved,
            "flops": float(sum(self.costs.values()) -
                           sum(self.costs[u] for u in deleted))}


WEIGHTS = {"block_1/unit_2": 0.3, "block_1/unit_3": 0.05,
           "block_2/unit_2": 0.2, "block_2/unit_3": 0.1,
           "block_3/unit_2": 0.02, "block_3/unit_3": 0.4}


def test_single_and_random_deletions(model):
  evaluate = KnownEvaluation(model, WEIGHTS)
  single = lesion_study.single_deletions(model, evaluate)
  assert [(r["unit"], r["error"]) for r in single] == list(WEIGHTS.items())
  rows = lesion_study.random_deletions(model, evaluate, 2,
                                       np.random.default_rng(0), [1, 6])
  assert rows[1]["error_mean"] == pytest.approx(sum(WEIGHTS.values()))
  assert rows[1]["error_std"] == pytest.approx(0)
  assert min(rows[0]["errors"]) >= 0.02 and max(rows[0]["errors"]) <= 0.4
  assert rows[0]["error_std"] == pytest.approx(np.std(rows[0]["errors"]))


def test_swaps_move_units_within_blocks(model):
  rng = np.random.default_rng(1)
  order = lesion_study.swap_units(model, 1, rng)
  assert sum(order[b] != [1, 2, 3] for b in order) == 1
  assert all(sorted(units) == [1, 2, 3] and units[0] == 1
             for units in order.values())
  rows = lesion_study.random_reorderings(model, KnownEvaluation(model, WEIGHTS),
                                         3, rng, [1])
  assert rows[0]["error_mean"] == pytest.approx(0.02)  # Two units moved.


def test_lesion_resnet_deletes_the_cheapest_units_first(model):
  evaluate = KnownEvaluation(model, WEIGHTS)
  costs = evaluate.costs
  full = sum(costs.values())
  budgets = [0.95, 0.75]
  result = lesion_study.lesion_resnet(model, evaluate, evaluate, budgets,
                                      SIZE)
  order = sorted(WEIGHTS, key=WEIGHTS.get)
  assert [step["unit"] for step in result["path"]] == order[:len(
      result["path"])]
  for point, budget in zip(result["points"], budgets):
    assert point["flops"] <= budget * full
    # One deletion fewer would not fit the budget.
    removed = sum(costs[u] for u in point["deleted"][:-1])
    assert full - removed > budget * full
    assert point["error"] == pytest.approx(
        sum(WEIGHTS[u] for u in point["deleted"]))
  assert result["min_flops"] == full - sum(costs[u] for u in WEIGHTS)


def test_lesion_budget_below_undeletable_cost(model):
  evaluate = KnownEvaluation(model, WEIGHTS)
  floor = 1 - sum(evaluate.costs[u] for u in WEIGHTS) / sum(
      evaluate.costs.values())
  with pytest.raises(ValueError, match=r"FLOPs budget 0.1 is below the cost "
                     rf"of the units that cannot be deleted \({floor:.3f}"):
    lesion_study.lesion_resnet(model, evaluate, evaluate, [0.5, 0.1], SIZE)
  with pytest.raises(ValueError, match="received 1.5"):
    lesion_study.lesion_resnet(model, evaluate, evaluate, [1.5], SIZE)
  assert evaluate.calls == 2  # Checked before any search.


def test_array_evaluation_counts_errors_and_flops(model):
  images = np.random.default_rng(2).normal(size=(5, SIZE, SIZE, 3))
  out = model(images.astype(np.float32), training=False)
  labels = np.argmax(out["logits"], -1)
  labels[:2] = (labels[:2] + 1) % 3
  result = lesion_study.ArrayEvaluation(images, labels, batch_size=2)(model)
  assert result["error"] == pytest.approx(0.4)
  assert result["flops"] == pytest.approx(float(out["flops"][0]))
