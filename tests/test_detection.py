"""Detection: the SACT backbone under keras-hub's RetinaNet, COCO metrics,
box ops and the digit scenes."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from sact_tf import detection
from sact_tf.data import boxes as box_ops
from sact_tf.data import digit_scenes
from sact_tf.detection import detector as detector_lib
from sact_tf.training import checkpoint_io
from sact_tf.training import detection_run
import helpers

DEPTH = "1_2_2_2"


def _images(n=2, size=64, seed=0):
  return np.random.default_rng(seed).uniform(
      -1, 1, (n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("model_type", ["vanilla", "sact"])
def test_pyramid_is_the_classifier_block_outputs(tmp_path, model_type):
  """Same weights (from a run dir / a .keras file): P3-P5 are block2-4."""
  classifier = helpers.write_run(tmp_path / "run", "imagenet", model_type,
                                 depth=DEPTH)
  source = str(tmp_path / "run")
  if model_type == "vanilla":
    source = str(tmp_path / "classifier.keras")
    classifier.save(source)
  backbone = detection.AdaptiveResNetBackbone(
      model=DEPTH, model_type=model_type, base_channels=4)
  loaded = checkpoint_io.initialize_from(backbone.resnet, source,
                                         load_halting=True)
  assert loaded == len(backbone.resnet.variables)
  images = _images()
  expected = classifier(images, training=False)
  features = backbone(images, training=False)
  pyramid = keras.Model(backbone.inputs, backbone.pyramid_outputs)(images)
  for level, block in (("P3", "block2"), ("P4", "block3"), ("P5", "block4")):
    np.testing.assert_allclose(pyramid[level], expected[f"{block}/outputs"],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(features[f"{block}/flops"],
                                  expected[f"{block}/flops"])
  assert pyramid["P3"].shape[1:3] == (8, 8)  # stride 8 on 64 pixels
  if model_type == "sact":
    np.testing.assert_allclose(features["ponder_cost_map"],
                               expected["ponder_cost_map"], rtol=1e-5)
    assert len(np.unique(features["flops"])) > 1  # halting varies


def test_backbone_config_round_trip():
  backbone = detection.AdaptiveResNetBackbone(
      model=DEPTH, model_type="sact", base_channels=4, tau=0.02)
  config = backbone.get_config()
  copy = detection.AdaptiveResNetBackbone.from_config(config)
  assert copy.get_config() == config
  assert config["tau"] == 0.02 and config["execution"] == "dense"
  with pytest.raises(ValueError, match="image_shape"):
    detection.AdaptiveResNetBackbone(image_shape=(64, 64))


def _tiny_detector(execution="dense", tau=0.01, **kwargs):
  keras.utils.set_random_seed(0)
  det = detection.build_detector(
      10, dict(model=DEPTH, model_type="sact", base_channels=4, tau=tau,
               execution=execution,
               sparse_config=helpers.ALWAYS_SPARSE["gathered"]),
      max_level=5, anchor_size=2.0, head_conv_layers=1, **kwargs)
  det(_images(1))
  helpers.randomize_halting(detector_lib.image_encoder(det).resnet)
  return det


def test_sparse_and_dense_give_the_same_detections():
  dense = _tiny_detector()
  # A tame box head: small deltas, boxes near their anchors (an untrained
  # head's deltas blow up in exp()).
  kernel = dense.box_head.weights[-2]
  kernel.assign(kernel * 1e-3)
  sparse = detector_lib.set_execution(dense, "sparse")
  assert detector_lib.image_encoder(sparse).execution == "sparse"
  images = _images(3)
  a = detection.detect(dense, images)
  b = detection.detect(sparse, images)
  np.testing.assert_array_equal(a["flops"], b["flops"])
  assert len(np.unique(a["flops"])) > 1
  np.testing.assert_array_equal(a["labels"], b["labels"])
  np.testing.assert_array_equal(a["num_detections"], b["num_detections"])
  np.testing.assert_allclose(a["boxes"], b["boxes"], atol=1e-4)
  np.testing.assert_allclose(a["confidence"], b["confidence"], atol=1e-5)
  np.testing.assert_allclose(a["ponder_cost_map"], b["ponder_cost_map"],
                             atol=1e-5)
  valid = a["labels"].numpy() >= 0
  assert (a["boxes"].numpy()[valid] <= 64).all()


def test_ponder_cost_is_a_detector_loss():
  det = _tiny_detector(tau=0.5)
  det(_images(2))
  encoder = detector_lib.image_encoder(det)
  out = encoder(_images(2))
  ponder = 0.5 * sum(float(tf.reduce_mean(out[f"block{i}/ponder_cost"]))
                     for i in range(1, 5))
  det(_images(2))
  assert any(abs(float(l) - ponder) < 1e-4 * ponder for l in det.losses)


def _box(y, x, h=10.0, w=10.0):
  return [y, x, y + h, x + w]


def _truth(*boxes, labels=None):
  return {"boxes": np.array(boxes, np.float32),
          "labels": np.array(labels or [0] * len(boxes))}


def _found(*boxes, labels=None, scores=None):
  return {"boxes": np.array(boxes, np.float32),
          "labels": np.array(labels or [0] * len(boxes)),
          "scores": np.array(scores or [0.9] * len(boxes))}


def test_coco_metrics_known_values():
  truths = [_truth(_box(10, 10), _box(30, 40), labels=[1, 2]),
            _truth(_box(0, 0, 40, 40), labels=[3])]
  perfect = detection.coco_metrics(
      truths, [_found(_box(10, 10), _box(30, 40), labels=[1, 2]),
               _found(_box(0, 0, 40, 40), labels=[3])], 5)
  assert perfect["AP"] == pytest.approx(1.0)
  assert perfect["AP50"] == perfect["AP75"] == pytest.approx(1.0)
  assert perfect["APs"] == pytest.approx(1.0)   # 10x10 boxes: small
  assert perfect["APm"] == pytest.approx(1.0)   # 40x40: medium
  assert perfect["APl"] == -1.0                 # no large object
  # Shifted by 2.3 pixels: IoU 7.7 / 12.3 = 0.626, a match at the IoU
  # thresholds 0.50, 0.55, 0.60 of the ten: AP 0.3.
  shifted = detection.coco_metrics(
      [_truth(_box(10, 10))], [_found(_box(10, 12.3))], 1)
  assert shifted["AP"] == pytest.approx(0.3)
  assert shifted["AP50"] == pytest.approx(1.0)
  assert shifted["AP75"] == pytest.approx(0.0)
  # One of two objects found: precision 1 up to recall 0.5, 51 of the 101
  # recall points.
  half = detection.coco_metrics([_truth(_box(0, 0), _box(40, 40))],
                                [_found(_box(0, 0))], 1)
  assert half["AP"] == pytest.approx(51 / 101)
  wrong_class = detection.coco_metrics(
      [_truth(_box(0, 0))], [_found(_box(0, 0), labels=[1])], 2)
  assert wrong_class["AP"] == pytest.approx(0.0)
  none = detection.coco_metrics([_truth(_box(0, 0))],
                                [_found(_box(0, 0), labels=[-1],
                                        scores=[0.0])], 1)
  assert none["AP"] == 0.0
  with pytest.raises(ValueError, match="no object"):
    detection.coco_metrics([_truth(_box(0, 0), labels=[-1])], [_found()], 1)


def test_box_ops():
  image = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
  boxes = np.array([[0, 1, 2, 2], [-1, -1, -1, -1]], np.float32)
  flipped_image, flipped = box_ops.flip_left_right(image, boxes)
  np.testing.assert_array_equal(flipped, [[0, 2, 2, 3], [-1, -1, -1, -1]])
  np.testing.assert_array_equal(flipped_image[:, 0], image[:, 3])
  back_image, back = box_ops.flip_left_right(flipped_image, flipped)
  np.testing.assert_array_equal(back, boxes)
  np.testing.assert_array_equal(back_image, image)
  resized_image, resized = box_ops.resize(image, boxes, (4, 12))
  assert resized_image.shape == (4, 12, 3)
  np.testing.assert_allclose(resized, [[0, 3, 4, 6], [-1, -1, -1, -1]])
  mask = box_ops.box_mask(np.array([[1, 1, 3, 2], [-1, -1, -1, -1]],
                                   np.float32), 4, 4)
  np.testing.assert_array_equal(mask[..., 0], [[0, 0, 0, 0], [0, 1, 0, 0],
                                               [0, 1, 0, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("boxes, labels, message", [
    ([[[0, 0, 70, 10]]], [[1]], "outside the 64x64 image"),
    ([[[5, 5, 5, 10]]], [[1]], "empty or outside"),
    ([[[0, 0, 10, 10]]], [[10]], "class id 10 of image 0 is out of range"),
])
def test_bad_annotations(boxes, labels, message):
  with pytest.raises(ValueError, match=message):
    box_ops.check_annotations(boxes, labels, (64, 64), 10, name="x.json")


def test_digit_scenes():
  data = digit_scenes.load("test")
  assert data["image"].shape == (500, 64, 64, 3)
  assert data["image"].dtype == np.uint8
  box_ops.check_annotations(data["boxes"], data["labels"], (64, 64), 10)
  counts = (data["labels"] >= 0).sum(1)
  assert set(counts) == {1, 2, 3}
  # Every box holds its digit's ink; boxes of one canvas do not overlap.
  for n in range(20):
    b = data["boxes"][n][data["labels"][n] >= 0].astype(int)
    for y0, x0, y1, x1 in b:
      assert data["image"][n, y0:y1, x0:x1].max() > 128
    mask = box_ops.box_mask(b.astype(np.float32), 64, 64).numpy()
    assert mask.sum() == 256 * len(b)
  again = digit_scenes.load.__wrapped__("test")
  np.testing.assert_array_equal(again["image"], data["image"])
  with pytest.raises(ValueError, match="split='val'"):
    digit_scenes.load("val")


TINY_RUN = {"model": "1_2_1_1", "model_type": "sact", "base_channels": 4,
            "batch_size": 4, "checkpoint_every": 2, "max_number_of_steps": 2,
            "head_conv_layers": 0}


def test_training_resumes_and_keeps_its_configuration(tmp_path, capsys):
  run = str(tmp_path / "run")
  config = detection_run.make_config(TINY_RUN)
  _, step = detection_run.train(config, run)
  assert step == 2 and "step 2/2" in capsys.readouterr().out
  longer = detection_run.make_config(dict(TINY_RUN, max_number_of_steps=3))
  _, step = detection_run.train(longer, run)
  # Resumed at step 2: one step more.
  assert step == 3 and capsys.readouterr().out.count("step ") == 1
  with pytest.raises(ValueError, match="another configuration"):
    detection_run.train(detection_run.make_config(
        dict(TINY_RUN, model_type="vanilla")), run)
  _, restored = detection_run.restore(run)
  assert restored["global_step"] == 3
  with pytest.raises(ValueError, match="tau must be >= 0"):
    detection_run.make_config(dict(TINY_RUN, tau=-1.0))


@pytest.mark.slow
def test_train_and_evaluate_detection_tools(tmp_path):
  run = tmp_path / "run"
  result = helpers.run_tool("train_detection.py", [
      "--model=1_2_1_1", "--model_type=sact", "--base_channels=4",
      "--batch_size=2", "--max_number_of_steps=1", "--head_conv_layers=0",
      "--noeval_after_training", f"--train_log_dir={run}"])
  assert result.returncode == 0, result.stderr
  assert "step 1/1" in result.stdout
  result = helpers.run_tool(
      "evaluate_detection.py",
      [f"--checkpoint_dir={run}", "--evaluate_once", "--num_examples=4",
       "--num_pictures=2", "--execution=sparse",
       f"--eval_dir={tmp_path / 'eval'}"])
  assert result.returncode == 0, result.stderr
  results = json.loads((tmp_path / "eval" / "results.json").read_text())
  assert results["global_step"] == 1 and results["num_examples"] == 4
  assert 0 <= results["AP"] <= 1
  # Fresh halting runs every unit: the halting heads add ~0.2%.
  assert 0.5 < results["flops_share_of_vanilla"] < 1.01
  assert results["ponder_cost_in_boxes"] >= 1
  assert (tmp_path / "eval" / "detections.png").stat().st_size > 0
  assert "AP50" in result.stdout and "% of vanilla" in result.stdout


@pytest.mark.slow
def test_evaluate_detection_bad_directory(tmp_path):
  result = helpers.run_tool("evaluate_detection.py",
                            [f"--checkpoint_dir={tmp_path / 'none'}",
                             "--evaluate_once"])
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      "evaluate_detection: error: checkpoint path")


def test_head_initialization_is_retinanets():
  det = _tiny_detector()
  box_bias = det.box_head.prediction_layer.bias.numpy()
  class_bias = det.classification_head.prediction_layer.bias.numpy()
  np.testing.assert_array_equal(box_bias, 0.0)
  np.testing.assert_allclose(class_bias, -np.log(99.0), rtol=1e-6)


@pytest.mark.parametrize("preset", sorted(
    p.stem for p in (helpers.REPO / "configs").glob("detection_*.json")))
def test_presets_are_valid(preset):
  with open(helpers.REPO / "configs" / f"{preset}.json") as f:
    settings = json.load(f)
  assert settings.pop("description")
  config = detection_run.make_config(settings)
  assert config["backbone_kwargs"]["model_type"] == preset.split("_")[-1]
