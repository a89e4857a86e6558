"""Shared test helpers: tiny models, tiny run directories, tool runs.

Tiny models get random halting weights
(`halting_calibration.randomize_halting`), so that halting varies across
images and positions (freshly initialised heads halt everywhere alike).
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import tensorflow as tf

from sact_tf import models
from sact_tf.export import saved_model
from sact_tf.training import checkpoint_io
from sact_tf.training import detection_run
from sact_tf.training import run_config
from sact_tf.utils import halting_calibration

REPO = pathlib.Path(__file__).resolve().parents[1]
# Depths of the tiny models: CIFAR 2 units per block (every block has a
# halting head); ImageNet blocks of 1 and 2 units.
TINY_DEPTHS = {"cifar": "2", "imagenet": "1_2_1_2"}
# `SparseConfig` fields that make every unit with an active position run
# sparse (no dense fallback at any depth), gathering the 3x3 dilation
# (`GATHERED`) or computing the first conv on the whole map (`WHOLE_MAP`).
ALWAYS_SPARSE = {
    "gathered": {"dense_above_cost": (), "dilation_gathered_below": ()},
    "whole_map": {"dense_above_cost": (),
                  "dilation_gathered_below": ((2**31, 0.0),)},
}


def tiny_model(family, model_type="sact", depth=None, num_classes=5,
               base_channels=4, **kwargs):
  """A tiny CIFAR or ImageNet model (unbuilt).

  Args:
    family: `"cifar"` or `"imagenet"`.
    model_type: str. Defaults to `"sact"`.
    depth: the `model` depth string; defaults to `TINY_DEPTHS[family]`.
    num_classes: int. Defaults to 5.
    base_channels: int. Defaults to 4.
    **kwargs: more model arguments (`execution`, `tau`, ...).
  """
  factory = {"cifar": models.cifar_resnet,
             "imagenet": models.imagenet_resnet}[family]
  return factory(depth or TINY_DEPTHS[family], num_classes=num_classes,
                 model_type=model_type, base_channels=base_channels,
                 **kwargs)


def randomize_halting(model, seed=0, scale=1.0, bias=0.0):
  """Every halting kernel drawn from `N(0, scale)`, every bias `bias`.

  Builds the model first if needed.
  """
  if not model.built:
    model.build((None, None, None, 3))
  halting_calibration.randomize_halting(model, seed, scale=scale, bias=bias,
                                        global_term=True)


def randomize_sampling(model, seed=0):
  """Every sampling mask kernel drawn from `N(0, 1 / fan_in)`, bias 0.

  So that the masks vary across images and positions, about half sampled.
  Builds the model first if needed.
  """
  if not model.built:
    model.build((None, None, None, 3))
  halting_calibration.randomize_sampling(model, seed, bias=0.0)


def run_tool(tool, args, timeout=300, **env):
  """Runs `tools/<tool>` with `args` as a user would.

  Returns:
    `subprocess.CompletedProcess` with text `stdout` and `stderr`.
  """
  env = dict(os.environ, PYTHONPATH=str(REPO), **env)
  return subprocess.run([sys.executable, str(REPO / "tools" / tool), *args],
                        env=env, capture_output=True, text=True,
                        timeout=timeout)

CONFIGS = {
    # 2 units per block: every block has a halting head.
    "cifar": {"family": "cifar", "image_size": 32,
              "dataset": "cluttered_digits",
              "model_kwargs": {"model": "2", "num_classes": 10,
                               "base_channels": 4}},
    "imagenet": {"family": "imagenet", "image_size": 64,
                 "dataset": "imagenet2012",
                 "model_kwargs": {"model": "1_2_2_1", "num_classes": 11,
                                  "base_channels": 4}},
}


def write_run(directory, family="imagenet", model_type="sact", depth=None,
              model_kwargs=None, **config):
  """Writes a run directory (a `pathlib.Path`); returns its model.

  Args:
    directory: pathlib.Path, created if needed.
    family: str, a key of `CONFIGS`.
    model_type: str.
    depth: str or None, overrides the `model` depth string.
    model_kwargs: dict or None, more model arguments (`tau`,
      `sparse_loss_weight`, ...).
    **config: overrides of the other `config.json` keys.

  Returns:
    The model (built, dense execution) whose weights were saved.
  """
  config = dict(CONFIGS[family], **config)
  config["model_kwargs"] = dict(config["model_kwargs"], model_type=model_type,
                                **(model_kwargs or {}))
  if depth:
    config["model_kwargs"]["model"] = depth
  directory.mkdir(parents=True, exist_ok=True)
  run_config.write_config(str(directory), config)
  # Seeded, so that whether halting varies does not depend on the draw.
  keras.utils.set_random_seed(0)
  model = run_config.build_model(config)
  model.build((None, None, None, 3))
  if model_type == "sampling":
    randomize_sampling(model)
  else:
    randomize_halting(model)
  checkpoint = checkpoint_io.make_checkpoint(
      model, global_step=tf.Variable(1, dtype=tf.int64))
  tf.train.CheckpointManager(checkpoint, str(directory), 1,
                             checkpoint_name="ckpt").save(1)
  return model


def write_metrics(run_dir, metrics):
  """Writes `<run_dir>/eval/metrics.json` as an evaluation does."""
  (run_dir / "eval").mkdir()
  (run_dir / "eval" / "metrics.json").write_text(json.dumps(
      {"checkpoint": "ckpt-1", "global_step": 1, "metrics": metrics}))


def summary_tags(directory):
  """`{tag: [(step, value), ...]}` of the TensorBoard events in `directory`."""
  tags = {}
  for path in tf.io.gfile.glob(str(directory / "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(
            (event.step, tf.make_ndarray(value.tensor)))
  return tags


_EXPORTS = {}


def exported(tmp_path_factory, family="imagenet", model_type="sact"):
  """A run dir and its SavedModel, made once per session (and per kind).

  Returns:
    `(model, run_dir, version_dir)`; `model` runs densely, the export
    sparsely (SACT).
  """
  key = (family, model_type)
  if key not in _EXPORTS:
    base = tmp_path_factory.mktemp(f"{family}_{model_type}")
    model = write_run(base / "run", family, model_type)
    path, _ = saved_model.export_checkpoint(str(base / "run"),
                                            str(base / "models"))
    _EXPORTS[key] = (model, base / "run", path)
  return _EXPORTS[key]


# A tiny detector on the digit scenes (64x64 canvases, 10 classes).
TINY_DETECTION_RUN = {"model": "1_2_1_1", "base_channels": 4,
                      "batch_size": 4, "max_number_of_steps": 2,
                      "checkpoint_every": 2, "head_conv_layers": 0}


def write_detection_run(directory, model_type="sact", **settings):
  """Writes a detection run directory as `detection_run.train` does.

  Its detector has random halting (varying over images and positions), a
  tame box head (deltas near 0: boxes near their anchors) and a class head
  whose scores spread below 1 (a few dozen detections above the 0.05
  threshold per image, no ties at 1.0) instead of training.

  Returns:
    `(detector, config)`: the detector (dense execution) whose weights
    were saved, and the run configuration.
  """
  config = detection_run.make_config(dict(TINY_DETECTION_RUN,
                                          model_type=model_type, **settings))
  keras.utils.set_random_seed(0)
  detector = detection_run.build_detector(config)
  if model_type != "vanilla":
    randomize_halting(detector.backbone.image_encoder.resnet)
  kernel = detector.box_head.prediction_layer.kernel
  kernel.assign(kernel * 1e-3)
  head = detector.classification_head.prediction_layer
  head.kernel.assign(head.kernel * 0.1)
  head.bias.assign(tf.fill(head.bias.shape, -7.0))
  directory.mkdir(parents=True, exist_ok=True)
  run_config.write_config(str(directory), config)
  step = tf.Variable(config["max_number_of_steps"], dtype=tf.int64,
                     name="global_step")
  tf.train.CheckpointManager(
      checkpoint_io.make_checkpoint(detector, global_step=step),
      str(directory), 1, checkpoint_name=checkpoint_io.CHECKPOINT_NAME).save(
          config["max_number_of_steps"])
  return detector, config


def exported_detector(tmp_path_factory):
  """A tiny SACT detection run and its SavedModel, made once per session.

  Returns:
    `(detector, run_dir, version_dir)`; `detector` runs densely, the
    export sparsely.
  """
  key = ("detection", "sact")
  if key not in _EXPORTS:
    base = tmp_path_factory.mktemp("detection_sact")
    detector, _ = write_detection_run(base / "run", "sact")
    path, _ = saved_model.export_checkpoint(str(base / "run"),
                                            str(base / "models"))
    _EXPORTS[key] = (detector, base / "run", path)
  return _EXPORTS[key]
