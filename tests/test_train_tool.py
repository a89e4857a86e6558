"""tools/train.py and tools/evaluate.py as users run them (subprocesses)."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

import helpers
from sact_tf.training import checkpoint_io
from sact_tf.training import run_config

REPO = helpers.REPO
TRAIN = str(REPO / "tools" / "train.py")
EVALUATE = str(REPO / "tools" / "evaluate.py")
TINY_FLAGS = ["--dataset=cluttered_digits", "--model=2", "--base_channels=4",
              "--model_type=sact", "--tau=0.01", "--batch_size=8",
              "--log_every_n_steps=5", "--save_interval_secs=0",
              "--save_summaries_secs=0"]
TIMEOUT = 300


def _env():
  env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("TF_CONFIG", None)
  return env


def _run(args):
  return subprocess.run([sys.executable] + args, env=_env(),
                        capture_output=True, text=True, timeout=TIMEOUT)


def _snapshot(directory):
  return {p.name: (p.stat().st_mtime_ns, p.read_bytes())
          for p in pathlib.Path(directory).iterdir() if p.is_file()}


def test_bad_input_one_line_nothing_written(tmp_path, testdata_dir):
  # An existing run that no failed command may touch.
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  config = run_config.make_config(
      {"dataset": "cluttered_digits", "model": "2", "base_channels": 4,
       "model_type": "sact", "tau": 0.01, "batch_size": 8})
  run_config.write_config(str(run_dir), config)
  model = run_config.build_model(config)
  model.build((None, None, None, 3))
  checkpoint_io.make_checkpoint(model).write(str(run_dir / "ckpt-3"))
  before = _snapshot(run_dir)
  (tmp_path / "empty").mkdir()
  corrupt = tmp_path / "corrupt"
  corrupt.mkdir()
  (corrupt / "cifar10_train.tfrecord").write_bytes(
      (testdata_dir / "cifar10_train.tfrecord").read_bytes()[:200])
  base = TINY_FLAGS + [f"--train_log_dir={run_dir}"]
  cases = {
      "--dataset_dir '.*missing' does not exist": [
          "--dataset=cifar10", f"--dataset_dir={tmp_path / 'missing'}"],
      "--dataset_dir '.*empty' has no cifar10 'train' files": [
          "--dataset=cifar10", f"--dataset_dir={tmp_path / 'empty'}"],
      "corrupt or foreign TFRecord file .*cifar10_train.tfrecord": [
          "--dataset=cifar10", f"--dataset_dir={corrupt}"],
      "--finetune_path '.*nope' does not exist": [
          f"--finetune_path={tmp_path / 'nope'}"],
      "unknown dataset 'mnist'; known: cifar10, cluttered_digits, "
      "cluttered_digits_64, imagenet2012": ["--dataset=mnist"],
      "unknown strategy 'bogus'; known: default": ["--strategy=bogus"],
      "holds a run with model_kwargs": ["--model=3"],
      "unknown --config 'nope'; presets: cifar_resnet110_act": [
          "--config=nope"],
  }
  # All but one in one process (importing TensorFlow takes seconds): the
  # tool's main, as `app.run` calls it, with fresh flags each time.
  driver = (
      "import importlib.util, json, sys\n"
      f"spec = importlib.util.spec_from_file_location('train', {TRAIN!r})\n"
      "tool = importlib.util.module_from_spec(spec)\n"
      "spec.loader.exec_module(tool)\n"
      "results = []\n"
      "for argv in json.loads(sys.argv[1]):\n"
      "  tool.FLAGS.unparse_flags()\n"
      "  tool.FLAGS(['train.py'] + argv)\n"
      "  try:\n"
      "    tool.main([])\n"
      "    results.append('no error')\n"
      "  except SystemExit as e:\n"
      "    results.append(str(e.code))\n"
      "print('RESULTS ' + json.dumps(results))\n")
  result = _run(["-c", driver, json.dumps([base + v for v in cases.values()])])
  assert result.returncode == 0, result.stderr[-3000:]
  messages = json.loads(result.stdout.split("RESULTS ")[-1])
  for pattern, message in zip(cases, messages):
    assert message.startswith("train: error: "), message
    assert "\n" not in message
    assert __import__("re").search(pattern, message), (pattern, message)
  # And one as a real process: exit status 1, one line on stderr.
  result = _run([TRAIN] + base + ["--tau=-1"])
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      "train: error: --tau must be >= 0, received -1.0"]
  assert _snapshot(run_dir) == before
  assert sorted(os.listdir(tmp_path)) == ["corrupt", "empty", "run"]


def _start(args):
  return subprocess.Popen([sys.executable] + args, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def _read_until(process, predicate, lines):
  """Reads output lines until `predicate(line)`; returns that line."""
  deadline = time.time() + TIMEOUT
  for line in process.stdout:
    lines.append(line)
    if predicate(line):
      return line
    assert time.time() < deadline, "".join(lines[-50:])
  raise AssertionError("exited early:\n" + "".join(lines[-50:]))


def _drain(process, lines):
  thread = threading.Thread(target=lambda: lines.extend(process.stdout))
  thread.start()
  return thread


def test_killed_and_terminated_runs_resume(tmp_path):
  run_dir = tmp_path / "run"
  # One unit per block: the quickest SACT model to compile.
  args = [TRAIN] + TINY_FLAGS + ["--model=1", f"--train_log_dir={run_dir}"]
  # SIGKILL once two checkpoints exist: whatever it interrupts, the run
  # resumes from a complete checkpoint.
  lines = []
  process = _start(args + ["--max_number_of_steps=100000"])
  _read_until(process, lambda l: l.startswith("Saved") and "ckpt-10" in l,
              lines)
  process.kill()
  process.wait(timeout=60)
  prefix = tf.train.latest_checkpoint(str(run_dir))
  killed_step = int(prefix.rsplit("-", 1)[1])
  assert killed_step >= 10
  model, config = checkpoint_io.restore_model(str(run_dir))
  assert config["global_step"] == killed_step

  # SIGTERM: it saves a checkpoint and exits with 128 + 15.
  lines = []
  process = _start(args + ["--max_number_of_steps=100000"])
  resumed = _read_until(process, lambda l: l.startswith("Resuming"), lines)
  assert resumed.strip().endswith(f"at step {killed_step}")
  _read_until(process, lambda l: l.startswith("step "), lines)
  process.send_signal(signal.SIGTERM)
  thread = _drain(process, lines)
  assert process.wait(timeout=120) == 128 + signal.SIGTERM
  thread.join()
  stopped = [l for l in lines if l.startswith("Stopped by SIGTERM")]
  assert stopped, "".join(lines[-30:])
  stop_step = int(stopped[0].split("at step ")[1].split(";")[0])
  assert stop_step > killed_step
  assert tf.train.latest_checkpoint(str(run_dir)).endswith(
      f"ckpt-{stop_step}")

  # Runs to the end, then evaluates, as the quick start does.
  final = stop_step + 5
  result = _run(args + [f"--max_number_of_steps={final}"])
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  out = result.stdout.splitlines()
  assert out[0] == f"Resuming from {run_dir / f'ckpt-{stop_step}'} at step " \
      f"{stop_step}"
  assert f"Trained to step {final} in {run_dir}" in out
  accuracy = [l for l in out if l.startswith("eval/Accuracy[")]
  flops = [l for l in out if l.startswith("Total Flops/mean[")]
  assert accuracy and flops
  assert out[-1] == f"Wrote {run_dir / 'eval' / 'ponder_maps.png'}"
  with open(run_dir / "eval" / "metrics.json") as f:
    record = json.load(f)
  assert record["global_step"] == final
  assert record["metrics"]["eval/num_examples"] == 728
  assert accuracy[0] == f"eval/Accuracy[{record['metrics']['eval/Accuracy']:.8g}]"


def test_evaluate_an_original_release_checkpoint(tmp_path, oracle_dir,
                                                 testdata_dir):
  data_dir = tmp_path / "cifar10"
  data_dir.mkdir()
  shutil.copy(testdata_dir / "cifar10_test.tfrecord", data_dir)
  result = _run([EVALUATE,
                 f"--checkpoint_dir={oracle_dir / 'cifar_resnet32_sact'}",
                 f"--dataset_dir={data_dir}", f"--eval_dir={tmp_path / 'eval'}",
                 "--evaluate_once"])
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "eval" / "metrics.json") as f:
    metrics = json.load(f)["metrics"]
  # The oracle's first 4 images are this file's, with the same preprocessing.
  reference = np.load(oracle_dir / "cifar_resnet32_sact" / "reference.npz")
  assert metrics["eval/num_examples"] == 4
  np.testing.assert_allclose(metrics["Total Flops/mean"],
                             reference["flops_per_image"][:4].mean())
  np.testing.assert_allclose(
      metrics["block_1/ponder_cost_mean"],
      reference["block_1/ponder_cost"][:4].mean(), rtol=1e-5)
  labels = reference["image_labels"][:4]
  accuracy = np.mean(reference["logits"][:4].argmax(1) == labels)
  assert metrics["eval/Accuracy"] == accuracy
  lines = result.stdout.splitlines()
  assert f"eval/Accuracy[{accuracy:.8g}]" in lines
  assert any(l.startswith("Total Flops/mean[") for l in lines)
  assert (tmp_path / "eval" / "ponder_maps.png").exists()


@pytest.mark.parametrize("preset", sorted(
    p.stem for p in (REPO / "configs").glob("*.json")
    if not p.stem.startswith("detection_")))
def test_presets_are_valid(preset):
  """The classification presets (`tools/train_detection.py` has its own)."""
  with open(REPO / "configs" / f"{preset}.json") as f:
    settings = json.load(f)
  assert settings.pop("description")
  config = run_config.make_config(settings)
  family, depth, model_type = preset.split("_") if preset.count("_") == 2 \
      else (preset.split("_")[0], None, preset.split("_")[1])
  # "sd": a vanilla network trained with stochastic depth.
  assert (config["model_kwargs"].get("stochastic_depth", 1) < 1) == (
      model_type == "sd")
  model_type = "vanilla" if model_type == "sd" else model_type
  assert config["model_kwargs"]["model_type"] == model_type
  assert config["family"] == ("imagenet" if family == "imagenet" else "cifar")
  if model_type != "vanilla":
    assert config["model_kwargs"]["tau"] > 0
  if family == "imagenet":
    assert config["eval_use_ema"] and config["num_epochs_per_decay"] == 30
  if family == "cifar":
    assert config["learning_rate_boundaries"] == [60000, 75000, 90000]
    assert config["model_kwargs"]["model"] == {
        "resnet8": "1", "resnet14": "2", "resnet20": "3", "resnet32": "5",
        "resnet110": "18"}[depth]
