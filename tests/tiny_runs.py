"""Run directories of tiny models (config.json + a TF2 checkpoint) for tests.

The halting branches get random weights, so that SACT halting varies across
images and positions (freshly initialised heads halt everywhere alike).
"""

import keras
import numpy as np
import tensorflow as tf

from sact_tf.export import saved_model
from sact_tf.training import checkpoint_io
from sact_tf.training import run_config

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


def randomize_halting(model, seed=0):
  rng = np.random.default_rng(seed)
  for v in model.variables:
    if "halting_proba" in v.path and v.path.endswith("biases"):
      v.assign(np.zeros(v.shape, np.float32))
    elif "halting_proba" in v.path and v.path.endswith("weights"):
      v.assign(rng.normal(0.0, 1.0, v.shape).astype(np.float32))


def write_run(directory, family="imagenet", model_type="sact", depth=None,
              **config):
  """Writes a run directory (a `pathlib.Path`); returns its model.

  Args:
    directory: pathlib.Path, created if needed.
    family: str, a key of `CONFIGS`.
    model_type: str.
    depth: str or None, overrides the `model` depth string.
    **config: overrides of the other `config.json` keys.

  Returns:
    The model (built, dense execution) whose weights were saved.
  """
  config = dict(CONFIGS[family], **config)
  config["model_kwargs"] = dict(config["model_kwargs"], model_type=model_type)
  if depth:
    config["model_kwargs"]["model"] = depth
  directory.mkdir(parents=True, exist_ok=True)
  run_config.write_config(str(directory), config)
  # Seeded, so that whether halting varies does not depend on the draw.
  keras.utils.set_random_seed(0)
  model = run_config.build_model(config)
  model.build((None, None, None, 3))
  randomize_halting(model)
  checkpoint = checkpoint_io.make_checkpoint(
      model, global_step=tf.Variable(1, dtype=tf.int64))
  tf.train.CheckpointManager(checkpoint, str(directory), 1,
                             checkpoint_name="ckpt").save(1)
  return model


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
