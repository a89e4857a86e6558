"""The configuration a training run saves next to its checkpoints.

`<train_log_dir>/config.json` holds everything needed to rebuild the model
and evaluate it, so `tools/evaluate.py --checkpoint_dir=DIR` and the export
tools need no other flag. Keys:

* `family`: `"cifar"` or `"imagenet"` (which builder and preprocessing).
* `model_kwargs`: keyword arguments of `models.cifar_resnet` /
  `models.imagenet_resnet`: `model`, `num_classes`, `model_type`,
  `base_channels`, `tau`, `eps`, `weight_decay`, `execution`.
* `dataset`, `dataset_dir`, `tfds_data_dir`, `image_size`, `train_split`,
  `eval_split`: the data (see `sact_tf.data.datasets`).
* `eval_use_ema`: bool, evaluate the exponential moving averages of the
  weights (kept when `moving_average_decay > 0`).
* the training hyper-parameters: `batch_size`, `max_number_of_steps`,
  `learning_rate`, `learning_rate_decay_factor`, `learning_rate_boundaries`,
  `num_epochs_per_decay`, `momentum`, `label_smoothing`,
  `moving_average_decay`, `finetune_path`, `strategy`, `config` (the
  preset), `seed`.
"""

import json
import os

from sact_tf import models
from sact_tf.utils import files

CONFIG_FILE = "config.json"
BUILDERS = {"cifar": models.cifar_resnet, "imagenet": models.imagenet_resnet}


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
