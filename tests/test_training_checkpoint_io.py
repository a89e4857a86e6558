"""Run checkpoints: config.json, restore_model, moving averages."""

import os

import numpy as np
import pytest
import tensorflow as tf

from sact_tf import checkpoints
from sact_tf import models
from sact_tf.training import checkpoint_io
from sact_tf.training import run_config
from sact_tf.training.exponential_moving_average import (
    ExponentialMovingAverage)

CONFIG = {"family": "cifar", "image_size": 8, "eval_use_ema": True,
          "model_kwargs": {"model": "2", "num_classes": 3,
                           "model_type": "sact", "base_channels": 4,
                           "tau": 0.01}}
IMAGES = np.random.RandomState(0).randn(2, 8, 8, 3).astype(np.float32)


def _write_run(directory, step=7):
  """A run dir with a model moved off its averages; returns model, ema."""
  run_config.write_config(str(directory), CONFIG)
  model = run_config.build_model(CONFIG)
  model.build((None, None, None, 3))
  ema = ExponentialMovingAverage(model.variables)
  for v in model.trainable_variables:
    v.assign(v + 1.0)
  ema.update(0)  # decay min(0.9999, 1/10): averages at 0.9 of the way.
  checkpoint = checkpoint_io.make_checkpoint(
      model, ema=ema, global_step=tf.Variable(step, dtype=tf.int64))
  tf.train.CheckpointManager(checkpoint, str(directory), 2,
                             checkpoint_name="ckpt").save(step)
  return model, ema


def test_restore_raw_and_averaged_weights(tmp_path):
  model, ema = _write_run(tmp_path)
  raw, config = checkpoint_io.restore_model(str(tmp_path), use_ema=False)
  assert config["global_step"] == 7 and not config["use_ema"]
  assert config["checkpoint"] == str(tmp_path / "ckpt-7")
  assert config["model_kwargs"] == CONFIG["model_kwargs"]
  for a, b in zip(model.variables, raw.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  np.testing.assert_array_equal(raw(IMAGES)["logits"],
                                model(IMAGES)["logits"])
  # Default: the config's eval_use_ema.
  averaged, config = checkpoint_io.restore_model(str(tmp_path / "ckpt-7"))
  assert config["use_ema"]
  for a, b, average in zip(model.variables, averaged.variables,
                           ema.averages):
    np.testing.assert_array_equal(b.numpy(), average.numpy())
    if a.trainable:  # 0.1 * (w - 1) + 0.9 * w.
      np.testing.assert_allclose(b.numpy(), a.numpy() - 0.1, atol=1e-6)


def test_checkpoint_keys_are_variable_paths(tmp_path):
  _write_run(tmp_path)
  keys = {k for k, _ in tf.train.list_variables(str(tmp_path))}
  # TF escapes '/' inside a dependency name as '.S'.
  assert ("model/block_2.Sunit_1.Sresidual.Sconv1.Sweights"
          "/.ATTRIBUTES/VARIABLE_VALUE") in keys


def test_execution_override(tmp_path):
  _write_run(tmp_path)
  model, config = checkpoint_io.restore_model(str(tmp_path), use_ema=False,
                                              execution="dense")
  assert model.execution == "dense"
  assert config["model_kwargs"]["model_type"] == "sact"


def test_restore_original_release_checkpoint(oracle_dir):
  folder = oracle_dir / "cifar_resnet32_act"
  model, config = checkpoint_io.restore_model(str(folder))
  assert config["family"] == "cifar" and config["original_checkpoint"]
  assert config["dataset"] == "cifar10" and config["image_size"] == 32
  assert config["model_kwargs"]["model"] == "5_5_5"
  assert config["model_kwargs"]["model_type"] == "act"
  reference = np.load(folder / "reference.npz")
  np.testing.assert_allclose(model(reference["images"])["logits"],
                             reference["logits"], atol=1e-4)
  # Rebuilding from the returned config gives the same architecture.
  rebuilt = run_config.build_model(config)
  checkpoints.load_original_checkpoint(rebuilt, str(folder))


def test_ema_decay_schedule_and_validation():
  v = tf.Variable([0.0])
  ema = ExponentialMovingAverage([v], decay=0.5)
  v.assign([10.0])
  ema.update(100)  # min(0.5, 101/110) = 0.5.
  np.testing.assert_allclose(ema.averages[0].numpy(), [5.0])
  ema.update(0)  # min(0.5, 0.1) = 0.1: 5 + 0.9 * 5.
  np.testing.assert_allclose(ema.averages[0].numpy(), [9.5])
  ema.reset()
  np.testing.assert_allclose(ema.averages[0].numpy(), [10.0])
  with pytest.raises(ValueError, match="1.5"):
    ExponentialMovingAverage([v], decay=1.5)


def test_errors(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    checkpoint_io.restore_model(str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="no checkpoint found"):
    checkpoint_io.restore_model(str(tmp_path))
  _write_run(tmp_path)
  os.remove(tmp_path / "config.json")
  with pytest.raises(ValueError, match="no config.json"):
    checkpoint_io.restore_model(str(tmp_path))
  run_config.write_config(str(tmp_path), dict(
      CONFIG, model_kwargs=dict(CONFIG["model_kwargs"], model="1")))
  with pytest.raises(ValueError, match="does not match its config.json.*"
                     "66 unexpected .'block_1/unit_1/halting_proba/"):
    checkpoint_io.restore_model(str(tmp_path), use_ema=False)


def test_use_ema_without_averages(tmp_path):
  run_config.write_config(str(tmp_path), CONFIG)
  model = run_config.build_model(CONFIG)
  model.build((None, None, None, 3))
  checkpoint_io.make_checkpoint(model).write(str(tmp_path / "ckpt-1"))
  with pytest.raises(ValueError, match="no moving averages"):
    checkpoint_io.restore_model(str(tmp_path / "ckpt-1"), use_ema=True)
  assert isinstance(checkpoint_io.restore_model(
      str(tmp_path / "ckpt-1"), use_ema=False)[0], models.CifarResNet)
