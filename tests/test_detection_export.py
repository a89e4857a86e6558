"""Detectors as SavedModels for TF Serving, and `detect`'s single pass."""

import io
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import helpers
from sact_tf.data import boxes as box_ops
from sact_tf.data import digit_scenes
from sact_tf.detection import detector as detector_lib
from sact_tf.export import saved_model
from sact_tf.training import detection_run

BLOCKS = ("block1", "block2", "block3", "block4")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
  """`(detector (dense), run dir, version dir, loaded signatures)`."""
  detector, run_dir, path = helpers.exported_detector(tmp_path_factory)
  return detector, run_dir, path, tf.saved_model.load(path).signatures


def scenes(n=3):
  """uint8 `[n, 64, 64, 3]` test canvases."""
  return digit_scenes.load("test")["image"][:n]


def run(signature, **inputs):
  return {k: v.numpy() for k, v in signature(**{
      k: tf.constant(v) for k, v in inputs.items()}).items()}


def assert_detections_equal(outputs, expected, atol=1e-4):
  np.testing.assert_array_equal(outputs["num_detections"],
                                expected["num_detections"])
  np.testing.assert_array_equal(outputs["classes"], expected["labels"])
  np.testing.assert_allclose(outputs["boxes"], expected["boxes"], atol=atol)
  np.testing.assert_allclose(outputs["scores"], expected["confidence"],
                             atol=1e-5)
  np.testing.assert_array_equal(outputs["flops"], expected["flops"])


def test_detect_runs_the_backbone_once_with_the_detectors_outputs(
    monkeypatch):
  """`forward` gives `detector(images)` and the encoder's own outputs."""
  config = detection_run.make_config(dict(helpers.TINY_DETECTION_RUN,
                                          model_type="sact", max_level=6))
  detector = detection_run.build_detector(config)
  encoder = detector_lib.image_encoder(detector)
  helpers.randomize_halting(encoder.resnet)
  images = box_ops.scale_images(scenes())
  raw, features = detector_lib.forward(detector, images)
  expected = detector(images, training=False)
  for key in ("bbox_regression", "cls_logits"):
    np.testing.assert_allclose(raw[key], expected[key], rtol=1e-5, atol=1e-5)
  own = encoder(images, training=False)
  np.testing.assert_array_equal(features["flops"], own["flops"])
  np.testing.assert_allclose(features["ponder_cost_map"],
                             own["ponder_cost_map"], atol=1e-6)
  assert len(np.unique(own["flops"])) > 1
  calls = []
  resnet_call = encoder.resnet.call
  monkeypatch.setattr(encoder.resnet, "call", lambda *args, **kwargs: (
      calls.append(1), resnet_call(*args, **kwargs))[1])
  found = detector_lib.detect(detector, images)
  assert len(calls) == 1  # The ResNet ran once.
  assert set(found) == {"boxes", "confidence", "labels", "num_detections",
                        "flops", "ponder_cost_map",
                        *(f"{b}/ponder_cost" for b in BLOCKS)}


def test_optimized_detector_gives_the_same_detections(export):
  """Batch norms folded: the detections up to float32 rounding."""
  detector, _, _, _ = export
  optimized = detector_lib.optimize(detector)
  encoder = detector_lib.image_encoder(optimized)
  assert encoder.folded_batch_norm and encoder.resnet.folded_batch_norm
  assert len(optimized.variables) < len(detector.variables) - 40
  images = box_ops.scale_images(scenes())
  found = detector_lib.detect(optimized, images)
  expected = {k: v.numpy() for k, v in detector_lib.detect(
      detector, images).items()}
  assert_detections_equal(
      {"boxes": found["boxes"], "scores": found["confidence"],
       "classes": found["labels"], "num_detections": found["num_detections"],
       "flops": found["flops"]}, expected)
  np.testing.assert_allclose(found["ponder_cost_map"],
                             expected["ponder_cost_map"], atol=1e-5)


def test_signatures_equal_detect(export):
  detector, _, path, signatures = export
  assert os.listdir(os.path.dirname(path)) == ["1"]
  assert set(signatures) == {"serving_default", "serving_bytes"}
  spec = signatures["serving_default"].structured_input_signature[1]
  assert spec["images"].shape.as_list() == [None, 64, 64, 3]
  images = box_ops.scale_images(scenes()).numpy()
  outputs = run(signatures["serving_default"], images=images)
  assert set(outputs) == {"boxes", "scores", "classes", "num_detections",
                          "flops", "ponder_cost_map",
                          *(b + "_ponder_cost" for b in BLOCKS)}
  # The in-memory detector runs densely, the export sparsely, batch norms
  # folded.
  expected = {k: v.numpy() for k, v in detector_lib.detect(
      detector, images).items()}
  assert expected["num_detections"].min() > 0
  assert len(np.unique(expected["flops"])) > 1
  assert_detections_equal(outputs, expected)
  np.testing.assert_allclose(outputs["ponder_cost_map"],
                             expected["ponder_cost_map"], atol=1e-5)
  for block in BLOCKS:
    np.testing.assert_allclose(
        outputs[block + "_ponder_cost"],
        expected[block + "/ponder_cost"].mean((1, 2)), atol=1e-5)


def _png(image):
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def test_bytes_signature_equals_the_image_signature(export):
  _, _, _, signatures = export
  images = scenes(2)
  by_image = run(signatures["serving_default"],
                 images=box_ops.scale_images(images).numpy())
  by_bytes = run(signatures["serving_bytes"], image_bytes=np.array(
      [_png(image) for image in images], dtype=object))
  assert_detections_equal(by_bytes, {
      "num_detections": by_image["num_detections"],
      "labels": by_image["classes"], "boxes": by_image["boxes"],
      "confidence": by_image["scores"], "flops": by_image["flops"]},
                          atol=1e-5)
  # Twice the size (pixels repeated): the same detections, boxes in the
  # file's pixels, twice as large.
  large = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)
  by_large = run(signatures["serving_bytes"], image_bytes=np.array(
      [_png(image) for image in large], dtype=object))
  np.testing.assert_array_equal(by_large["classes"], by_image["classes"])
  valid = by_image["classes"] >= 0
  np.testing.assert_allclose(by_large["boxes"][valid],
                             2 * by_image["boxes"][valid], atol=2e-4)
  np.testing.assert_array_equal(by_large["boxes"][~valid], -1)


def test_existing_version_is_refused(export):
  _, run_dir, path, _ = export
  base = os.path.dirname(path)
  stamp = os.stat(os.path.join(path, "saved_model.pb")).st_mtime_ns
  with pytest.raises(ValueError, match=r"models/1 already exists \(versions "
                     r"\[1\] are there\); pass --version=2 or --overwrite"):
    saved_model.export_checkpoint(str(run_dir), base, version=1)
  with pytest.raises(ValueError, match="detection run, which keeps no moving"):
    saved_model.export_checkpoint(str(run_dir), base, version=2,
                                  use_ema=True)
  assert os.listdir(base) == ["1"]  # Nothing half-written.
  assert os.stat(os.path.join(path, "saved_model.pb")).st_mtime_ns == stamp


@pytest.mark.slow
def test_tool_exports_a_vanilla_detection_run(tmp_path):
  helpers.write_detection_run(tmp_path / "run", "vanilla")
  result = helpers.run_tool("export_saved_model.py", [
      f"--checkpoint_dir={tmp_path / 'run'}",
      f"--export_dir={tmp_path / 'models'}"])
  assert result.returncode == 0, result.stderr
  assert "(detector, vanilla backbone, inference-optimised)" in (
      result.stdout)
  assert "returning boxes, scores, classes, num_detections" in result.stdout
  loaded = tf.saved_model.load(str(tmp_path / "models" / "1"))
  outputs = loaded.signatures["serving_default"].structured_outputs
  assert set(outputs) == {"boxes", "scores", "classes", "num_detections",
                          "flops"}
