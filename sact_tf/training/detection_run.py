"""Detection runs: configuration, data, training with `fit`, evaluation.

A run directory (`--train_log_dir`) holds `config.json` (the keys of
`DEFAULTS` plus `backbone_kwargs`) and TF2 checkpoints `ckpt-<step>` of the
detector's variables (keyed by their paths), the optimizer and the step,
written every `checkpoint_every` steps, so a killed run resumes from its
latest checkpoint and evaluation needs only the directory.
"""

import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from sact_tf import act
from sact_tf.data import boxes as box_ops
from sact_tf.data import digit_scenes
from sact_tf.detection import coco_evaluation
from sact_tf.detection import detector as detector_lib
from sact_tf.models.imagenet_resnet import WEIGHT_DECAY
from sact_tf.training import checkpoint_io
from sact_tf.training import run_config
from sact_tf.utils import files

DATASETS = {"digit_scenes": digit_scenes}
DEFAULTS = {
    "dataset": "digit_scenes", "model": "1_1_1_1", "model_type": "vanilla",
    "base_channels": 16, "tau": 0.01, "eps": act.DEFAULT_EPS,
    "weight_decay": WEIGHT_DECAY, "execution": "dense", "min_level": 3,
    "max_level": 5, "anchor_size": 2.0, "head_conv_layers": 2,
    "fpn_batch_norm": True,
    "batch_size": 16, "max_number_of_steps": 1000, "learning_rate": 1e-3,
    "flip": False, "finetune_path": None, "checkpoint_every": 100,
    "seed": 0, "config": None,
}
_BACKBONE_KEYS = ("model", "model_type", "base_channels", "tau", "eps",
                  "weight_decay", "execution")
_STEP = "global_step"


def make_config(settings):
  """The run configuration from the given settings (None: default)."""
  unknown = set(settings) - set(DEFAULTS)
  if unknown:
    raise ValueError(f"unknown settings {sorted(unknown)}; known: "
                     f"{', '.join(sorted(DEFAULTS))}")
  config = dict(DEFAULTS, **{k: v for k, v in settings.items()
                             if v is not None})
  if config["dataset"] not in DATASETS:
    raise ValueError(f"--dataset must be one of {sorted(DATASETS)}, received "
                     f"{config['dataset']!r}")
  for key in ("batch_size", "max_number_of_steps", "checkpoint_every"):
    if not isinstance(config[key], int) or config[key] < 1:
      raise ValueError(f"--{key} must be a positive integer, received "
                       f"{config[key]!r}")
  run_config.check_tau_and_finetune_path(config)
  module = DATASETS[config["dataset"]]
  config.update(num_classes=module.NUM_CLASSES,
                image_size=module.CANVAS_SIZE,
                backbone_kwargs={k: config.pop(k) for k in _BACKBONE_KEYS})
  build_detector(config)  # Validates the model arguments.
  return config


def build_detector(config, execution=None):
  """The detector of a run configuration, built on `image_size` inputs."""
  kwargs = dict(config["backbone_kwargs"])
  if execution is not None:
    kwargs["execution"] = execution
  detector = detector_lib.build_detector(
      config["num_classes"], kwargs, config["min_level"], config["max_level"],
      config["anchor_size"], config["head_conv_layers"],
      config["fpn_batch_norm"])
  size = config["image_size"]
  detector(tf.zeros((1, size, size, 3)))
  return detector


def load_split(config, split, num_examples=None):
  """Images (uint8), boxes and labels of a split, checked."""
  data = DATASETS[config["dataset"]].load(split)
  n = num_examples or len(data["image"])
  box_ops.check_annotations(data["boxes"][:n], data["labels"][:n],
                            data["image"].shape[1:3], config["num_classes"],
                            name=f"{config['dataset']}/{split}")
  return data["image"][:n], data["boxes"][:n], data["labels"][:n]


def train_dataset(config):
  """Shuffled, repeated batches `(images, {"boxes", "labels"})`."""
  images, boxes, labels = load_split(config, "train")
  dataset = tf.data.Dataset.from_tensor_slices(
      (images, boxes, labels.astype(np.float32)))
  dataset = dataset.shuffle(len(images), seed=config["seed"]).repeat()

  def example(image, box, label):
    image = box_ops.scale_images(image)
    if config["flip"]:
      image, box = box_ops.random_flip_left_right(image, box)
    return image, {"boxes": box, "labels": label}

  return dataset.map(example).batch(config["batch_size"],
                                    drop_remainder=True).prefetch(2)


class _Checkpoints(keras.callbacks.Callback):
  """Saves every `every` steps and at the end; prints progress with ETA."""

  def __init__(self, manager, step, every, total):
    super().__init__()
    self.manager, self.step, self.every, self.total = (manager, step, every,
                                                       total)
    self.start = None
    self.first = None

  def on_train_begin(self, logs=None):
    self.start, self.first = time.time(), int(self.step.numpy())

  def on_train_batch_end(self, batch, logs=None):
    step = int(self.step.assign_add(1).numpy())
    if step % self.every == 0 or step == self.total:
      self.manager.save(step)
      rate = (step - self.first) / max(time.time() - self.start, 1e-9)
      eta = (self.total - step) / rate if rate else float("nan")
      print(f"step {step}/{self.total}  loss {logs['loss']:.4f}  "
            f"{rate:.2f} steps/s  ETA {eta:.0f} s", flush=True)
    if step >= self.total:
      self.model.stop_training = True


def train(config, train_log_dir):
  """Trains (or resumes) a run; returns `(detector, final step)`."""
  os.makedirs(train_log_dir, exist_ok=True)
  path = run_config.config_path(train_log_dir)
  if os.path.exists(path):
    # More steps may be asked for; nothing else may change.
    stored = dict(run_config_json(train_log_dir),
                  max_number_of_steps=config["max_number_of_steps"])
    if stored != json.loads(json.dumps(config)):
      raise ValueError(f"{train_log_dir!r} holds a run with another "
                       f"configuration; use a new --train_log_dir")
  keras.utils.set_random_seed(config["seed"])
  detector = build_detector(config)
  detector.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
  detector.optimizer.build(detector.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64, name=_STEP)
  checkpoint = checkpoint_io.make_checkpoint(
      detector, optimizer=detector.optimizer, global_step=step)
  manager = tf.train.CheckpointManager(
      checkpoint, train_log_dir, 2, checkpoint_name=checkpoint_io.CHECKPOINT_NAME)
  if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
  elif config["finetune_path"]:
    count = checkpoint_io.initialize_from(
        detector_lib.image_encoder(detector).resnet, config["finetune_path"],
        load_halting=True)
    print(f"Backbone: {count} variables from {config['finetune_path']}")
  run_config.write_config(train_log_dir, config)
  remaining = config["max_number_of_steps"] - int(step.numpy())
  if remaining > 0:
    detector.fit(
        train_dataset(config), steps_per_epoch=remaining, epochs=1,
        verbose=0, callbacks=[_Checkpoints(
            manager, step, config["checkpoint_every"],
            config["max_number_of_steps"])])
  return detector, int(step.numpy())


def run_config_json(directory):
  """`config.json` of a detection run directory."""
  path = run_config.config_path(directory)
  if not os.path.isfile(path):
    raise ValueError(f"no config.json in {directory!r}: not a run directory "
                     f"of tools/train_detection.py")
  with open(path, encoding="utf-8") as f:
    config = json.load(f)
  if "backbone_kwargs" not in config:
    raise ValueError(f"{path} is not the config.json of a detection run")
  return config


def is_detection_run(path):
  """Whether `path` is a run directory (or checkpoint) of a detection run.

  True when the `config.json` next to its checkpoint has `backbone_kwargs`;
  False for anything else (classification runs, original checkpoints,
  paths without a checkpoint).
  """
  try:
    prefix = checkpoint_io.find_checkpoint(path)
  except ValueError:
    return False
  try:
    run_config_json(os.path.dirname(prefix))
  except (ValueError, json.JSONDecodeError):
    return False
  return True


def restore(checkpoint_dir, execution=None):
  """The detector of a run directory (or checkpoint prefix) and its config."""
  prefix = checkpoint_io.find_checkpoint(checkpoint_dir)
  config = run_config_json(os.path.dirname(prefix))
  detector = build_detector(config, execution)
  checkpoint = checkpoint_io.make_checkpoint(detector)
  checkpoint.read(prefix).expect_partial().assert_existing_objects_matched()
  step = tf.train.load_checkpoint(prefix).get_tensor(
      f"{_STEP}/.ATTRIBUTES/VARIABLE_VALUE")
  return detector, dict(config, checkpoint=prefix, global_step=int(step))


def vanilla_flops(config):
  """Backbone FLOPs per image of the same ResNet without halting."""
  kwargs = dict(config["backbone_kwargs"], model_type="vanilla")
  encoder = detector_lib.AdaptiveResNetBackbone(**kwargs)
  size = config["image_size"]
  return int(encoder(tf.zeros((1, size, size, 3)))["flops"][0])


def evaluate(detector, config, split="test", num_examples=None,
             batch_size=50):
  """COCO metrics, backbone FLOPs and ponder cost inside / outside boxes.

  Returns:
    `(results, outputs)`: `results` a dict of floats (`METRIC_NAMES`,
    `flops_mean`, `flops_std`, `flops_share_of_vanilla`, and for SACT
    `ponder_cost_in_boxes`, `ponder_cost_outside_boxes`); `outputs` the
    images (uint8), ground truths and detections (numpy) for pictures.
  """
  images, boxes, labels = load_split(config, split, num_examples)
  found = {}
  for start in range(0, len(images), batch_size):
    batch = detector_lib.detect(
        detector, box_ops.scale_images(images[start:start + batch_size]))
    for key, value in batch.items():
      found.setdefault(key, []).append(value.numpy())
  found = {k: np.concatenate(v) for k, v in found.items()}
  results = coco_evaluation.coco_metrics(
      [{"boxes": b, "labels": l} for b, l in zip(boxes, labels)],
      [{"boxes": b, "labels": l, "scores": s} for b, l, s in zip(
          found["boxes"], found["labels"], found["confidence"])],
      config["num_classes"])
  flops = found["flops"].astype(np.float64)
  results.update(flops_mean=float(flops.mean()), flops_std=float(flops.std()),
                 flops_share_of_vanilla=float(flops.mean() /
                                              vanilla_flops(config)),
                 num_examples=len(images))
  if "ponder_cost_map" in found:
    size = images.shape[1:3]
    inside = box_ops.box_mask(boxes, *size).numpy()
    ponder = found["ponder_cost_map"]
    results.update(
        ponder_cost_in_boxes=float((ponder * inside).sum() / inside.sum()),
        ponder_cost_outside_boxes=float(
            (ponder * (1 - inside)).sum() / (1 - inside).sum()))
  outputs = dict(found, images=images, true_boxes=boxes, true_labels=labels)
  return results, outputs




def write_results(eval_dir, results):
  """Writes `<eval_dir>/results.json` atomically."""
  os.makedirs(eval_dir, exist_ok=True)
  path = os.path.join(eval_dir, "results.json")
  with files.atomic_output(path, overwrite=True) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(results, f, indent=2, sort_keys=True)
      f.write("\n")
  return path


def format_results(results):
  """The results as printed lines."""
  lines = ["COCO  " + "  ".join(
      f"{k} {results[k]:.3f}" for k in coco_evaluation.METRIC_NAMES[:6])]
  lines.append(f"Backbone FLOPs per image: mean {results['flops_mean']:.4g}, "
               f"std {results['flops_std']:.3g}, "
               f"{100 * results['flops_share_of_vanilla']:.1f}% of vanilla")
  if "ponder_cost_in_boxes" in results:
    lines.append(f"Mean ponder cost: in boxes "
                 f"{results['ponder_cost_in_boxes']:.3f}, outside "
                 f"{results['ponder_cost_outside_boxes']:.3f}")
  return "\n".join(lines)
