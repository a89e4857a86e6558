"""Checkpoints of training runs, and restoring a model for evaluation.

A run directory (`--train_log_dir`) holds `config.json` (see
`sact_tf.training.run_config`) and TF2 object-based checkpoints
`ckpt-<step>.{index,data-*}` of a `tf.train.Checkpoint` with the objects
`model` (the model's variables keyed by their paths inside the model,
`block_1/unit_2/residual/conv1/weights`, ..., so checkpoints do not depend
on how the layers hold their sublayers), `optimizer`, `global_step` and,
when the run keeps moving averages of the weights, `ema`
(`ExponentialMovingAverage`).
"""

import os
import re

import keras
import tensorflow as tf

from sact_tf import checkpoints
from sact_tf import models
from sact_tf.training import run_config
from sact_tf.training.exponential_moving_average import (
    ExponentialMovingAverage)

CHECKPOINT_NAME = "ckpt"
# What `restore_model` assumes for an original release checkpoint.
ORIGINAL_DATASETS = {"cifar": ("cifar10", 32), "imagenet": ("imagenet2012",
                                                             224)}
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def _unescape(name):
  """Inverts TF's escaping of dependency names in keys ('/' is '.S')."""
  return re.sub(r"\.(.)", lambda m: "/" if m.group(1) == "S" else m.group(1),
                name)


def model_variables(model):
  """`{path inside the model: variable}` for every variable of `model`."""
  prefix = model.path + "/"
  return {v.path[len(prefix):] if v.path.startswith(prefix) else v.path: v
          for v in model.variables}


def make_checkpoint(model, optimizer=None, ema=None, global_step=None):
  """The `tf.train.Checkpoint` of a run (objects that are None are left out)."""
  objects = {"model": model_variables(model), "optimizer": optimizer,
             "ema": ema, "global_step": global_step}
  return tf.train.Checkpoint(
      **{k: v for k, v in objects.items() if v is not None})


def is_original_checkpoint(prefix):
  """True for a TF1 (name-based) checkpoint such as the original release's."""
  keys = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  return _OBJECT_GRAPH_KEY not in keys


def find_checkpoint(path):
  """The checkpoint prefix of a directory (its latest) or of a prefix.

  Raises:
    ValueError: `path` does not exist, or holds no checkpoint.
  """
  if not path:
    raise ValueError("no checkpoint directory given")
  if not tf.io.gfile.exists(path) and not tf.io.gfile.exists(
      path + ".index"):
    raise ValueError(f"checkpoint path {path!r} does not exist")
  return checkpoints.resolve_checkpoint(path)


def _global_step(prefix):
  reader = tf.train.load_checkpoint(prefix)
  for key in ("global_step/.ATTRIBUTES/VARIABLE_VALUE", "global_step"):
    if reader.has_tensor(key):
      return int(reader.get_tensor(key))
  return None


def _stored_model_keys(reader):
  """`{path inside the model: checkpoint key}` of a run checkpoint."""
  return {_unescape(k[len("model/"):-len(_VALUE_SUFFIX)]): k
          for k in reader.get_variable_to_shape_map()
          if k.startswith("model/") and k.endswith(_VALUE_SUFFIX)}


def _read_run_checkpoint(model, prefix, config):
  """Reads a run checkpoint into `model` (its EMA when `config["use_ema"]`)."""
  reader = tf.train.load_checkpoint(prefix)
  ema = ExponentialMovingAverage(model.variables) if config["use_ema"] else None
  if ema is not None and not reader.has_tensor(
      "ema/averages/0" + _VALUE_SUFFIX):
    raise ValueError(f"checkpoint {prefix!r} holds no moving averages of the "
                     f"weights (trained with moving_average_decay=0); "
                     f"evaluate it with use_ema=False")
  mismatch = (f"checkpoint {prefix!r} does not match its config.json "
              f"(model_kwargs {config['model_kwargs']})")
  stored = set(_stored_model_keys(reader))
  expected = set(model_variables(model))
  if stored != expected:
    raise ValueError(
        f"{mismatch}: {len(expected - stored)} variables missing "
        f"{sorted(expected - stored)[:4]}, {len(stored - expected)} "
        f"unexpected {sorted(stored - expected)[:4]}")
  try:
    make_checkpoint(model, ema=ema).read(
        prefix).expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    raise ValueError(
        f"{mismatch}: {str(e).strip().splitlines()[0]}") from e
  if ema is not None:
    ema.copy_to_variables()


def _restore_trained(prefix, use_ema, execution):
  config = run_config.read_config(os.path.dirname(prefix))
  if use_ema is None:
    use_ema = bool(config.get("eval_use_ema", False))
  config = dict(config, use_ema=bool(use_ema))
  model = run_config.build_model(config, execution)
  model.build((None, None, None, 3))
  _read_run_checkpoint(model, prefix, config)
  return model, config


def _restore_original(prefix, use_ema, execution):
  arch = checkpoints.infer_architecture(prefix)
  family = arch.pop("family")
  model = run_config.BUILDERS[family](execution=execution or "dense", **arch)
  checkpoints.load_original_checkpoint(model, prefix,
                                       use_moving_averages=bool(use_ema))
  dataset, image_size = ORIGINAL_DATASETS[family]
  config = {"family": family, "model_kwargs": run_config.model_kwargs(model),
            "dataset": dataset, "image_size": image_size,
            "eval_use_ema": False, "original_checkpoint": True,
            "use_ema": bool(use_ema)}
  return model, config


def restore_model(checkpoint_dir, use_ema=None, execution=None):
  """Rebuilds and restores the model of a checkpoint, ready for inference.

  Args:
    checkpoint_dir: str. A run directory of `tools/train.py` (its latest
      checkpoint) or one of its checkpoint prefixes (`DIR/ckpt-1000`); or
      a directory or prefix holding a checkpoint of the original TF1
      release, whose architecture is read from its variables
      (`checkpoints.infer_architecture`).
    use_ema: bool or None. Load the exponential moving averages of the
      weights. None: what the run's configuration evaluates
      (`eval_use_ema`; False for original checkpoints, whose published
      accuracies are those of the raw weights).
    execution: str or None. Overrides the model's `execution`
      (`"dense"` or `"sparse"`).

  Returns:
    `(model, config)`: the built model with its weights restored, and the
    run configuration (`config.json`'s keys, see `run_config`; for an
    original checkpoint `family`, `model_kwargs`, `dataset`, `image_size`,
    `eval_use_ema` and `original_checkpoint: True`) with `checkpoint` (the
    prefix restored), `global_step` (int or None) and `use_ema` added.

  Raises:
    ValueError: the path does not exist or holds no checkpoint; a run
      checkpoint without `config.json`; `use_ema` without averages; a
      checkpoint that does not match its configuration.
  """
  prefix = find_checkpoint(checkpoint_dir)
  if is_original_checkpoint(prefix):
    model, config = _restore_original(prefix, use_ema, execution)
  else:
    model, config = _restore_trained(prefix, use_ema, execution)
  config.update(checkpoint=prefix, global_step=_global_step(prefix))
  return model, config


def load_weights(model, prefix, config):
  """Loads checkpoint `prefix` into a built `model` of the same run.

  For evaluating checkpoint after checkpoint with one model. `config` is
  what `restore_model` returned for an earlier checkpoint of the same run
  (its `use_ema` and `original_checkpoint` are followed).
  """
  if config.get("original_checkpoint"):
    checkpoints.load_original_checkpoint(
        model, prefix, use_moving_averages=config["use_ema"])
  else:
    _read_run_checkpoint(model, prefix, config)
  return dict(config, checkpoint=prefix, global_step=_global_step(prefix))


def load_keras_model(path):
  """A `CifarResNet` or `ImageNetResNet` saved as a `.keras` file.

  Raises:
    ValueError: one line: the file is missing or unreadable, or holds
      another model.
  """
  if not os.path.isfile(path):
    raise ValueError(f"{path} does not exist")
  try:
    model = keras.saving.load_model(path, compile=False)
  except (OSError, ValueError, TypeError, KeyError) as e:
    reason = str(e).strip().splitlines()[0] if str(e) else type(e).__name__
    raise ValueError(f"cannot load {path}: {reason}") from e
  if not isinstance(model, (models.CifarResNet, models.ImageNetResNet)):
    raise ValueError(f"{path} holds a {type(model).__name__}, expected a "
                     f"CifarResNet or ImageNetResNet")
  return model


def _source_values(path, model):
  """`{path inside the model: numpy value}` of a checkpoint or .keras file."""
  if path.endswith(".keras"):
    if not os.path.isfile(path):
      raise ValueError(f"--finetune_path {path!r} does not exist")
    source = load_keras_model(path)
    return {k: v.numpy() for k, v in model_variables(source).items()}
  prefix = find_checkpoint(path)
  reader = tf.train.load_checkpoint(prefix)
  keys = reader.get_variable_to_shape_map()
  if is_original_checkpoint(prefix):
    scope = checkpoints.SCOPES.get(type(model), "")
    return {k[len(scope) + 1:]: reader.get_tensor(k) for k in keys
            if k.startswith(scope + "/")}
  return {name: reader.get_tensor(key)
          for name, key in _stored_model_keys(reader).items()}


def initialize_from(model, path, load_halting=False):
  """Fine-tuning: loads every non-halting variable of `model` from `path`.

  As the original's `finetuning_init_fn`: the halting branches (variables
  with `halting` in their path) keep their fresh initialization, so an ACT
  or SACT model starts from a vanilla network. With `load_halting` the
  halting variables that `path` holds are loaded too (a detection backbone
  starting from a trained SACT classifier, as in the paper's section 5.3).
  Variables are matched by their path inside the model, so a model without
  its head (`include_head=False`) loads from a classifier.

  Args:
    model: a built model.
    path: str. A `.keras` file, a run directory or checkpoint prefix of
      `tools/train.py`, or a directory or prefix of an original release
      checkpoint (TF1).
    load_halting: bool. Also load the halting variables found in `path`.
      Defaults to False.

  Returns:
    The number of variables loaded.

  Raises:
    ValueError: the path does not exist or holds no checkpoint; variables
      missing from it or of another shape (named).
  """
  values = _source_values(path, model)
  targets = {k: v for k, v in model_variables(model).items()
             if "halting" not in k or (load_halting and k in values)}
  missing = sorted(set(targets) - set(values))
  mismatched = sorted(
      f"{k} {list(values[k].shape)} vs model {list(v.shape)}"
      for k, v in targets.items()
      if k in values and tuple(values[k].shape) != tuple(v.shape))
  if missing or mismatched:
    raise ValueError(
        f"--finetune_path {path!r} does not fit the model: "
        f"{len(missing)} variables missing {missing[:4]}, {len(mismatched)} "
        f"of another shape {mismatched[:4]}")
  for key, variable in targets.items():
    variable.assign(values[key])
  return len(targets)
