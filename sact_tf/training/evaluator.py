"""One pass of evaluation over a dataset, as an orbit `StandardEvaluator`."""

import numpy as np
import orbit
import tensorflow as tf

from sact_tf.training import metrics


class Evaluator(orbit.StandardEvaluator):
  """Evaluates a model as the original's `cifar_main.py --mode=eval` and
  `imagenet_eval.py`.

  Each step (per replica, compiled) computes sums over the replica's batch
  (`metrics.eval_sums`, float64) that are summed over replicas and
  accumulated on the host, so means and standard deviations are over the
  whole dataset, exactly (the original's streaming metrics). The per-example
  loss is what the original's `eval/Mean Loss` averaged: cross-entropy plus
  the model's losses (`tau` times the ponder cost, weight decay).

  Args:
    strategy: `tf.distribute.Strategy`.
    model: a built model with its weights loaded.
    eval_dataset: a distributed dataset of batches `{"images", "labels"}`
      and optionally `"object_mask"` (float32 `[b, s, s, 1]`, 1 on the
      object) for the ponder cost on the object and the background.

  `evaluate(-1)` returns a dict of floats: `eval/Accuracy`,
  `eval/Mean Loss`, `eval/Recall@5` (more than 5 classes), `Total
  Flops/mean`, `Total Flops/std`, per block `<block>/flops_mean`,
  `<block>/flops_std` and for ACT / SACT `<block>/ponder_cost_mean`,
  `<block>/ponder_cost_std`, `<block>/num_units_mean`,
  `<block>/num_units_std`; for sampling `<block>/sampling_density_mean`
  and `_std`; with object masks and SACT,
  `eval/ponder_cost_map/object_mean` and `.../background_mean` (sampling:
  `eval/sampling_density_map/...`); and `eval/num_examples`. `examples`
  then holds numpy arrays of the first `NUM_EXAMPLES` examples: `images`,
  and for SACT `ponder_cost_map` and `num_units_map` (sampling:
  `sampling_density_map`).
  """

  NUM_EXAMPLES = 8

  def __init__(self, strategy, model, eval_dataset):
    super().__init__(eval_dataset, options=orbit.StandardEvaluatorOptions(
        use_tf_while_loop=False))
    self.strategy = strategy
    self.model = model
    self.examples = {}

  def eval_begin(self):
    self.examples = {}
    return {}

  def eval_step(self, iterator):
    def step_fn(batch):
      outputs = self.model(batch["images"], training=False)
      loss = (metrics.cross_entropy(batch["labels"], outputs["logits"]) +
              tf.add_n(self.model.losses))
      sums = metrics.eval_sums(self.model, outputs, batch["labels"], loss)
      for name in metrics.REGION_MAPS:
        if "object_mask" in batch and name in outputs:
          sums.update(metrics.object_background_sums(
              outputs[name], batch["object_mask"], name))
      examples = {k: outputs[k][:self.NUM_EXAMPLES]
                  for k in ("ponder_cost_map", "num_units_map",
                            "sampling_density_map") if k in outputs}
      examples["images"] = batch["images"][:self.NUM_EXAMPLES]
      return sums, examples

    sums, examples = self.strategy.run(step_fn, args=(next(iterator),))
    sums = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in sums.items()}
    examples = {k: self.strategy.experimental_local_results(v)[0]
                for k, v in examples.items()}
    return sums, examples

  def eval_reduce(self, state, step_outputs):
    sums, examples = step_outputs
    if not self.examples:
      self.examples = {k: v.numpy() for k, v in examples.items()}
    for key, value in sums.items():
      state[key] = state.get(key, 0.0) + np.float64(value.numpy())
    return state

  def eval_end(self, state):
    if not state:
      raise ValueError("the evaluation dataset is empty")
    results = metrics.eval_results(state, self.model.num_classes)
    results["eval/num_examples"] = float(state["examples"])
    return results
