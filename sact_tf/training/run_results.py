"""The evaluated results of training runs, for tables and charts.

A run directory of `tools/train.py` is evaluated when it holds
`eval/metrics.json` (written by the training's final evaluation or by
`tools/evaluate.py`). `run_row` reads it with the run's configuration; both
`tools/results_table.py` and `tools/tradeoff.py` tabulate these rows.
"""

import json
import os

import tensorflow as tf

from sact_tf.training import run_config

METRICS_FILE = os.path.join("eval", "metrics.json")


def vanilla_flops(config):
  """FLOPs per image of the network without halting or sampling (int)."""
  vanilla = dict(config, model_kwargs=dict(
      config["model_kwargs"], model_type="vanilla", tau=None,
      sparse_loss_weight=None))
  model = run_config.build_model(vanilla)
  size = config["image_size"]
  outputs = model(tf.zeros([1, size, size, 3]), training=False)
  return int(outputs["flops"][0])


def run_row(run_dir):
  """The results of one evaluated run directory.

  Returns:
    dict: `run` (the directory's name), `model_type`, `model` (the depth
    string), `tau` (ACT and SACT; None for the others),
    `sparse_loss_weight` (sampling; None for the others),
    `stochastic_depth` (`p_L`, 1 when unused), `seed`, `accuracy`, `flops`
    (mean per image), `flops_fraction` (of the same network without
    halting or sampling), the mean ponder cost on the object and the
    background (`ponder_object`, `ponder_background`) and the mean sampling
    density there (`density_object`, `density_background`; each None where
    not measured).

  Raises:
    ValueError: not a run directory, or not evaluated.
  """
  config = run_config.read_config(run_dir)
  path = os.path.join(run_dir, METRICS_FILE)
  if not os.path.isfile(path):
    raise ValueError(f"{run_dir!r} has no {METRICS_FILE}: evaluate it with "
                     f"tools/evaluate.py --checkpoint_dir={run_dir} "
                     f"--evaluate_once")
  with open(path, encoding="utf-8") as f:
    metrics = json.load(f)["metrics"]
  kwargs = config["model_kwargs"]
  halting = kwargs["model_type"] not in ("vanilla", "sampling")
  flops = metrics["Total Flops/mean"]
  return {
      "run": os.path.basename(os.path.normpath(run_dir)),
      "model_type": kwargs["model_type"],
      "model": str(kwargs["model"]),
      "tau": kwargs["tau"] if halting else None,
      "sparse_loss_weight": kwargs.get("sparse_loss_weight"),
      "stochastic_depth": kwargs.get("stochastic_depth", 1.0),
      "seed": config.get("seed"),
      "accuracy": metrics["eval/Accuracy"],
      "flops": flops,
      "flops_fraction": flops / vanilla_flops(config),
      "ponder_object": metrics.get("eval/ponder_cost_map/object_mean"),
      "ponder_background": metrics.get(
          "eval/ponder_cost_map/background_mean"),
      "density_object": metrics.get(
          "eval/sampling_density_map/object_mean"),
      "density_background": metrics.get(
          "eval/sampling_density_map/background_mean"),
  }
