"""Tests of sact_tf.checkpoints and tools/convert_checkpoint.py."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import oracle
import helpers
from helpers import REPO
from sact_tf import checkpoints
from sact_tf import models


def write_tf1_checkpoint(prefix, tensors):
  """Writes a name-based (TF1 Saver style) checkpoint of `tensors`."""
  names = sorted(tensors)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                    shape_and_slices=[""] * len(names),
                    tensors=[tf.constant(tensors[n]) for n in names])


def original_tensors(model, seed=0):
  rng = np.random.default_rng(seed)
  return {name: rng.normal(size=v.shape).astype(np.float32)
          for name, v in checkpoints.original_variable_names(model).items()}


def tiny(model_type="sact", **kwargs):
  model = helpers.tiny_model("imagenet", model_type, depth="1_1_2_1",
                             num_classes=6, **kwargs)
  model.build((None, 32, 32, 3))
  return model


def test_loads_every_variable_and_skips_training_state(tmp_path):
  model = tiny()
  tensors = original_tensors(model)
  extra = {"global_step": np.int64(7),
           "resnet_v2/logits/weights/Momentum": np.zeros([1, 1, 64, 6],
                                                         np.float32)}
  prefix = str(tmp_path / "model.ckpt-7")
  write_tf1_checkpoint(prefix, {**tensors, **extra})
  fresh = tiny()
  assert checkpoints.load_original_checkpoint(fresh, str(tmp_path)) == prefix
  for name, v in checkpoints.original_variable_names(fresh).items():
    np.testing.assert_array_equal(v.numpy(), tensors[name], err_msg=name)


def test_moving_averages(tmp_path):
  model = tiny("vanilla")
  tensors = original_tensors(model)
  ema = {n + "/ExponentialMovingAverage": v + 1 for n, v in tensors.items()
         if n.endswith("/weights")}
  write_tf1_checkpoint(str(tmp_path / "ckpt"), {**tensors, **ema})
  checkpoints.load_original_checkpoint(model, str(tmp_path / "ckpt"),
                                       use_moving_averages=True)
  names = checkpoints.original_variable_names(model)
  np.testing.assert_array_equal(names["resnet_v2/logits/weights"],
                                tensors["resnet_v2/logits/weights"] + 1)
  np.testing.assert_array_equal(names["resnet_v2/logits/biases"],
                                tensors["resnet_v2/logits/biases"])


def test_another_architecture_is_refused(tmp_path):
  write_tf1_checkpoint(str(tmp_path / "ckpt"), original_tensors(tiny("act")))
  model = tiny("sact")
  with pytest.raises(ValueError, match=(
      r"missing from the checkpoint: .*halting_proba/local_bn.*unexpected")):
    checkpoints.load_original_checkpoint(model, str(tmp_path / "ckpt"))


def test_another_width_is_refused(tmp_path):
  write_tf1_checkpoint(str(tmp_path / "ckpt"), original_tensors(tiny()))
  wider = models.imagenet_resnet("1_1_2_1", num_classes=6, model_type="sact",
                                 base_channels=8)
  with pytest.raises(ValueError, match=r"of another shape: .*conv1/weights"):
    checkpoints.load_original_checkpoint(wider, str(tmp_path / "ckpt"))


def test_missing_checkpoint(tmp_path):
  with pytest.raises(ValueError, match="no checkpoint found in directory"):
    checkpoints.load_original_checkpoint(tiny(), str(tmp_path))
  with pytest.raises(ValueError, match="no checkpoint at"):
    checkpoints.load_original_checkpoint(tiny(), str(tmp_path / "nope"))


def test_infer_architecture(oracle_dir):
  for folder in sorted(oracle_dir.glob("*/case.json")):
    case = oracle.load_case(folder.parent)
    arch = checkpoints.infer_architecture(str(folder.parent / "model.ckpt"))
    units = case["model"]
    if case["family"] == "imagenet" and len(units) == 1:
      units = models.imagenet_resnet(str(units[0]))._units  # pylint: disable=protected-access
    elif len(units) == 1:
      units = units * 3
    assert arch == {
        "family": case["family"], "model": "_".join(map(str, units)),
        "num_classes": case["num_classes"],
        "model_type": case["model_type"],
        "base_channels": case["base_channels"]}


def run_tool(*args):
  return subprocess.run([sys.executable, str(REPO / "tools/convert_checkpoint.py"),
                         *args], capture_output=True, text=True, check=False)


def test_convert_tool(tmp_path, oracle_dir):
  case = oracle_dir / "cifar_resnet32_sact"
  output = tmp_path / "sact.keras"
  result = run_tool(f"--checkpoint={case}/model.ckpt", f"--output={output}",
                    "--tau=0.01")
  assert result.returncode == 0, result.stderr
  model = keras.saving.load_model(str(output))
  assert model.tau == 0.01 and model.model_type == "sact"
  reference = np.load(case / "reference.npz")
  oracle.compare(model(reference["images"], training=False), reference,
                 sact=True)
  # An existing output is kept unless --overwrite is given.
  before = output.read_bytes()
  result = run_tool(f"--checkpoint={case}/model.ckpt", f"--output={output}")
  assert result.returncode != 0
  assert "already exists" in result.stderr.strip().splitlines()[-1]
  assert output.read_bytes() == before


def test_convert_tool_bad_checkpoint(tmp_path):
  output = tmp_path / "x.keras"
  result = run_tool(f"--checkpoint={tmp_path}/nope", f"--output={output}")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      f"convert_checkpoint: error: no checkpoint at '{tmp_path}/nope' "
      f"(no {tmp_path}/nope.index)")
  assert not os.listdir(tmp_path)
