"""Losses and statistics of training and evaluation, named as the original.

The original's names (`summary_utils.act_metric_map`, `flops_metric_map`):
`<block>/ponder_cost_mean`, `<block>/ponder_cost_std`,
`<block>/num_units_mean`, `<block>/num_units_std`, `<block>/num_units_max`
(training), `<block>/flops_mean`, `<block>/flops_std`, `Total Flops/mean`,
`Total Flops/std`, `eval/Accuracy`, `eval/Recall@5`, `eval/Mean Loss`.
Moments are over every element: images for ACT, positions for SACT and
for the sampling family's `<block>/sampling_density`.
"""

import keras
import numpy as np
import tensorflow as tf

from sact_tf.layers.adaptive_block import HALTING_TYPES

TOP_K = 5


def block_names(model):
  return [block.name for block in model.blocks]


def is_adaptive(model):
  """Whether the model halts (has ponder costs)."""
  return model.model_type in HALTING_TYPES


def cross_entropy(labels, logits, label_smoothing=0.0):
  """Per-example softmax cross-entropy, TF1's `label_smoothing` (float32 [b])."""
  onehot = tf.one_hot(labels, tf.shape(logits)[-1])
  return keras.losses.categorical_crossentropy(
      onehot, logits, from_logits=True, label_smoothing=label_smoothing)


def ponder_loss(model, outputs):
  """`tau * sum over blocks of the mean ponder cost` (0 if vanilla or no tau)."""
  if not is_adaptive(model) or not model.tau:
    return tf.constant(0.0)
  return model.tau * tf.add_n([
      tf.reduce_mean(outputs[f"{b}/ponder_cost"]) for b in block_names(model)])


def _moment_sources(model):
  """`{statistic name: output key}` of the outputs whose moments we keep."""
  sources = {"Total Flops": "flops"}
  for block in block_names(model):
    keys = ["flops"] + (["ponder_cost", "num_units"] if is_adaptive(model)
                        else [])
    if model.model_type == "sampling":
      keys.append("sampling_density")
    sources.update({f"{block}/{k}": f"{block}/{k}" for k in keys})
  return sources


def _stat_name(name, stat):
  return f"{name}/{stat}" if name == "Total Flops" else f"{name}_{stat}"


def batch_statistic_names(model):
  """The keys of `batch_statistics(model, ...)`, in order."""
  names = []
  for name in _moment_sources(model):
    names += [_stat_name(name, "mean"), _stat_name(name, "std")]
    if name.endswith("/num_units"):
      names.append(_stat_name(name, "max"))
  return names


def batch_statistics(model, outputs):
  """Moments of one (replica's) batch, as the original's training summaries.

  Returns:
    dict of float32 scalars: `<name>_mean`, `<name>_std` for every block's
    FLOPs, ponder cost and number of units and the total FLOPs, and
    `<block>/num_units_max`.
  """
  stats = {}
  for name, key in _moment_sources(model).items():
    x = outputs[key]
    mean, variance = tf.nn.moments(tf.cast(x, tf.float32), list(
        range(len(x.shape))))
    stats[_stat_name(name, "mean")] = mean
    stats[_stat_name(name, "std")] = tf.sqrt(tf.maximum(variance, 0.0))
    if name.endswith("/num_units"):
      stats[_stat_name(name, "max")] = tf.cast(tf.reduce_max(x), tf.float32)
  return stats


def eval_sums(model, outputs, labels, loss):
  """Sums over one (replica's) batch that evaluation accumulates (float64).

  Args:
    model: the model.
    outputs: its output dict.
    labels: int64 `[b]`.
    loss: float32 `[b]`, per-example loss.

  Returns:
    dict of float64 scalars: `examples`, `correct`, `correct_top5`, `loss`,
    and for every statistic `<name>/count`, `<name>/sum`, `<name>/sumsq`.
  """
  logits = outputs["logits"]
  labels = tf.cast(labels, tf.int64)
  f64 = lambda x: tf.cast(x, tf.float64)
  sums = {
      "examples": f64(tf.size(labels)),
      "correct": tf.reduce_sum(f64(tf.equal(tf.argmax(logits, -1), labels))),
      "correct_top5": tf.reduce_sum(f64(tf.math.in_top_k(
          labels, logits, min(TOP_K, logits.shape[-1])))),
      "loss": tf.reduce_sum(f64(loss)),
  }
  for name, key in _moment_sources(model).items():
    x = f64(outputs[key])
    sums[f"{name}/count"] = f64(tf.size(x))
    sums[f"{name}/sum"] = tf.reduce_sum(x)
    sums[f"{name}/sumsq"] = tf.reduce_sum(tf.square(x))
  return sums


# The maps whose means on the object and on the background are reported.
REGION_MAPS = ("ponder_cost_map", "sampling_density_map")


def object_background_sums(value_map, object_mask, name="ponder_cost_map"):
  """Sums of a map (one of `REGION_MAPS`) on the object and the background.

  Returns:
    dict of float64 scalars `<name>/object/count`, `<name>/object/sum`,
    `<name>/background/count`, `<name>/background/sum`.
  """
  p = tf.cast(value_map, tf.float64)
  m = tf.cast(object_mask, tf.float64)
  return {f"{name}/object/count": tf.reduce_sum(m),
          f"{name}/object/sum": tf.reduce_sum(p * m),
          f"{name}/background/count": tf.reduce_sum(1.0 - m),
          f"{name}/background/sum": tf.reduce_sum(p * (1.0 - m))}


def eval_results(sums, num_classes):
  """The final metrics from accumulated `eval_sums` (numpy float64)."""
  n = sums["examples"]
  results = {"eval/Accuracy": sums["correct"] / n,
             "eval/Mean Loss": sums["loss"] / n}
  if num_classes > TOP_K:
    results["eval/Recall@5"] = sums["correct_top5"] / n
  for key in sorted(sums):
    if key.endswith("/count") and key[:-len("/count")] + "/sumsq" in sums:
      name = key[:-len("/count")]
      count = sums[key]
      mean = sums[f"{name}/sum"] / count
      variance = max(sums[f"{name}/sumsq"] / count - mean**2, 0.0)
      results[_stat_name(name, "mean")] = mean
      results[_stat_name(name, "std")] = np.sqrt(variance)
  for name in REGION_MAPS:
    for region in ("object", "background"):
      if f"{name}/{region}/count" in sums:
        results[f"eval/{name}/{region}_mean"] = (
            sums[f"{name}/{region}/sum"] / sums[f"{name}/{region}/count"])
  return {k: float(v) for k, v in results.items()}
