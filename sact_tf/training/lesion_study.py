"""Veit et al.'s lesion experiments and the LesionResNet baseline.

Veit et al. 2016 (arXiv 1605.06431) measure how a trained ResNet's error
grows when residual units are deleted (Sec. 4.1-4.2, Fig. 3-5) or
reordered (Sec. 4.3, Fig. 6) at test time. LesionResNet, the simple
baseline SACT is compared with, turns this into a FLOPs-accuracy curve from
one trained network: for each FLOPs budget, greedily delete the unit whose
deletion costs least accuracy on data that is not the test split, until the
network fits the budget.

Every experiment takes `evaluate(model) -> {"error": float, "flops":
float}` (`ArrayEvaluation` on in-memory examples), so the procedures
themselves know nothing about data.
"""

import numpy as np

from sact_tf.models import lesion


class ArrayEvaluation:
  """Error rate and mean FLOPs of a model on examples held in memory.

  Args:
    images: float32 `[N, H, W, 3]` (preprocessed for evaluation).
    labels: int `[N]`.
    batch_size: int.
  """

  def __init__(self, images, labels, batch_size=100):
    if len(images) != len(labels) or not len(images):
      raise ValueError(f"need as many images as labels, at least one, "
                       f"received {len(images)} images, {len(labels)} labels")
    if int(batch_size) < 1:
      raise ValueError(f"batch_size must be positive, received {batch_size!r}")
    self.images = np.asarray(images, np.float32)
    self.labels = np.asarray(labels, np.int64)
    self.batch_size = int(batch_size)

  def __call__(self, model):
    correct, flops = 0, 0.0
    for start in range(0, len(self.images), self.batch_size):
      # Compiled once per model (Keras' predict function).
      out = model.predict_on_batch(self.images[start:start + self.batch_size])
      correct += int(np.sum(np.argmax(out["logits"], -1) ==
                            self.labels[start:start + self.batch_size]))
      flops += float(np.sum(out["flops"]))
    return {"error": 1.0 - correct / len(self.images),
            "flops": flops / len(self.images)}


def single_deletions(model, evaluate):
  """The error with each deletable unit deleted alone (Veit et al. Fig. 3).

  Returns:
    list of `{"unit", "error", "flops"}`, in network order.
  """
  return [dict(unit=name, **evaluate(lesion.lesion(model, delete=[name])))
          for name in lesion.deletable_units(model)]


def _summary(results):
  errors = np.array([r["error"] for r in results])
  return {"error_mean": float(errors.mean()), "error_std": float(errors.std()),
          "flops_mean": float(np.mean([r["flops"] for r in results])),
          "errors": errors.tolist()}


def random_deletions(model, evaluate, num_draws, rng, counts=None):
  """The error against the number of units deleted at random (Fig. 4).

  Args:
    model: built vanilla model.
    evaluate: callable, see the module.
    num_draws: int, random sets of units per count.
    rng: `np.random.Generator`.
    counts: list of ints or None (1 .. all deletable units).

  Returns:
    list of `{"count", "error_mean", "error_std", "flops_mean", "errors"}`.
  """
  units = lesion.deletable_units(model)
  rows = []
  for count in counts or range(1, len(units) + 1):
    draws = [evaluate(lesion.lesion(model, delete=list(
        rng.choice(units, count, replace=False)))) for _ in range(num_draws)]
    rows.append(dict(count=int(count), **_summary(draws)))
  return rows


def swap_units(model, num_swaps, rng):
  """`unit_order` after `num_swaps` random swaps of two units of a block.

  Veit et al. Sec. 4.3: each swap picks a block with at least two movable
  units (all but the first), then two of them, and exchanges their places.

  Returns:
    `{block name: [unit numbers]}` for `lesion.lesion(model, order=...)`.
  """
  order = lesion.unit_order(model)
  blocks = [b for b, units in order.items() if len(units) > 2]
  if not blocks:
    raise ValueError("no block has two movable units to swap")
  for _ in range(num_swaps):
    units = order[blocks[rng.integers(len(blocks))]]
    i, j = rng.choice(np.arange(1, len(units)), 2, replace=False)
    units[i], units[j] = units[j], units[i]
  return order


def random_reorderings(model, evaluate, num_draws, rng, counts=None):
  """The error against the number of random swaps (Veit et al. Fig. 6).

  Returns:
    list of `{"count", "error_mean", "error_std", "flops_mean", "errors"}`
    (empty when no block has two movable units).
  """
  movable = sum(len(u) - 1 for u in lesion.unit_order(model).values()
                if len(u) > 2)
  rows = []
  for count in counts or (range(1, movable + 1) if movable else []):
    draws = [evaluate(lesion.lesion(model, order=swap_units(model, count,
                                                             rng)))
             for _ in range(num_draws)]
    rows.append(dict(count=int(count), **_summary(draws)))
  return rows


def lesion_resnet(model, select, evaluate, budgets, image_size):
  """LesionResNet: greedy deletion under a series of FLOPs budgets.

  From the full network, repeatedly delete the unit whose deletion gives the
  lowest error under `select` (data that is not the test split), until the
  network's FLOPs are within the budget; each budget's network is then
  evaluated with `evaluate`. The greedy path is the same for every budget,
  so it is computed once, down to the smallest budget.

  Args:
    model: built vanilla model (or one trained with stochastic depth).
    select: callable, the evaluation that chooses the unit to delete.
    evaluate: callable, the reported evaluation.
    budgets: list of floats in (0, 1], FLOPs per image as a fraction of the
      full network's.
    image_size: int, the input size the FLOPs are counted at.

  Returns:
    dict: `full_flops`, `min_flops` (every deletable unit deleted), `path`
    (`[{"unit", "flops", "selection_error"}]`, the order of deletions) and
    `points` (`[{"budget", "flops", "flops_fraction", "error", "deleted"}]`,
    one per budget, largest first).

  Raises:
    ValueError: a budget outside (0, 1] or below the cost of the units that
      cannot be deleted (named with that cost).
  """
  costs = lesion.unit_flops(model, image_size)
  full = evaluate(model)["flops"]
  deletable = lesion.deletable_units(model)
  floor = full - sum(costs[u] for u in deletable)
  budgets = sorted({float(b) for b in budgets}, reverse=True)
  for budget in budgets:
    if not 0 < budget <= 1:
      raise ValueError(f"a FLOPs budget is a fraction in (0, 1], received "
                       f"{budget!r}")
    if budget * full < floor:
      raise ValueError(
          f"FLOPs budget {budget!r} is below the cost of the units that "
          f"cannot be deleted ({floor / full:.3f} of the network's "
          f"{full:.0f} FLOPs)")
  current, deleted, flops, path = model, [], full, []
  while flops > budgets[-1] * full:
    trials = {u: select(lesion.lesion(current, delete=[u]))["error"]
              for u in lesion.deletable_units(current)}
    unit = min(trials, key=trials.get)  # Ties: the earliest unit.
    current = lesion.lesion(current, delete=[unit])
    deleted.append(unit)
    flops -= costs[unit]
    path.append({"unit": unit, "flops": flops,
                 "selection_error": trials[unit]})
  points = []
  for budget in budgets:
    steps = next(i for i in range(len(path) + 1)
                 if (path[i - 1]["flops"] if i else full) <= budget * full)
    network = lesion.lesion(model, delete=deleted[:steps])
    result = evaluate(network)
    points.append({"budget": budget, "flops": result["flops"],
                   "flops_fraction": result["flops"] / full,
                   "error": result["error"], "deleted": deleted[:steps]})
  return {"full_flops": full, "min_flops": floor, "path": path,
          "points": points}
