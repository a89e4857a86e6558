"""The outer training loop of `tools/train.py`.

Training runs orbit's inner loop (`Trainer`, `log_every_n_steps` compiled
steps at a time) and between calls does what TF-Slim's `learning.train` did
for the original: a progress line, summaries every `save_summaries_secs`,
a checkpoint every `save_interval_secs` (and at the end), resuming from the
latest checkpoint of `train_log_dir`. orbit's `Controller` counts intervals
in steps; the original's flags count seconds, hence this small loop.

Checkpoints are written by `tf.train.CheckpointManager`, whose files appear
atomically, so a run killed at any moment (even with SIGKILL) resumes from
its last complete checkpoint. SIGTERM (and SIGINT) stop the run at the end
of the current inner loop, after a checkpoint.

With several workers (`MultiWorkerMirroredStrategy`) the chief writes the
files, the others write to temporary directories, and every time-based
decision (and a signal received by any worker) is agreed on by all workers,
so they save and stop together.
"""

import datetime
import os
import shutil
import signal
import tempfile
import time

import keras
import numpy as np
import orbit
import tensorflow as tf

from sact_tf.data import datasets
from sact_tf.training import checkpoint_io
from sact_tf.training import optimization
from sact_tf.training import run_config
from sact_tf.training import summaries
from sact_tf.training.exponential_moving_average import (
    ExponentialMovingAverage)
from sact_tf.training.trainer import Trainer

MAX_CHECKPOINTS = 5  # TF1's Saver kept as many.
# Keys of config.json that must not change when a run is resumed.
_ARCHITECTURE_KEYS = ("family", "model_kwargs")


def is_chief(strategy):
  """Whether this worker writes the run's files (checkpoints, summaries)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  cluster = resolver.cluster_spec().as_dict()
  return (resolver.task_type == "worker" and resolver.task_id == 0 and
          "chief" not in cluster)


def seed_everything(seed):
  """Makes a run reproducible from `seed` (None: leaves the RNGs alone).

  Seeds Python's, NumPy's and TensorFlow's generators (Keras' weight
  initialisers, the data shuffling and augmentation ops, the stochastic
  depth gates) and turns on TensorFlow's deterministic ops, so on CPU the
  same seed gives the same loss curve.
  """
  if seed is None:
    return
  keras.utils.set_random_seed(int(seed))
  tf.config.experimental.enable_op_determinism()


def _check_run_dir(train_log_dir, config):
  """Refuses a run directory that holds a run of another architecture."""
  path = run_config.config_path(train_log_dir)
  if not os.path.exists(path):
    return
  previous = run_config.read_config(train_log_dir)
  for key in _ARCHITECTURE_KEYS:
    if previous.get(key) != config.get(key):
      raise ValueError(
          f"--train_log_dir {train_log_dir!r} holds a run with {key} "
          f"{previous.get(key)!r}, not {config.get(key)!r}; use another "
          f"directory to train another model")


def _format_eta(seconds):
  if not np.isfinite(seconds):
    return "-"
  return str(datetime.timedelta(seconds=int(seconds)))


def _steps_per_epoch(config):
  return (datasets.split_size(config["dataset"], config["train_split"]) /
          config["batch_size"])


def make_learning_rate(config):
  """The learning rate schedule of a run configuration."""
  decay_steps = None
  if config.get("num_epochs_per_decay"):
    decay_steps = int(_steps_per_epoch(config) *
                      config["num_epochs_per_decay"])
  return optimization.learning_rate_schedule(
      config["learning_rate"], config["learning_rate_decay_factor"],
      config.get("learning_rate_boundaries"), decay_steps)


def _summary_fn(strategy, model, images):
  """A compiled function giving heatmap images of `images` (SACT)."""

  @tf.function
  def fn():
    def replica_fn(x):
      return summaries.heatmap_images(model, x, model(x, training=False))
    out = strategy.run(replica_fn, args=(images,))
    return {k: strategy.experimental_local_results(v)[0]
            for k, v in out.items()}

  return fn


class _SignalFlag:
  """Remembers SIGTERM / SIGINT instead of dying, while installed."""

  def __init__(self):
    self.received = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def train(config, train_log_dir, strategy, save_interval_secs=60,
          save_summaries_secs=30, log_every_n_steps=100, log=print):
  """Trains (or resumes) the run `config` in `train_log_dir`.

  Args:
    config: dict, the run configuration (see `run_config`), saved as
      `config.json`.
    train_log_dir: str, checkpoints, summaries and `config.json`.
    strategy: `tf.distribute.Strategy`.
    save_interval_secs: int, seconds between checkpoints.
    save_summaries_secs: int, seconds between summaries.
    log_every_n_steps: int, steps per inner loop and progress line.
    log: callable taking a str.

  Returns:
    `(model, step, signal)`: the trained model, the global step reached,
    and the name of the signal that stopped training (`"SIGTERM"`,
    `"SIGINT"`; a checkpoint was saved) or None.

  Raises:
    ValueError: bad configuration or data, or a run directory of another
      model; nothing is written then.
  """
  if log_every_n_steps < 1:
    raise ValueError(f"log_every_n_steps must be positive, received "
                     f"{log_every_n_steps!r}")
  chief = is_chief(strategy)
  if chief:
    _check_run_dir(train_log_dir, config)
  image_size = config["image_size"]
  datasets.check(config["dataset"], config["train_split"],
                 config.get("dataset_dir"), config.get("tfds_data_dir"),
                 config.get("tfds_manual_dir"))
  seed_everything(config.get("seed"))
  with strategy.scope():
    model = run_config.build_model(config)
    model.build((None, image_size, image_size, 3))
    optimizer = optimization.make_optimizer(make_learning_rate(config),
                                            config["momentum"])
    optimizer.build(model.trainable_variables)
    global_step = orbit.utils.create_global_step()
    ema = None
    if config.get("moving_average_decay"):
      ema = ExponentialMovingAverage(model.variables,
                                     config["moving_average_decay"])
  scratch = []  # Where workers other than the chief write.

  def output_dir():
    if chief:
      return train_log_dir
    scratch.append(tempfile.mkdtemp())
    return scratch[-1]

  try:
    return _train_loop(config, train_log_dir, strategy, model, optimizer,
                       global_step, ema, output_dir, save_interval_secs,
                       save_summaries_secs, log_every_n_steps, log)
  finally:
    for path in scratch:
      shutil.rmtree(path, ignore_errors=True)


def _any_worker(strategy, flags):
  """The element-wise OR of boolean `flags` over all workers."""
  values = tf.constant([float(f) for f in flags])
  reduced = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(
      lambda: tf.identity(values)), axis=None)
  return [bool(v > 0) for v in reduced.numpy()]


def _train_loop(config, train_log_dir, strategy, model, optimizer,
                global_step, ema, output_dir, save_interval_secs,
                save_summaries_secs, log_every_n_steps, log):
  """`train` once the objects exist."""
  chief = is_chief(strategy)
  image_size = config["image_size"]
  checkpoint = checkpoint_io.make_checkpoint(model, optimizer, ema,
                                             global_step)
  manager = tf.train.CheckpointManager(
      checkpoint, output_dir(), MAX_CHECKPOINTS,
      checkpoint_name=checkpoint_io.CHECKPOINT_NAME, step_counter=global_step)
  latest = tf.train.latest_checkpoint(train_log_dir)
  if latest:
    with strategy.scope():
      checkpoint.restore(latest).assert_existing_objects_matched()
    log(f"Resuming from {latest} at step {int(global_step.numpy())}")
  elif config.get("finetune_path"):
    count = checkpoint_io.initialize_from(model, config["finetune_path"])
    if ema is not None:
      ema.reset()
    log(f"Fine-tuning from {config['finetune_path']}: {count} variables "
        f"loaded, the halting branches initialized afresh")
  if chief:
    tf.io.gfile.makedirs(train_log_dir)
    run_config.write_config(train_log_dir, config)

  batch_size = config["batch_size"]
  input_options = dict(
      image_size=image_size, dataset_dir=config.get("dataset_dir"),
      tfds_data_dir=config.get("tfds_data_dir"),
      tfds_manual_dir=config.get("tfds_manual_dir"), seed=config.get("seed"))
  train_dataset = strategy.distribute_datasets_from_function(
      datasets.make_input_fn(config["dataset"], config["train_split"],
                             batch_size, training=True, **input_options))
  trainer = Trainer(strategy, model, optimizer, train_dataset, global_step,
                    batch_size, config.get("label_smoothing", 0.0), ema)
  heatmaps = None
  if model.model_type == "sact":
    sample = next(iter(datasets.make_input_fn(
        config["dataset"], config["train_split"], summaries.HEATMAP_IMAGES,
        training=False, **input_options)()))
    heatmaps = _summary_fn(strategy, model, sample["images"])
  writer = tf.summary.create_file_writer(output_dir())

  max_steps = config["max_number_of_steps"] or np.inf
  step = int(global_step.numpy())
  saved_step = step if latest else None
  last_save = last_summary = time.time()
  stop = None
  with _SignalFlag() as flag:
    while step < max_steps and not stop:
      start = time.time()
      steps = int(min(log_every_n_steps, max_steps - step))
      try:
        output = trainer.train(tf.constant(steps, tf.int32))
      except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        raise ValueError(f"reading the training data failed after step "
                         f"{step}: {e.message.strip().splitlines()[0]}") from e
      step = int(global_step.numpy())
      seconds = time.time() - start
      log(f"step {step}/{config['max_number_of_steps'] or '-'}: loss "
          f"{output['losses/Total Loss']:.4f}, "
          f"{steps * batch_size / seconds:.1f} images/s, "
          f"ETA {_format_eta((max_steps - step) * seconds / steps)}")
      now = time.time()
      summarize, save, stopping = _any_worker(strategy, [
          now - last_summary >= save_summaries_secs or step >= max_steps,
          now - last_save >= save_interval_secs, flag.received is not None])
      if summarize:
        summaries.write(writer, step, output,
                        heatmaps() if heatmaps else None)
        last_summary = now
      if save:
        log(f"Saved {manager.save(checkpoint_number=step)}")
        saved_step, last_save = step, now
      if stopping:
        stop = flag.received or "a signal to another worker"
    if saved_step != step:
      log(f"Saved {manager.save(checkpoint_number=step)}")
  if stop:
    log(f"Stopped by {stop} at step {step}; the run resumes from its "
        f"latest checkpoint")
  return model, step, stop
