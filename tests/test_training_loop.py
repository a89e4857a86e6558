"""The training loop, resuming, fine-tuning, moving averages, evaluation."""

import json
import os
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import helpers
from sact_tf import checkpoints
from sact_tf import models
from sact_tf.training import checkpoint_io
from sact_tf.training import loop
from sact_tf.training import run_config
from sact_tf.training import strategies
from sact_tf.training.evaluation_run import EvaluationRun
from sact_tf.training.figures import draw_ponder_maps

STRATEGY = strategies.make_strategy("default")
TINY = {"dataset": "cluttered_digits", "model": "2", "base_channels": 4,
        "model_type": "sact", "tau": 0.01, "batch_size": 8,
        "max_number_of_steps": 4, "learning_rate_boundaries": [5],
        "seed": 1}


def _train(directory, **settings):
  config = run_config.make_config(dict(TINY, **settings))
  lines = []
  _, step, stopped = loop.train(
      config, str(directory), STRATEGY, save_interval_secs=0,
      save_summaries_secs=0, log_every_n_steps=2, log=lines.append)
  return (step, stopped), lines


@pytest.fixture(name="sact_run", scope="module")
def fixture_sact_run(tmp_path_factory):
  """A SACT run with moving averages trained for 6 steps (resuming is
  tested with the tool, in test_train_tool.py)."""
  directory = tmp_path_factory.mktemp("sact_run")
  return directory, _train(directory, moving_average_decay=0.5,
                           max_number_of_steps=6)


def test_training_checkpoints(sact_run):
  directory, (result, lines) = sact_run
  assert result == (6, None)
  assert lines[0].startswith("step 2/6: loss ")
  assert "images/s, ETA " in lines[0]
  assert [line for line in lines if line.startswith("Saved")] == [
      f"Saved {directory / f'ckpt-{step}'}" for step in (2, 4, 6)]
  assert tf.train.latest_checkpoint(str(directory)).endswith("ckpt-6")
  config = run_config.read_config(str(directory))
  assert config["max_number_of_steps"] == 6
  assert config["model_kwargs"]["model_type"] == "sact"


def test_summaries(sact_run):
  tags = helpers.summary_tags(sact_run[0])
  for tag in ("losses/Total Loss", "losses/cross_entropy",
              "losses/ponder_cost", "losses/regularization",
              "training/Accuracy", "Total Flops/mean",
              "block_1/ponder_cost_mean", "block_3/num_units_max",
              "heatmaps/ponder_cost", "heatmaps/num_units"):
    assert tag in tags, tag
  learning_rates = dict(tags["training/Learning Rate"])
  # Piecewise constant: 0.1 until step 5, then 0.01.
  np.testing.assert_allclose(learning_rates[4], 0.1)
  np.testing.assert_allclose(learning_rates[6], 0.01)
  steps, image = max(tags["heatmaps/ponder_cost"], key=lambda t: t[0])
  assert steps == 6 and image.shape == (5,)  # width, height, 3 PNGs.
  total = dict(tags["losses/Total Loss"])
  parts = [dict(tags[f"losses/{k}"])[6] for k in
           ("cross_entropy", "ponder_cost", "regularization")]
  np.testing.assert_allclose(total[6], sum(parts), rtol=1e-5)


def test_evaluation_run_once_and_continuously(sact_run, tmp_path):
  directory = sact_run[0]
  lines = []
  run = EvaluationRun(str(directory), str(tmp_path / "eval"), STRATEGY,
                      num_examples=20, batch_size=8,
                      picture_fn=draw_ponder_maps, log=lines.append)
  results = run.run(once=True)
  assert lines[0] == (f"Evaluated {directory / 'ckpt-6'} (step 6) on 20 "
                      f"cluttered_digits 'test' examples")
  assert lines[1] == f"eval/Accuracy[{results['eval/Accuracy']:.8g}]"
  assert lines[4].startswith("Total Flops/mean[")
  with open(tmp_path / "eval" / "metrics.json") as f:
    record = json.load(f)
  assert record["global_step"] == 6 and record["metrics"] == results
  assert os.path.exists(tmp_path / "eval" / "metrics-6.json")
  assert (tmp_path / "eval" / "ponder_maps.png").read_bytes()[:4] == (
      b"\x89PNG")
  assert results["eval/num_examples"] == 20
  for key in ("eval/ponder_cost_map/object_mean",
              "eval/ponder_cost_map/background_mean",
              "block_2/num_units_std", "eval/Recall@5"):
    assert np.isfinite(results[key]), key
  # Per-block ponder costs sum to about the mean of the map (the map is
  # upsampled per block, so equal up to image-border effects: exact here).
  np.testing.assert_allclose(
      sum(results[f"block_{b}/ponder_cost_mean"] for b in (1, 2, 3)),
      (results["eval/ponder_cost_map/object_mean"] * 256 +
       results["eval/ponder_cost_map/background_mean"] * (1024 - 256)) /
      1024, rtol=1e-5)


def _copy_checkpoint(source, target, step):
  for path in tf.io.gfile.glob(str(source / f"ckpt-{step}.*")):
    tf.io.gfile.copy(path, str(target / os.path.basename(path)))
  # What CheckpointManager writes last: the state naming the latest.
  (target / "checkpoint").write_text(
      f'model_checkpoint_path: "ckpt-{step}"\n')


def test_continuous_evaluation_follows_new_checkpoints(sact_run, tmp_path):
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  run_config.write_config(str(run_dir),
                          run_config.read_config(str(sact_run[0])))
  _copy_checkpoint(sact_run[0], run_dir, 4)
  run = EvaluationRun(str(run_dir), str(tmp_path / "eval"), STRATEGY,
                      num_examples=8, batch_size=8, log=lambda _: None)
  thread = threading.Thread(target=lambda: run.run(
      once=False, eval_interval_secs=0, timeout=120))
  thread.start()
  while not os.path.exists(tmp_path / "eval" / "metrics-4.json"):
    thread.join(timeout=0.5)
  # The run saves its last checkpoint (step 6 of 6): evaluated, then done.
  _copy_checkpoint(sact_run[0], run_dir, 6)
  thread.join(timeout=120)
  assert not thread.is_alive()
  assert sorted(os.listdir(tmp_path / "eval"))[-3:] == [
      "metrics-4.json", "metrics-6.json", "metrics.json"]


def test_other_architecture_in_run_dir_is_refused(sact_run):
  directory = sact_run[0]
  before = {p: os.path.getmtime(directory / p) for p in os.listdir(directory)}
  with pytest.raises(ValueError, match="holds a run with model_kwargs"):
    _train(directory, model="3")
  after = {p: os.path.getmtime(directory / p) for p in os.listdir(directory)}
  assert before == after


def test_moving_averages_are_kept_and_evaluated(sact_run):
  directory = sact_run[0]
  config = run_config.read_config(str(directory))
  assert config["eval_use_ema"]
  averaged, config = checkpoint_io.restore_model(str(directory))
  raw, _ = checkpoint_io.restore_model(str(directory), use_ema=False)
  assert config["use_ema"]
  reader = tf.train.load_checkpoint(str(directory))
  for i, (a, r) in enumerate(zip(averaged.variables, raw.variables)):
    np.testing.assert_array_equal(a.numpy(), reader.get_tensor(
        f"ema/averages/{i}/.ATTRIBUTES/VARIABLE_VALUE"))
  assert any(np.abs(a.numpy() - r.numpy()).max() > 0
             for a, r in zip(averaged.trainable_variables,
                             raw.trainable_variables))


def _sact(model="2", base_channels=4):
  model = models.cifar_resnet(model, model_type="sact",
                              base_channels=base_channels)
  model.build((None, None, None, 3))
  return model


def _check_finetuned(model, source_values, before):
  for path, variable in checkpoint_io.model_variables(model).items():
    if "halting" in path:
      np.testing.assert_array_equal(variable.numpy(), before[path])
    else:
      np.testing.assert_array_equal(variable.numpy(), source_values[path])


def test_finetune_from_a_vanilla_run_and_a_keras_file(tmp_path):
  config = run_config.make_config(dict(TINY, model_type="vanilla"))
  vanilla = run_config.build_model(config)
  vanilla.build((None, None, None, 3))
  run_config.write_config(str(tmp_path), config)
  checkpoint_io.make_checkpoint(vanilla).write(str(tmp_path / "ckpt-1"))
  values = {k: v.numpy() for k, v in
            checkpoint_io.model_variables(vanilla).items()}
  model = _sact()
  before = {k: v.numpy() for k, v in
            checkpoint_io.model_variables(model).items()}
  assert checkpoint_io.initialize_from(model, str(tmp_path)) == len(values)
  _check_finetuned(model, values, before)
  vanilla.save(str(tmp_path / "vanilla.keras"))
  model = _sact()
  checkpoint_io.initialize_from(model, str(tmp_path / "vanilla.keras"))
  _check_finetuned(model, values, {k: v.numpy() for k, v in
                                   checkpoint_io.model_variables(
                                       model).items() if "halting" in k})


def test_finetune_from_an_original_checkpoint(oracle_dir):
  prefix = str(oracle_dir / "cifar_resnet32_vanilla" / "model.ckpt")
  model = _sact("5", 16)
  reader = tf.train.load_checkpoint(prefix)
  before = {k: v.numpy() for k, v in
            checkpoint_io.model_variables(model).items()}
  checkpoint_io.initialize_from(model, prefix)
  values = {name[len("resnet_residual/"):]: reader.get_tensor(name)
            for name in checkpoints.original_variable_names(model)
            if "halting" not in name}
  _check_finetuned(model, values, before)


def test_finetune_errors(tmp_path, oracle_dir):
  with pytest.raises(ValueError, match="does not exist"):
    checkpoint_io.initialize_from(_sact(), str(tmp_path / "nothing"))
  with pytest.raises(ValueError, match="does not exist"):
    checkpoint_io.initialize_from(_sact(), str(tmp_path / "nothing.keras"))
  with pytest.raises(ValueError, match="does not fit the model.*of another "
                     "shape"):
    checkpoint_io.initialize_from(
        _sact("5", 8), str(oracle_dir / "cifar_resnet32_vanilla"))
  with pytest.raises(ValueError, match="does not exist"):
    run_config.make_config(dict(TINY, finetune_path=str(tmp_path / "x")))


def test_config_validation():
  with pytest.raises(ValueError, match="--tau must be >= 0, received -1"):
    run_config.make_config({"tau": -1.0})
  with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
    run_config.make_config({"dataset": "mnist"})
  with pytest.raises(ValueError, match="--batch_size must be a positive"):
    run_config.make_config({"batch_size": 0})
  with pytest.raises(ValueError, match=r"unknown settings \['bogus'\]"):
    run_config.make_config({"bogus": 1})
  with pytest.raises(ValueError, match="model_type"):
    run_config.make_config({"model_type": "sparse_act"})
  config = run_config.make_config({"dataset": "imagenet2012",
                                   "learning_rate_boundaries": [10]})
  assert config["num_epochs_per_decay"] is None
  assert config["model_kwargs"]["num_classes"] == 1001
  assert config["eval_use_ema"] and config["label_smoothing"] == 0.1
  schedule = loop.make_learning_rate(run_config.make_config(
      {"dataset": "imagenet2012", "batch_size": 1281167 // 10}))
  # 30 epochs of 10 steps, then 0.05 * 0.1.
  assert isinstance(schedule, keras.optimizers.schedules.ExponentialDecay)
  np.testing.assert_allclose(float(schedule(299)), 0.05)
  np.testing.assert_allclose(float(schedule(300)), 0.005)
