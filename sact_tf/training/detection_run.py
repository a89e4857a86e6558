"""Detection runs: configuration, data, training with `fit`, evaluation.

A run directory (`--train_log_dir`) holds `config.json` (the keys of
`DEFAULTS` plus `backbone_kwargs`) and TF2 checkpoints `ckpt-<step>` of the
detector's variables (keyed by their paths), the optimizer and the step,
written every `checkpoint_every` steps, so a killed run resumes from its
latest checkpoint and evaluation needs only the directory.
"""

import json
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from sact_tf import act
from sact_tf.data import boxes as box_ops
from sact_tf.data import coco
from sact_tf.data import digit_scenes
from sact_tf.detection import coco_evaluation
from sact_tf.detection import detector as detector_lib
from sact_tf.models.imagenet_resnet import WEIGHT_DECAY
from sact_tf.training import checkpoint_io
from sact_tf.training import loop
from sact_tf.training import run_config
from sact_tf.training import strategies
from sact_tf.training import summaries
from sact_tf.utils import files

# Classes and default image size of each dataset.
DATASETS = {
    "digit_scenes": {"num_classes": digit_scenes.NUM_CLASSES,
                     "image_size": digit_scenes.CANVAS_SIZE},
    "coco": {"num_classes": coco.NUM_CLASSES,
             "image_size": coco.DEFAULT_IMAGE_SIZE},
}
SPLITS = ("train", "test")
# Settings of where COCO is: its JSON and image folder per split, or
# tensorflow-datasets' data directory.
COCO_KEYS = ("coco_annotations", "coco_images", "eval_coco_annotations",
             "eval_coco_images", "tfds_data_dir")
DEFAULTS = {
    "dataset": "digit_scenes", "image_size": None,
    **{key: None for key in COCO_KEYS},
    "model": "1_1_1_1", "model_type": "vanilla",
    "base_channels": 16, "tau": 0.01, "eps": act.DEFAULT_EPS,
    "weight_decay": WEIGHT_DECAY, "execution": "dense", "min_level": 3,
    "max_level": 5, "anchor_size": 2.0, "head_conv_layers": 2,
    "fpn_batch_norm": True,
    "batch_size": 16, "max_number_of_steps": 1000, "learning_rate": 1e-3,
    "flip": False, "finetune_path": None, "checkpoint_every": 100,
    "seed": 0, "strategy": "default", "config": None,
}
_BACKBONE_KEYS = ("model", "model_type", "base_channels", "tau", "eps",
                  "weight_decay", "execution")
_STEP = "global_step"
# Settings a resumed run may change.
_RESUME_MAY_CHANGE = ("max_number_of_steps", "strategy")


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
  spec = DATASETS[config["dataset"]]
  if config["dataset"] == "digit_scenes":
    given = [key for key in COCO_KEYS if config[key]]
    if given:
      raise ValueError(f"--{given[0]} is for --dataset=coco, received "
                       f"--dataset=digit_scenes")
    if config["image_size"] not in (None, spec["image_size"]):
      raise ValueError(f"digit_scenes are {spec['image_size']}x"
                       f"{spec['image_size']}, received "
                       f"--image_size={config['image_size']!r}")
  config["image_size"] = config["image_size"] or spec["image_size"]
  for key in ("batch_size", "max_number_of_steps", "checkpoint_every",
              "image_size"):
    if not isinstance(config[key], int) or config[key] < 1:
      raise ValueError(f"--{key} must be a positive integer, received "
                       f"{config[key]!r}")
  if config["strategy"] not in strategies.STRATEGIES:
    raise ValueError(f"unknown strategy {config['strategy']!r}; known: "
                     f"{', '.join(strategies.STRATEGIES)}")
  run_config.check_tau_and_finetune_path(config)
  config.update(num_classes=spec["num_classes"],
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


def coco_files(config, split):
  """`(annotation file, image folder)` of a COCO split, or `(None, None)`."""
  prefix = "" if split == "train" else "eval_"
  annotations = config[prefix + "coco_annotations"]
  images = config[prefix + "coco_images"]
  if bool(annotations) != bool(images):
    raise ValueError(f"--{prefix}coco_annotations and --{prefix}coco_images "
                     f"go together, received {annotations!r} and {images!r}")
  if images and not os.path.isdir(images):
    raise ValueError(f"--{prefix}coco_images {images!r} is not a directory")
  return annotations, images


def with_data(config, split, coco_annotations=None, coco_images=None,
              tfds_data_dir=None):
  """`config` reading `split` from other COCO files or tfds directory.

  For evaluating a run on data elsewhere than where it was trained (the
  arguments given replace the run's; None keeps them).
  """
  prefix = "" if split == "train" else "eval_"
  given = {prefix + "coco_annotations": coco_annotations,
           prefix + "coco_images": coco_images,
           "tfds_data_dir": tfds_data_dir}
  given = {k: v for k, v in given.items() if v is not None}
  if given and config["dataset"] != "coco":
    raise ValueError(f"--{sorted(given)[0].removeprefix('eval_')} is for "
                     f"runs on COCO; this run's dataset is "
                     f"{config['dataset']!r}")
  return dict(config, **given)


def check_data(config, split):
  """Fails fast (one line) when a split's data is not there."""
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, received {split!r}")
  if config["dataset"] != "coco":
    return
  annotations, _ = coco_files(config, split)
  if annotations:
    if not os.path.isfile(annotations):
      raise ValueError(f"COCO annotation file {annotations!r} does not "
                       f"exist")
  else:
    coco.check_tfds(config["tfds_data_dir"])


def examples(config, split, num_examples=None, train_seed=None, log=print):
  """The examples of a split, checked, fitted to `image_size`.

  Args:
    config: a run configuration.
    split: str, `"train"` or `"test"`.
    num_examples: int or None, the first N images only.
    train_seed: int or None. Given: shuffled (with this seed) and repeated.
    log: callable taking a str (what COCO's reading skipped).

  Returns:
    Dataset of `(image uint8 [S, S, 3], boxes float32 [M, 4], labels int32
    [M], size int32 [2])`: boxes `yxyx` in pixels of the fitted image
    (`box_ops.resize_with_pad`), -1 padding; `size` the original image's
    (height, width).
  """
  check_data(config, split)
  size = config["image_size"]
  if config["dataset"] == "digit_scenes":
    data = digit_scenes.load(split)
    n = num_examples or len(data["image"])
    box_ops.check_annotations(data["boxes"][:n], data["labels"][:n],
                              data["image"].shape[1:3], config["num_classes"],
                              name=f"digit_scenes/{split}")
    dataset = tf.data.Dataset.from_tensor_slices((
        data["image"][:n], data["boxes"][:n], data["labels"][:n],
        np.full((n, 2), size, np.int32)))
    if train_seed is not None:
      dataset = dataset.shuffle(n, seed=train_seed).repeat()
    return dataset
  annotations, images = coco_files(config, split)
  if annotations:
    data = coco.read_annotations(annotations, images, log)
    if num_examples:
      data = {k: v[:num_examples] for k, v in data.items()
              if k != "category_ids"}
    dataset = coco.dataset(data, size, train_seed)
  else:
    dataset = coco.tfds_dataset(split, size, config["tfds_data_dir"],
                                train_seed, log)
  return dataset.take(num_examples) if num_examples else dataset


def train_dataset(config, log=print):
  """Shuffled, repeated batches `(images, {"boxes", "labels"})`."""

  def example(image, box, label, size):
    del size
    image = box_ops.scale_images(image)
    if config["flip"]:
      image, box = box_ops.random_flip_left_right(image, box)
    return image, {"boxes": box, "labels": tf.cast(label, tf.float32)}

  dataset = examples(config, "train", train_seed=config["seed"], log=log)
  return dataset.map(example, num_parallel_calls=tf.data.AUTOTUNE).batch(
      config["batch_size"], drop_remainder=True).prefetch(2)


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


class _Summaries(keras.callbacks.Callback):
  """TensorBoard summaries every `every_secs` seconds and at the end.

  Scalars: the losses of the step (`losses/loss`, the total with the
  ponder cost loss; `losses/bbox_regression_loss`,
  `losses/cls_logits_loss`), `learning_rate`, and
  the backbone's computation on a fixed batch of training images
  (`flops`, the mean FLOPs per image; `ponder_cost/<block>`); for SACT the
  original's heatmap images of that batch (`heatmaps/ponder_cost`,
  `heatmaps/num_units`, `summaries.heatmap_images`).
  """

  def __init__(self, writer, step, every_secs, total, images):
    super().__init__()
    self.writer, self.step, self.every_secs, self.total = (writer, step,
                                                           every_secs, total)
    self.images = images
    self.last = time.time()

  def on_train_batch_end(self, batch, logs=None):
    step = int(self.step.numpy())
    now = time.time()
    if now - self.last < self.every_secs and step < self.total:
      return
    self.last = now
    encoder = detector_lib.image_encoder(self.model)
    outputs = encoder(self.images, training=False)
    scalars = {f"losses/{name}": float(value)
               for name, value in (logs or {}).items()}
    scalars["learning_rate"] = float(
        keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
    scalars["flops"] = float(np.mean(outputs["flops"]))
    for block in encoder.resnet.blocks:
      cost = outputs.get(f"{block.name}/ponder_cost")
      if cost is not None:
        scalars[f"ponder_cost/{block.name}"] = float(np.mean(cost))
    images = None
    if encoder.model_type == "sact":
      images = summaries.heatmap_images(encoder.resnet, self.images, outputs)
    summaries.write(self.writer, step, scalars, images)


def train(config, train_log_dir, strategy=None, save_summaries_secs=30):
  """Trains (or resumes) a run; returns `(detector, final step)`.

  Args:
    config: dict, a `make_config` configuration, saved as `config.json`.
    train_log_dir: str, checkpoints, summaries and `config.json`.
    strategy: `tf.distribute.Strategy` or None (the default strategy).
      With several workers, the chief writes the run's files.
    save_summaries_secs: int, seconds between TensorBoard summaries.
  """
  check_data(config, "train")
  strategy = strategy or tf.distribute.get_strategy()
  chief = loop.is_chief(strategy)
  os.makedirs(train_log_dir, exist_ok=True)
  path = run_config.config_path(train_log_dir)
  if os.path.exists(path):
    # More steps or another strategy may be asked for; nothing else may
    # change (settings added after the run was written keep their defaults).
    current = json.loads(json.dumps(config))
    stored = {**current, **run_config_json(train_log_dir),
              **{k: current[k] for k in _RESUME_MAY_CHANGE}}
    if stored != current:
      raise ValueError(f"{train_log_dir!r} holds a run with another "
                       f"configuration; use a new --train_log_dir")
  output_dir = train_log_dir if chief else tempfile.mkdtemp()
  try:
    return _train(config, train_log_dir, output_dir, strategy,
                  save_summaries_secs)
  finally:
    if not chief:
      shutil.rmtree(output_dir, ignore_errors=True)


def _train(config, train_log_dir, output_dir, strategy, save_summaries_secs):
  """`train` once the run directory is checked."""
  keras.utils.set_random_seed(config["seed"])
  with strategy.scope():
    detector = build_detector(config)
    detector.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]))
    detector.optimizer.build(detector.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, name=_STEP)
  checkpoint = checkpoint_io.make_checkpoint(
      detector, optimizer=detector.optimizer, global_step=step)
  manager = tf.train.CheckpointManager(
      checkpoint, output_dir, 2, checkpoint_name=checkpoint_io.CHECKPOINT_NAME)
  latest = tf.train.latest_checkpoint(train_log_dir)
  if latest:
    with strategy.scope():
      checkpoint.restore(latest).assert_existing_objects_matched()
  elif config["finetune_path"]:
    count = checkpoint_io.initialize_from(
        detector_lib.image_encoder(detector).resnet, config["finetune_path"],
        load_halting=True)
    print(f"Backbone: {count} variables from {config['finetune_path']}")
  if output_dir == train_log_dir:
    run_config.write_config(train_log_dir, config)
  remaining = config["max_number_of_steps"] - int(step.numpy())
  if remaining > 0:
    sample = next(iter(examples(config, "train", summaries.HEATMAP_IMAGES,
                                log=lambda line: None).batch(
                                    summaries.HEATMAP_IMAGES)))[0]
    detector.fit(
        train_dataset(config), steps_per_epoch=remaining, epochs=1,
        verbose=0, callbacks=[
            _Checkpoints(manager, step, config["checkpoint_every"],
                         config["max_number_of_steps"]),
            _Summaries(tf.summary.create_file_writer(output_dir), step,
                       save_summaries_secs, config["max_number_of_steps"],
                       box_ops.scale_images(sample))])
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


def _to_file_pixels(boxes, sizes, image_size):
  """Boxes of fitted images `[N, M, 4]` in their files' pixels (numpy)."""
  factors = sizes / box_ops.fitted_size(sizes, image_size).numpy()
  factors = np.concatenate([factors, factors], -1)[:, None, :]
  return np.where(boxes < 0, boxes, boxes * factors)


def evaluate(detector, config, split="test", num_examples=None,
             batch_size=50, num_kept=8, log=print):
  """COCO metrics, backbone FLOPs and ponder cost inside / outside boxes.

  The COCO metrics compare boxes in the pixels of the original images (the
  detections scaled back from the fitted images), so COCO's object sizes
  (APs / APm / APl) are its own; the ponder cost is compared on the fitted
  images, inside the ground-truth boxes and outside them (the padding
  excluded).

  Args:
    detector: a `build_detector` detector.
    config: its run configuration.
    split: str. Defaults to `"test"`.
    num_examples: int or None: the first N images. Default: all.
    batch_size: int. Defaults to 50.
    num_kept: int. Images returned for pictures. Defaults to 8.
    log: callable taking a str.

  Returns:
    `(results, outputs)`: `results` a dict of floats (`METRIC_NAMES`,
    `flops_mean`, `flops_std`, `flops_share_of_vanilla`, `num_examples`,
    and for SACT `ponder_cost_in_boxes`, `ponder_cost_outside_boxes`);
    `outputs` the first `num_kept` images (uint8, fitted), their ground
    truths and detections (numpy, pixels of the fitted images) for pictures.
  """
  size = config["image_size"]
  truths, found, flops, kept = [], [], [], {}
  ponder = np.zeros((2, 2))  # [inside, outside] x [sum, pixels]
  batches = examples(config, split, num_examples, log=log).batch(batch_size)
  for images, boxes, labels, sizes in batches.as_numpy_iterator():
    out = {k: v.numpy() for k, v in detector_lib.detect(
        detector, box_ops.scale_images(images)).items()}
    truths += [{"boxes": b, "labels": l} for b, l in zip(
        _to_file_pixels(boxes, sizes, size), labels)]
    found += [{"boxes": b, "labels": l, "scores": c} for b, l, c in zip(
        _to_file_pixels(out["boxes"], sizes, size), out["labels"],
        out["confidence"])]
    flops.append(out["flops"])
    if "ponder_cost_map" in out:
      inside = box_ops.box_mask(boxes, size, size).numpy()
      fitted = box_ops.fitted_size(sizes, size).numpy()
      rows = np.arange(size)
      image = ((rows[None, :, None] < fitted[:, 0, None, None]) &
               (rows[None, None, :] < fitted[:, 1, None, None]))[..., None]
      for k, mask in enumerate((inside, image * (1 - inside))):
        ponder[k] += [(out["ponder_cost_map"] * mask).sum(), mask.sum()]
    need = num_kept - len(kept.get("images", []))
    if need > 0:
      for key, value in dict(out, images=images, true_boxes=boxes,
                             true_labels=labels).items():
        kept[key] = np.concatenate([kept[key], value[:need]]) if (
            key in kept) else value[:need]
  if not truths:
    raise ValueError(f"{config['dataset']}/{split} holds no image")
  results = coco_evaluation.coco_metrics(truths, found, config["num_classes"])
  flops = np.concatenate(flops).astype(np.float64)
  results.update(flops_mean=float(flops.mean()), flops_std=float(flops.std()),
                 flops_share_of_vanilla=float(flops.mean() /
                                              vanilla_flops(config)),
                 num_examples=len(truths))
  if ponder[0, 1]:
    results.update(ponder_cost_in_boxes=float(ponder[0, 0] / ponder[0, 1]),
                   ponder_cost_outside_boxes=float(ponder[1, 0] /
                                                   max(ponder[1, 1], 1)))
  return results, kept


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
