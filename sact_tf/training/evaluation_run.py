"""Evaluation of a run's checkpoints, as the original's eval modes.

`cifar_main.py --mode=eval` and `imagenet_eval.py` printed every metric as
`eval/Accuracy[0.9182]`, `Total Flops/mean[82393168]`; `EvaluationRun`
prints the same lines, and also writes them as JSON and TensorBoard
summaries in `eval_dir`. Without `once` it evaluates every new checkpoint
as it appears (`evaluation_loop`).
"""

import json
import os

import numpy as np
import tensorflow as tf

from sact_tf.data import datasets
from sact_tf.training import checkpoint_io
from sact_tf.training import summaries
from sact_tf.training.evaluator import Evaluator
from sact_tf.utils import files

_FIRST_KEYS = ("eval/Accuracy", "eval/Recall@5", "eval/Mean Loss",
               "Total Flops/mean", "Total Flops/std")


def _print_results(results, log):
  for key in [k for k in _FIRST_KEYS if k in results] + sorted(
      k for k in results if k not in _FIRST_KEYS):
    log(f"{key}[{results[key]:.8g}]")


def _write_json(path, data):
  with files.atomic_output(path, overwrite=True) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(data, f, indent=2, sort_keys=True)
      f.write("\n")


class EvaluationRun:
  """Evaluates the checkpoints of one run directory (or original release).

  Args:
    checkpoint_dir: str, see `checkpoint_io.restore_model`.
    eval_dir: str, where results go: `metrics.json` (the latest),
      `metrics-<step>.json`, TensorBoard summaries and, for SACT,
      `ponder_maps.png` (sampling: `sampling_maps.png`; see `picture_fn`).
    strategy: `tf.distribute.Strategy`.
    split_name, num_examples, batch_size, dataset_dir: override the run's
      data (None: the run's evaluation split, every example, the run's
      batch size, the run's data).
    use_ema, execution: see `restore_model`.
    picture_fn: callable `(examples dict, path)` drawing the SACT ponder
      cost maps (or sampling density maps) of the first examples, or None.
  """

  def __init__(self, checkpoint_dir, eval_dir, strategy, split_name=None,
               num_examples=None, batch_size=None, dataset_dir=None,
               use_ema=None, execution=None, picture_fn=None, log=print):
    self.checkpoint_dir = checkpoint_dir
    self.eval_dir = eval_dir
    self.strategy = strategy
    self.picture_fn = picture_fn
    self.log = log
    with strategy.scope():
      self.model, self.config = checkpoint_io.restore_model(
          checkpoint_dir, use_ema=use_ema, execution=execution)
    config = self.config
    name = config["dataset"]
    split = split_name or config.get("eval_split") or datasets.info(
        name)["eval_split"]
    dataset_dir = dataset_dir or config.get("dataset_dir")
    datasets.check(name, split, dataset_dir, config.get("tfds_data_dir"),
                   config.get("tfds_manual_dir"))
    self.split = split
    input_fn = datasets.make_input_fn(
        name, split, batch_size or config.get("batch_size", 100),
        training=False, image_size=config["image_size"],
        num_examples=num_examples, dataset_dir=dataset_dir,
        tfds_data_dir=config.get("tfds_data_dir"),
        tfds_manual_dir=config.get("tfds_manual_dir"))
    self.evaluator = Evaluator(
        strategy, self.model,
        strategy.distribute_datasets_from_function(input_fn))
    tf.io.gfile.makedirs(eval_dir)
    self.writer = tf.summary.create_file_writer(eval_dir)

  def evaluate(self):
    """Evaluates the loaded checkpoint; returns the metrics dict."""
    config = self.config
    try:
      results = self.evaluator.evaluate(tf.constant(-1))
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
      raise ValueError(f"reading the evaluation data failed: "
                       f"{e.message.strip().splitlines()[0]}") from e
    step = config["global_step"] or 0
    self.log(f"Evaluated {config['checkpoint']} (step {step}) on "
             f"{int(results['eval/num_examples'])} {config['dataset']} "
             f"{self.split!r} examples")
    _print_results(results, self.log)
    record = {"checkpoint": config["checkpoint"], "global_step": step,
              "dataset": config["dataset"], "split": self.split,
              "use_ema": config["use_ema"], "metrics": results}
    _write_json(os.path.join(self.eval_dir, f"metrics-{step}.json"), record)
    _write_json(os.path.join(self.eval_dir, "metrics.json"), record)
    examples = self.evaluator.examples
    images = None
    if "ponder_cost_map" in examples:
      n = summaries.HEATMAP_IMAGES
      images = summaries.heatmap_images(
          self.model, examples["images"][:n],
          {k: v[:n] for k, v in examples.items()})
      if self.picture_fn:
        path = os.path.join(self.eval_dir, "ponder_maps.png")
        self.picture_fn(examples, path)
        self.log(f"Wrote {path}")
    elif "sampling_density_map" in examples and self.picture_fn:
      path = os.path.join(self.eval_dir, "sampling_maps.png")
      self.picture_fn(examples, path)
      self.log(f"Wrote {path}")
    summaries.write(self.writer, step, results, images)
    return results

  def run(self, once=True, eval_interval_secs=60, timeout=None):
    """Evaluates the latest checkpoint; without `once`, each new one too.

    Continuous evaluation stops after the run's last step
    (`max_number_of_steps`), or after `timeout` seconds without a new
    checkpoint (None: waits for ever, as the original's evaluation loop).
    """
    results = self.evaluate()
    final_step = self.config.get("max_number_of_steps") or np.inf
    if (once or self.config.get("original_checkpoint") or
        (self.config["global_step"] or 0) >= final_step):
      return results
    last = self.config["checkpoint"]
    for prefix in tf.train.checkpoints_iterator(
        self.checkpoint_dir, min_interval_secs=eval_interval_secs,
        timeout=timeout):
      if prefix == last:
        continue
      with self.strategy.scope():
        self.config = checkpoint_io.load_weights(self.model, prefix,
                                                 self.config)
      results = self.evaluate()
      last = prefix
      if (self.config["global_step"] or 0) >= final_step:
        break
    return results
