"""Import of the original release's TF1 / TF-Slim checkpoints.

The layers of sact_tf are named after the original's variable scopes, so a
model variable's path relative to the model, prefixed with the original's
top scope (`resnet_residual` for CIFAR, `resnet_v2` for ImageNet), is the
original checkpoint key: `resnet_v2/block1/unit_1/bottleneck_v2/conv1/weights`,
`resnet_residual/block_1/unit_2/halting_proba/local_conv/biases`, ...
"""

import re

import tensorflow as tf

from sact_tf.models.cifar_resnet import CifarResNet
from sact_tf.models.imagenet_resnet import ImageNetResNet

SCOPES = {CifarResNet: "resnet_residual", ImageNetResNet: "resnet_v2"}
# Training state that original checkpoints hold besides the model variables.
_TRAINING_STATE = re.compile(
    r"(^|/)(global_step|beta[12]_power)$|/(Momentum|RMSProp(_1)?|Adam(_1)?|"
    r"ExponentialMovingAverage)$")
_EMA_SUFFIX = "/ExponentialMovingAverage"
_MAX_LISTED = 8


def _step(prefix):
  match = re.search(r"-(\d+)$", prefix)
  return int(match.group(1)) if match else -1


def resolve_checkpoint(path):
  """A checkpoint prefix from a prefix or a directory; raises if none.

  In a directory, the one its `checkpoint` state file names, else the
  `*.index` file with the highest `-<step>` suffix.
  """
  if tf.io.gfile.isdir(path):
    prefix = tf.train.latest_checkpoint(path)
    if prefix is None:
      prefixes = [p[:-len(".index")] for p in
                  tf.io.gfile.glob(path.rstrip("/") + "/*.index")]
      if not prefixes:
        raise ValueError(f"no checkpoint found in directory {path!r}")
      prefix = max(prefixes, key=lambda p: (_step(p), p))
    return prefix
  if not tf.io.gfile.exists(path + ".index"):
    raise ValueError(f"no checkpoint at {path!r} (no {path}.index)")
  return path


def original_variable_names(model):
  """Maps every original checkpoint key to the model variable it feeds.

  Args:
    model: a built `CifarResNet` or `ImageNetResNet`.

  Returns:
    dict `{original name: keras.Variable}`.
  """
  scope = next((s for cls, s in SCOPES.items() if isinstance(model, cls)),
               None)
  if scope is None:
    raise ValueError(f"expected a CifarResNet or ImageNetResNet, received "
                     f"{type(model).__name__}")
  prefix = model.path + "/"
  names = {}
  for variable in model.variables:
    if not variable.path.startswith(prefix):
      raise ValueError(f"variable {variable.path!r} is outside the model "
                       f"scope {model.path!r}")
    names[scope + "/" + variable.path[len(prefix):]] = variable
  return names


def _listed(names):
  names = sorted(names)
  more = len(names) - _MAX_LISTED
  return ", ".join(names[:_MAX_LISTED]) + (f" (and {more} more)" if more > 0
                                           else "")


def load_original_checkpoint(model, checkpoint_path,
                             use_moving_averages=False):
  """Loads every variable of an original release checkpoint into `model`.

  Training state in the checkpoint (`global_step`, optimizer slots such as
  `.../Momentum`, moving averages `.../ExponentialMovingAverage`) is not a
  model variable and is skipped; everything else must match one to one.

  Args:
    model: `CifarResNet` or `ImageNetResNet` of the checkpoint's
      architecture; built here (with an unknown image size) if it is not.
    checkpoint_path: str, a checkpoint prefix (`.../model.ckpt-12345`) or a
      directory holding checkpoints (the latest is used).
    use_moving_averages: bool. Load the exponential moving averages of the
      weights where the checkpoint has them (what the original's training
      kept with decay 0.9999). Defaults to False.

  Returns:
    The checkpoint prefix that was loaded.

  Raises:
    ValueError: no checkpoint there; or variables missing from the
      checkpoint, unexpected in it, or of another shape (each named), e.g.
      for a checkpoint of another architecture.
  """
  prefix = resolve_checkpoint(checkpoint_path)
  if not model.built:
    model.build((None, None, None, 3))
  reader = tf.train.load_checkpoint(prefix)
  shapes = reader.get_variable_to_shape_map()
  stored = {k for k in shapes if not _TRAINING_STATE.search(k)}
  expected = original_variable_names(model)
  missing = set(expected) - stored
  unexpected = stored - set(expected)
  mismatched = [
      f"{k} {shapes[k]} vs model {list(expected[k].shape)}"
      for k in sorted(stored & set(expected))
      if list(shapes[k]) != list(expected[k].shape)]
  problems = []
  if missing:
    problems.append(f"{len(missing)} missing from the checkpoint: "
                    f"{_listed(missing)}")
  if unexpected:
    problems.append(f"{len(unexpected)} unexpected in the checkpoint: "
                    f"{_listed(unexpected)}")
  if mismatched:
    problems.append(f"{len(mismatched)} of another shape: "
                    f"{_listed(mismatched)}")
  if problems:
    raise ValueError(
        f"checkpoint {prefix!r} does not match {model.name!r} "
        f"({type(model).__name__}, model={model.model!r}, "
        f"model_type={model.model_type!r}, base_channels="
        f"{model.base_channels}, num_classes={model.num_classes}): "
        + "; ".join(problems))
  for name, variable in expected.items():
    key = name
    if use_moving_averages and name + _EMA_SUFFIX in shapes:
      key = name + _EMA_SUFFIX
    variable.assign(reader.get_tensor(key))
  return prefix


def infer_architecture(checkpoint_path):
  """Reads the architecture of an original checkpoint from its variables.

  Args:
    checkpoint_path: str, a checkpoint prefix or directory.

  Returns:
    dict with `family` (`"cifar"` or `"imagenet"`) and the keyword arguments
    of `cifar_resnet` / `imagenet_resnet`: `model` (`"a_b_c[_d]"`),
    `num_classes`, `model_type` (`"vanilla"`, `"act"` or `"sact"`; ACT
    checkpoints serve `"act_early_stopping"` too) and `base_channels`.

  Raises:
    ValueError: the checkpoint is not one of the original's networks.
  """
  prefix = resolve_checkpoint(checkpoint_path)
  shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  names = [k for k in shapes if not _TRAINING_STATE.search(k)]
  scopes = {k.split("/")[0] for k in names}
  families = {"resnet_residual": "cifar", "resnet_v2": "imagenet"}
  if len(scopes) != 1 or not scopes <= set(families):
    raise ValueError(
        f"checkpoint {prefix!r} is not an original SACT ResNet: top scopes "
        f"{sorted(scopes)}, expected one of {sorted(families)}")
  scope = scopes.pop()
  family = families[scope]
  block_re = re.compile(rf"^{scope}/(block_?\d+)/unit_(\d+)/")
  units = {}
  for name in names:
    match = block_re.match(name)
    if match:
      block, unit = match.group(1), int(match.group(2))
      units[block] = max(units.get(block, 0), unit)
  blocks = sorted(units, key=lambda b: int(re.sub(r"\D", "", b)))
  if any("/local_conv/" in n for n in names):
    model_type = "sact"
  elif any("/halting_proba/" in n for n in names):
    model_type = "act"
  else:
    model_type = "vanilla"
  logits = shapes.get(f"{scope}/logits/weights")
  if family == "cifar":
    conv = shapes.get(f"{scope}/Conv/weights")
    base_channels = conv[-1] if conv else None
  else:
    conv = shapes.get(f"{scope}/block1/unit_1/bottleneck_v2/conv1/weights")
    base_channels = conv[-1] if conv else None
  if not blocks or logits is None or base_channels is None:
    raise ValueError(f"checkpoint {prefix!r} lacks the root, logits or "
                     f"block variables of an original SACT ResNet")
  return {"family": family, "model": "_".join(str(units[b]) for b in blocks),
          "num_classes": int(logits[-1]), "model_type": model_type,
          "base_channels": int(base_channels)}
