"""The configuration a training run saves next to its checkpoints.

`<train_log_dir>/config.json` holds everything needed to rebuild the model
and evaluate it, so `tools/evaluate.py --checkpoint_dir=DIR` and the export
tools need no other flag. Keys:

* `family`: `"cifar"` or `"imagenet"` (which builder and preprocessing).
* `model_kwargs`: keyword arguments of `models.cifar_resnet` /
  `models.imagenet_resnet`: `model`, `num_classes`, `model_type`,
  `base_channels`, `tau`, `eps`, `weight_decay`, `execution`,
  `stochastic_depth` when below 1 (so runs without it keep their config),
  and for `model_type="sampling"` `sparse_loss_weight`.
* `dataset`, `dataset_dir`, `tfds_data_dir`, `image_size`, `train_split`,
  `eval_split`: the data (see `sact_tf.data.datasets`).
* `eval_use_ema`: bool, evaluate the exponential moving averages of the
  weights (kept when `moving_average_decay > 0`).
* the training hyper-parameters: `batch_size`, `max_number_of_steps`,
  `learning_rate`, `learning_rate_decay_factor`, `learning_rate_boundaries`,
  `num_epochs_per_decay`, `momentum`, `label_smoothing`,
  `moving_average_decay`, `finetune_path`, `strategy`, `config` (the
  preset), `seed`.

`make_config` fills in the defaults: those of the original's
`cifar_main.py` for CIFAR-style data, of `imagenet_train.py` for ImageNet.
"""

import json
import os

from sact_tf import act
from sact_tf import models
from sact_tf.data import datasets
from sact_tf.models.cifar_resnet import WEIGHT_DECAY as CIFAR_WEIGHT_DECAY
from sact_tf.models.imagenet_resnet import (
    WEIGHT_DECAY as IMAGENET_WEIGHT_DECAY)
from sact_tf.utils import files

CONFIG_FILE = "config.json"
# The presets of `--config`.
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          os.pardir, os.pardir, "configs")
PRESET_EXTRA_KEYS = ("description",)
BUILDERS = {"cifar": models.cifar_resnet, "imagenet": models.imagenet_resnet}


def load_preset(name):
  """The settings of a preset: `configs/<name>.json` or a JSON file."""
  path = name if name.endswith(".json") else os.path.join(
      CONFIG_DIR, name + ".json")
  if not os.path.isfile(path):
    known = sorted(f[:-5] for f in os.listdir(CONFIG_DIR)
                   if f.endswith(".json"))
    raise ValueError(f"unknown --config {name!r}; presets: {', '.join(known)}")
  try:
    with open(path, encoding="utf-8") as f:
      preset = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"--config {path} is not valid JSON: {e}") from e
  for key in PRESET_EXTRA_KEYS:
    preset.pop(key, None)
  return preset


def settings_from_flags(flag_values, keys, flag_names=None):
  """The `--config` preset's settings, overridden by the flags given.

  Args:
    flag_values: absl's `FLAGS` of a training tool (with a `config` flag).
    keys: the setting names to read.
    flag_names: dict or None, `{flag name: setting name}` where they differ.

  Returns:
    dict of settings (the preset's, then each flag given on the command
    line; `config` itself among them when it is in `keys`).
  """
  settings = load_preset(flag_values.config) if flag_values.config else {}
  names = {v: k for k, v in (flag_names or {}).items()}
  for key in keys:
    flag = names.get(key, key)
    if flag in flag_values and flag_values[flag].present:
      settings[key] = flag_values[flag].value
  return settings


def config_path(directory):
  return os.path.join(directory, CONFIG_FILE)


def write_config(directory, config):
  """Writes `config` (a JSON-serializable dict) atomically to the run dir."""
  path = config_path(directory)
  with files.atomic_output(path, overwrite=True) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(config, f, indent=2, sort_keys=True)
      f.write("\n")


def read_config(directory):
  """Reads `<directory>/config.json`; ValueError if it is missing or bad."""
  path = config_path(directory)
  if not os.path.isfile(path):
    raise ValueError(f"no {CONFIG_FILE} in {directory!r}: not a run "
                     f"directory of tools/train.py")
  try:
    with open(path, encoding="utf-8") as f:
      config = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON: {e}") from e
  missing = {"family", "model_kwargs", "image_size"} - set(config)
  if missing:
    raise ValueError(f"{path} lacks the keys {sorted(missing)}")
  if config["family"] not in BUILDERS:
    raise ValueError(f"{path}: family must be one of {sorted(BUILDERS)}, "
                     f"received {config['family']!r}")
  return config


def build_model(config, execution=None):
  """The (unbuilt) model of a run configuration.

  Args:
    config: dict with `family` and `model_kwargs`.
    execution: str or None, overrides `model_kwargs["execution"]`.

  Returns:
    `CifarResNet` or `ImageNetResNet`.
  """
  kwargs = dict(config["model_kwargs"])
  if execution is not None:
    kwargs["execution"] = execution
  return BUILDERS[config["family"]](**kwargs)


def model_kwargs(model):
  """The builder keyword arguments of a model (its config less the name)."""
  kwargs = model.get_config()
  for key in ("name", "trainable"):
    kwargs.pop(key, None)
  return kwargs


# The original's defaults: `cifar_main.py` for CIFAR-style data (also the
# offline default), `imagenet_train.py` for ImageNet.
FAMILY_DEFAULTS = {
    "cifar": {"model": "5", "base_channels": 16, "batch_size": 128,
              "max_number_of_steps": 100000, "learning_rate": 0.1,
              "learning_rate_boundaries": [60000, 75000, 90000],
              "num_epochs_per_decay": None, "label_smoothing": 0.0,
              "moving_average_decay": 0.0,
              "weight_decay": CIFAR_WEIGHT_DECAY},
    "imagenet": {"model": "101", "base_channels": 64, "batch_size": 32,
                 "max_number_of_steps": 0, "learning_rate": 0.05,
                 "learning_rate_boundaries": None,
                 "num_epochs_per_decay": 30.0, "label_smoothing": 0.1,
                 "moving_average_decay": 0.9999,
                 "weight_decay": IMAGENET_WEIGHT_DECAY},
}
COMMON_DEFAULTS = {
    "dataset": "cluttered_digits", "dataset_dir": None, "tfds_data_dir": None,
    "tfds_manual_dir": None, "train_split": "train", "eval_split": None,
    "image_size": None, "model_type": "vanilla", "tau": 1.0,
    "eps": act.DEFAULT_EPS, "execution": "dense",
    "learning_rate_decay_factor": 0.1, "momentum": 0.9,
    "finetune_path": None, "strategy": "default", "seed": None,
    "config": None, "stochastic_depth": 1.0, "sparse_loss_weight": None,
}
# The sampling family's sparse loss weight when none is given.
DEFAULT_SPARSE_LOSS_WEIGHT = 0.1
SETTINGS = sorted(set(COMMON_DEFAULTS) | set(FAMILY_DEFAULTS["cifar"]))
_MODEL_KEYS = ("model", "model_type", "base_channels", "tau", "eps",
               "weight_decay", "execution")


def check_tau_and_finetune_path(config):
  """ValueError unless `config["tau"] >= 0` and its `finetune_path` exists."""
  if config["tau"] < 0:
    raise ValueError(f"--tau must be >= 0, received {config['tau']!r}")
  finetune = config["finetune_path"]
  if finetune and not (os.path.exists(finetune) or
                       os.path.exists(finetune + ".index")):
    raise ValueError(f"--finetune_path {finetune!r} does not exist")


def make_config(settings):
  """The full run configuration from the given settings and the defaults.

  Args:
    settings: dict of `SETTINGS` keys (the train tool's flags, a preset),
      those absent or None taking the defaults of the dataset's family (the
      original's `cifar_main.py` / `imagenet_train.py`).

  Returns:
    The configuration dict saved as `config.json` (see the module).

  Raises:
    ValueError: an unknown setting or dataset, or a bad value (named).
  """
  unknown = set(settings) - set(SETTINGS)
  if unknown:
    raise ValueError(f"unknown settings {sorted(unknown)}; known: "
                     f"{', '.join(SETTINGS)}")
  given = {k: v for k, v in settings.items() if v is not None}
  spec = datasets.info(given.get("dataset", COMMON_DEFAULTS["dataset"]))
  family = spec["family"]
  config = dict(COMMON_DEFAULTS, **FAMILY_DEFAULTS[family])
  config.update(given)
  if "learning_rate_boundaries" in given and "num_epochs_per_decay" not in (
      given):
    config["num_epochs_per_decay"] = None
  if "num_epochs_per_decay" in given and "learning_rate_boundaries" not in (
      given):
    config["learning_rate_boundaries"] = None
  config["image_size"] = config["image_size"] or spec["image_size"]
  config["eval_split"] = config["eval_split"] or spec["eval_split"]
  for key in ("batch_size", "image_size"):
    if not isinstance(config[key], int) or config[key] < 1:
      raise ValueError(f"--{key} must be a positive integer, received "
                       f"{config[key]!r}")
  if not isinstance(config["max_number_of_steps"], int) or config[
      "max_number_of_steps"] < 0:
    raise ValueError(f"--max_number_of_steps must be >= 0 (0: no limit), "
                     f"received {config['max_number_of_steps']!r}")
  if not 0 <= config["moving_average_decay"] < 1:
    raise ValueError(f"--moving_average_decay must be in [0, 1), received "
                     f"{config['moving_average_decay']!r}")
  sampling_run = config["model_type"] == "sampling"
  if config["sparse_loss_weight"] is not None and not sampling_run:
    raise ValueError(f"--sparse_loss_weight applies to --model_type=sampling, "
                     f"received --model_type={config['model_type']!r}")
  weight = config.pop("sparse_loss_weight")
  if weight is not None and weight < 0:
    raise ValueError(f"--sparse_loss_weight must be >= 0, received {weight!r}")
  check_tau_and_finetune_path(config)
  kwargs = dict({k: config.pop(k) for k in _MODEL_KEYS},
                num_classes=spec["num_classes"])
  stochastic_depth = config.pop("stochastic_depth")
  if stochastic_depth != 1:
    kwargs["stochastic_depth"] = stochastic_depth
  if sampling_run:
    kwargs["sparse_loss_weight"] = (
        DEFAULT_SPARSE_LOSS_WEIGHT if weight is None else weight)
  config.update(family=family,
                eval_use_ema=config["moving_average_decay"] > 0,
                model_kwargs=kwargs)
  build_model(config)  # Validates the model arguments.
  return config
