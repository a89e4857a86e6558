"""TFLite conversion: tools/convert_tflite.py, run with the LiteRT interpreter."""

import subprocess
import sys

from ai_edge_litert.interpreter import Interpreter
import numpy as np
import pytest
import tensorflow as tf

import helpers
from helpers import REPO
from sact_tf.export import tflite

IMAGES = {"imagenet": np.random.default_rng(2).uniform(
    -1, 1, (3, 64, 64, 3)).astype(np.float32),
          "cifar": np.random.default_rng(2).normal(
              size=(3, 32, 32, 3)).astype(np.float32)}
_FLOAT_MODELS = {}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
  return helpers.exported(tmp_path_factory)


def float_model(path):
  """The float .tflite file of a SavedModel (converted once)."""
  if path not in _FLOAT_MODELS:
    _FLOAT_MODELS[path] = tflite.convert_saved_model(path)
  return _FLOAT_MODELS[path]


def run_both(path, model_content, images):
  """Outputs of the SavedModel and of the .tflite file on `images`."""
  saved = tf.saved_model.load(path).signatures["serving_default"](
      images=tf.constant(images))
  runner = Interpreter(model_content=model_content).get_signature_runner(
      "serving_default")
  return {k: v.numpy() for k, v in saved.items()}, runner(images=images)


@pytest.mark.parametrize("family, model_type", [
    ("imagenet", "sact"),
    ("cifar", "act_early_stopping"),
    ("cifar", "sampling")])
def test_float_tflite_matches_the_saved_model(tmp_path_factory, family,
                                              model_type):
  """Floats within 1e-4, ints equal; SACT is exported with sparse execution."""
  _, _, path = helpers.exported(tmp_path_factory, family, model_type)
  saved, lite = run_both(path, float_model(path), IMAGES[family])
  assert set(lite) == set(saved)
  for key, value in saved.items():
    assert lite[key].dtype == value.dtype, key
    if value.dtype.kind == "f":
      np.testing.assert_allclose(lite[key], value, rtol=0, atol=1e-4,
                                 err_msg=key)
    else:
      np.testing.assert_array_equal(lite[key], value, err_msg=key)
  # Halting varies between the images (and for SACT within them and in
  # the FLOPs, so the comparison covers the sparse path's decisions).
  if model_type == "sampling":
    # The masks vary between the images, and so do the FLOPs.
    assert len(set(saved["block_2_sampling_density"])) == 3
    assert len(set(saved["flops"])) == 3
    return
  assert len(set(saved["block_2_ponder_cost" if family == "cifar" else
                       "block2_ponder_cost"])) == 3
  if model_type == "sact":
    assert len(set(saved["flops"])) == 3
    assert saved["ponder_cost_map"].min() < saved["ponder_cost_map"].max()


def test_dynamic_range_quantization(export, tmp_path):
  _, _, path = export
  int8_size = tflite.write_tflite(path, str(tmp_path / "q.tflite"),
                                  quantize="dynamic_range")
  # Only tensors of 1024 or more elements are quantized: in this tiny model
  # most of the kernels' weights (in a ResNet-50 nearly all of them), each
  # stored in one byte instead of four. (The graph, the rest of this tiny
  # model's file, is not a size to test against.)
  interpreter = Interpreter(model_path=str(tmp_path / "q.tflite"))
  int8_weights = sum(int(np.prod(t["shape"]))
                     for t in interpreter.get_tensor_details()
                     if t["dtype"] == np.int8)
  large_weights = sum(
      v.shape.num_elements() for v in tf.saved_model.load(path).variables
      if v.shape.num_elements() >= 1024)
  assert int8_weights > 0.8 * large_weights
  assert len(float_model(path)) - int8_size >= 3 * int8_weights
  saved, lite = run_both(path, (tmp_path / "q.tflite").read_bytes(),
                         IMAGES["imagenet"])
  np.testing.assert_allclose(lite["probabilities"], saved["probabilities"],
                             atol=0.05)
  np.testing.assert_array_equal(lite["classes"][:, 0], saved["classes"][:, 0])


def test_bad_arguments_are_refused(export, tmp_path):
  _, _, path = export
  base = path[:-len("/1")]
  with pytest.raises(ValueError, match=(
      f"no SavedModel in '{base}'; it is a TF Serving base directory, pass "
      f"one of its versions, e.g. {path}")):
    tflite.convert_saved_model(base)
  (tmp_path / "old.tflite").write_bytes(b"old")
  with pytest.raises(ValueError, match="old.tflite already exists; pass "
                                       "--overwrite to replace it"):
    tflite.write_tflite(path, str(tmp_path / "old.tflite"))
  assert (tmp_path / "old.tflite").read_bytes() == b"old"
  with pytest.raises(ValueError, match="must end in .tflite"):
    tflite.write_tflite(path, str(tmp_path / "q.lite"))
  with pytest.raises(ValueError, match="quantize must be one of"):
    tflite.convert_saved_model(path, quantize="int4")


def test_tool_refuses_flex_ops_in_one_line(tmp_path):
  class Inverse(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None, 2, 2], tf.float32)])
    def serve(self, x):
      return {"inverse": tf.linalg.inv(x)}

  module = Inverse()
  tf.saved_model.save(module, str(tmp_path / "inverse"),
                      signatures={"serving_default": module.serve})
  output = tmp_path / "inverse.tflite"
  result = subprocess.run(
      [sys.executable, "tools/convert_tflite.py",
       f"--saved_model_dir={tmp_path / 'inverse'}", f"--output={output}"],
      cwd=REPO, capture_output=True, text=True)
  assert result.returncode != 0
  # The converter's MLIR dump stays off the terminal.
  assert "tf.MatrixInverse" not in result.stderr.replace(
      result.stderr.strip().splitlines()[-1], "")
  assert result.stderr.strip().splitlines()[-1] == (
      f"convert_tflite: error: '{tmp_path / 'inverse'}' needs ops that "
      f"TFLite has no builtin kernel for (they would need the Flex "
      f"delegate): tf.MatrixInverse (at MatrixInverse)")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["inverse"]
