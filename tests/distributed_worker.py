"""Runs in a subprocess of `test_training_distributed.py`.

  python tests/distributed_worker.py mirrored OUT_DIR
      Trains a tiny SACT model 3 steps on a fixed batch, once on one device
      and once with MirroredStrategy over 2 logical CPU devices (configured
      before TensorFlow starts its runtime, hence the subprocess), and saves
      the losses and weights of both to OUT_DIR/mirrored.npz.

  TF_CONFIG=... python tests/distributed_worker.py multi_worker OUT_DIR RUN_DIR
      One worker of a MultiWorkerMirroredStrategy cluster: trains the tiny
      run in RUN_DIR with the training loop and saves its final weights to
      OUT_DIR/weights_<task>.npz.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

TINY = {"dataset": "cluttered_digits", "model": "2", "base_channels": 4,
        "model_type": "sact", "tau": 0.01, "batch_size": 8,
        "max_number_of_steps": 4, "learning_rate_boundaries": [3],
        "moving_average_decay": 0.9, "seed": 1}


def _weights(model):
  return [v.numpy() for v in model.variables]


def _train_fixed_batch(strategy, images, labels, initial, steps=3):
  # pylint: disable=g-import-not-at-top
  import keras
  import orbit
  from sact_tf.training import loop
  from sact_tf.training import run_config
  from sact_tf.training.exponential_moving_average import (
      ExponentialMovingAverage)
  from sact_tf.training.trainer import Trainer
  config = run_config.make_config(TINY)
  with strategy.scope():
    model = run_config.build_model(config)
    model.build((None, 32, 32, 3))
    for variable, value in zip(model.variables, initial):
      variable.assign(value)
    optimizer = keras.optimizers.SGD(loop.make_learning_rate(config),
                                     momentum=0.9)
    optimizer.build(model.trainable_variables)
    step = orbit.utils.create_global_step()
    ema = ExponentialMovingAverage(model.variables, 0.9)
  dataset = strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensors(
          {"images": images, "labels": labels}).repeat())
  trainer = Trainer(strategy, model, optimizer, dataset, step,
                    len(labels), ema=ema)
  losses = [trainer.train(tf.constant(1))["losses/Total Loss"]
            for _ in range(steps)]
  return losses, _weights(model), [a.numpy() for a in ema.averages]


def mirrored(out_dir):
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  # pylint: disable=g-import-not-at-top
  import keras
  from sact_tf.training import run_config
  from sact_tf.training import strategies
  keras.utils.set_random_seed(0)
  rng = np.random.RandomState(0)
  half = rng.randn(4, 32, 32, 3).astype(np.float32)
  # Both replicas see the same 4 images, so their batch norm statistics are
  # those of the whole batch on one device.
  images = np.concatenate([half, half])
  labels = np.array([1, 2, 3, 4] * 2, np.int64)
  model = run_config.build_model(run_config.make_config(TINY))
  model.build((None, 32, 32, 3))
  initial = _weights(model)
  single = _train_fixed_batch(strategies.make_strategy("default"), images,
                              labels, initial)
  mirrored_strategy = strategies.make_strategy("mirrored")
  assert mirrored_strategy.num_replicas_in_sync == 2
  multi = _train_fixed_batch(mirrored_strategy, images, labels, initial)
  np.savez(os.path.join(out_dir, "mirrored.npz"),
           single_losses=single[0], mirrored_losses=multi[0],
           **{f"single_{i}": w for i, w in enumerate(single[1] + single[2])},
           **{f"mirrored_{i}": w for i, w in enumerate(multi[1] + multi[2])})


def multi_worker(out_dir, run_dir):
  # pylint: disable=g-import-not-at-top
  from sact_tf.training import loop
  from sact_tf.training import run_config
  from sact_tf.training import strategies
  strategy = strategies.make_strategy("multi_worker_mirrored")
  # The quickest model to compile: the point is the cluster.
  config = run_config.make_config(dict(
      TINY, model="1", model_type="vanilla", strategy="multi_worker_mirrored"))
  model, step, stopped = loop.train(config, run_dir, strategy,
                                    save_interval_secs=0,
                                    log_every_n_steps=2)
  assert (step, stopped) == (4, None)
  task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
  np.savez(os.path.join(out_dir, f"weights_{task}.npz"), *_weights(model))


if __name__ == "__main__":
  {"mirrored": mirrored, "multi_worker": multi_worker}[sys.argv[1]](
      *sys.argv[2:])
