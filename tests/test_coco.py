"""COCO 2017 input: COCO's JSON and images, tensorflow-datasets' examples,
and evaluation on them. A tiny fake COCO is written to tmp_path."""

import json

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import helpers
from sact_tf.data import boxes as box_ops
from sact_tf.data import coco
from sact_tf.detection import detector as detector_lib
from sact_tf.training import detection_run

# COCO 2017's 80 category ids: 1..90 without 10 ids.
CATEGORY_IDS = [i for i in range(1, 91) if i not in
                (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
SIZE = 64


def _annotation(ann_id, image_id, category_id, bbox, crowd=0):
  return {"id": ann_id, "image_id": image_id, "category_id": category_id,
          "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": crowd,
          "segmentation": []}


def write_coco(directory, annotations=None, images=None, categories=None):
  """A fake COCO split: `(annotation file, image folder)`.

  Images: 1 (PNG, 40x80), 2 (JPEG, 64x32), 3 (PNG, 48x48, only a crowd
  box: skipped), 4 (PNG, 32x32, no annotation: skipped).
  """
  folder = directory / "images"
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  if images is None:
    images = [{"id": 1, "file_name": "a.png", "height": 40, "width": 80},
              {"id": 2, "file_name": "b.jpg", "height": 64, "width": 32},
              {"id": 3, "file_name": "c.png", "height": 48, "width": 48},
              {"id": 4, "file_name": "d.png", "height": 32, "width": 32}]
    for info in images:
      pixels = rng.integers(0, 256, (info["height"], info["width"], 3),
                            dtype=np.uint8)
      Image.fromarray(pixels).save(folder / info["file_name"])
  if annotations is None:
    annotations = [
        _annotation(10, 1, 1, [8, 4, 32, 16]),     # class 0
        _annotation(11, 1, 90, [0, 0, 80, 40]),    # class 79, whole image
        _annotation(12, 2, 13, [2, 10, 20.5, 30]),  # class 11
        _annotation(13, 2, 5, [1, 1, 4, 4], crowd=1),
        _annotation(14, 3, 5, [1, 1, 10, 10], crowd=1)]
  path = directory / "instances.json"
  path.write_text(json.dumps({
      "images": images, "annotations": annotations,
      "categories": categories or [{"id": c, "name": f"c{c}"}
                                   for c in CATEGORY_IDS]}))
  return str(path), str(folder)


@pytest.fixture(scope="module")
def fake_coco(tmp_path_factory):
  return write_coco(tmp_path_factory.mktemp("coco"))


def test_annotations_categories_and_skip_count(fake_coco):
  logged = []
  data = coco.read_annotations(*fake_coco, log=logged.append)
  assert logged == ["COCO instances.json: 2 images; skipped 2 without "
                    "annotations; ignored 2 crowd and 0 empty boxes"]
  np.testing.assert_array_equal(data["image_ids"], [1, 2])
  assert data["files"][1].endswith("images/b.jpg")
  np.testing.assert_array_equal(data["sizes"], [[40, 80], [64, 32]])
  np.testing.assert_array_equal(data["labels"][:, :3],
                                [[0, 79, -1], [11, -1, -1]])
  np.testing.assert_array_equal(data["boxes"][0, :2],
                                [[4, 8, 20, 40], [0, 0, 40, 80]])
  np.testing.assert_allclose(data["boxes"][1, 0], [10, 2, 40, 22.5])
  assert data["boxes"].shape == (2, coco.MAX_OBJECTS, 4)
  assert (data["boxes"][:, 3:] == -1).all()
  assert data["category_ids"][11] == 13 and len(data["category_ids"]) == 80


def test_images_and_boxes_are_fitted_exactly(fake_coco):
  data = coco.read_annotations(*fake_coco, log=lambda line: None)
  examples = list(coco.dataset(data, SIZE).as_numpy_iterator())
  (image_a, boxes_a, labels_a, size_a), (image_b, boxes_b, _, size_b) = (
      examples)
  np.testing.assert_array_equal(size_a, [40, 80])
  np.testing.assert_array_equal(size_b, [64, 32])
  # 40x80 -> 32x64 (factor 0.8), zeros below.
  np.testing.assert_allclose(boxes_a[:2], [[3.2, 6.4, 16, 32],
                                           [0, 0, 32, 64]], rtol=1e-6)
  np.testing.assert_array_equal(labels_a[:3], [0, 79, -1])
  pixels = np.array(Image.open(data["files"][0]))
  expected = np.round(tf.image.resize(pixels, (32, 64)).numpy())
  np.testing.assert_array_equal(image_a[:32], expected.astype(np.uint8))
  assert image_a.dtype == np.uint8 and not image_a[32:].any()
  # 64x32 fits as it is: boxes unchanged, zeros on the right.
  np.testing.assert_allclose(boxes_b[0], [10, 2, 40, 22.5])
  assert not image_b[:, 32:].any() and image_b[:, :32].any()
  # Back to the file's pixels, as the evaluation does it.
  back = detection_run._to_file_pixels(  # pylint: disable=protected-access
      np.stack([boxes_a, boxes_b]), np.stack([size_a, size_b]), SIZE)
  np.testing.assert_allclose(back[:, :2], data["boxes"][:, :2], rtol=1e-6)


@pytest.mark.parametrize("change, message", [
    (lambda a, i, c: (a + [_annotation(20, 2, 1, [30, 0, 5, 5])], i, c),
     r"box \[x, y, w, h\] = \[30, 0, 5, 5\] of annotation 20 is outside its "
     r"64x32 image 2"),
    (lambda a, i, c: (a + [_annotation(21, 1, 12, [0, 0, 5, 5])], i, c),
     "annotation 21 of image 1 has category_id 12, not one of the file's 80 "
     "categories"),
    (lambda a, i, c: ([], i, c), "holds no images or no annotations"),
    (lambda a, i, c: (a, i, c[:79]), "has 79 categories; COCO 2017 "
     "detection has 80"),
    (lambda a, i, c: (a + [_annotation(22, 9, 1, [0, 0, 2, 2])],
                      i + [{"id": 9, "file_name": "gone.png", "height": 8,
                            "width": 8}], c),
     r"images/gone.png \(image id 9\) does not exist"),
])
def test_bad_annotations_are_one_line_errors(tmp_path, fake_coco, change,
                                             message):
  with open(fake_coco[0]) as f:
    data = json.load(f)
  annotations, images, categories = change(
      data["annotations"], data["images"], data["categories"])
  path = tmp_path / "bad.json"
  path.write_text(json.dumps({"images": images, "annotations": annotations,
                              "categories": categories}))
  with pytest.raises(ValueError, match=message) as error:
    coco.read_annotations(str(path), fake_coco[1], log=lambda line: None)
  assert "\n" not in str(error.value)


def test_empty_file_and_non_image_are_one_line_errors(tmp_path, fake_coco):
  empty = tmp_path / "empty.json"
  empty.write_text("")
  with pytest.raises(ValueError, match="empty.json is not a COCO annotation "
                     r"file \(JSON\)"):
    coco.read_annotations(str(empty), fake_coco[1])
  with pytest.raises(ValueError, match="missing.json' does not exist"):
    coco.read_annotations(str(tmp_path / "missing.json"), fake_coco[1])
  folder = tmp_path / "images"
  folder.mkdir()
  (folder / "a.png").write_text("not an image")
  annotations, _ = write_coco(tmp_path, images=[
      {"id": 1, "file_name": "a.png", "height": 40, "width": 80}],
                              annotations=[_annotation(1, 1, 1, [0, 0, 4, 4])])
  with pytest.raises(ValueError, match=r"images/a.png \(image id 1\) is not "
                     "a JPEG or PNG image"):
    coco.read_annotations(annotations, str(folder), log=lambda line: None)


def test_tfds_examples_and_fail_fast(tmp_path):
  image = np.zeros((40, 80, 3), np.uint8)
  example = {"image": tf.constant(image), "objects": {
      "bbox": tf.constant([[0.1, 0.1, 0.5, 0.5], [0, 0, 1, 1]], tf.float32),
      "label": tf.constant([3, 79], tf.int64),
      "is_crowd": tf.constant([False, True])}}
  fitted, boxes, labels, size = coco.from_tfds_example(example, SIZE)
  assert fitted.shape == (SIZE, SIZE, 3) and fitted.dtype == tf.uint8
  np.testing.assert_allclose(boxes[0], [3.2, 6.4, 16, 32], rtol=1e-6)
  assert (boxes.numpy()[1:] == -1).all() and boxes.shape == (100, 4)
  np.testing.assert_array_equal(labels[:2], [3, -1])
  np.testing.assert_array_equal(size, [40, 80])
  assert not coco.has_objects({"objects": {"is_crowd": tf.constant([True])}})
  with pytest.raises(ValueError, match=r"coco/2017 is not prepared in .*; "
                     "prepare it there"):
    coco.check_tfds(str(tmp_path))


class FakeCocoBuilder:
  """tensorflow-datasets' `coco/2017` builder, prepared, with 3 images.

  The second image has a crowd box only, the third no object.
  """

  def __init__(self):
    self.splits = []

  def is_prepared(self):
    return True

  def as_dataset(self, split, decoders=None, shuffle_files=False,
                 read_config=None):
    del decoders, shuffle_files, read_config
    self.splits.append(split)

    def example(size, boxes, labels, crowd):
      return {"image": np.zeros(size + (3,), np.uint8), "objects": {
          "bbox": np.array(boxes, np.float32).reshape(-1, 4),
          "label": np.array(labels, np.int64),
          "is_crowd": np.array(crowd, bool)}}

    examples = [example((40, 80), [[0.1, 0.1, 0.5, 0.5]], [7], [False]),
                example((20, 20), [[0, 0, 1, 1]], [1], [True]),
                example((30, 30), [], [], [])]
    return tf.data.Dataset.from_generator(
        lambda: iter(examples), output_signature={
            "image": tf.TensorSpec([None, None, 3], tf.uint8),
            "objects": {"bbox": tf.TensorSpec([None, 4], tf.float32),
                        "label": tf.TensorSpec([None], tf.int64),
                        "is_crowd": tf.TensorSpec([None], tf.bool)}})


def test_tfds_dataset_skips_and_counts(monkeypatch):
  builder = FakeCocoBuilder()
  monkeypatch.setattr(coco.tfds, "builder", lambda name, data_dir: builder)
  logged = []
  out = list(coco.tfds_dataset("test", SIZE, "data", log=logged.append)
             .as_numpy_iterator())
  assert logged == ["coco/2017 validation: skipped 2 of 3 images without "
                    "annotations (crowd boxes ignored)"]
  assert builder.splits == ["validation", "validation"] and len(out) == 1
  image, boxes, labels, size = out[0]
  assert image.shape == (SIZE, SIZE, 3)
  np.testing.assert_allclose(boxes[0], [3.2, 6.4, 16, 32], rtol=1e-6)
  np.testing.assert_array_equal(labels[:2], [7, -1])
  np.testing.assert_array_equal(size, [40, 80])
  training = coco.tfds_dataset("train", SIZE, "data", train_seed=1,
                               log=lambda line: None)
  assert len(list(training.take(3).as_numpy_iterator())) == 3  # Repeated.


def _coco_config(fake_coco, **settings):
  return detection_run.make_config({
      **helpers.TINY_DETECTION_RUN, "dataset": "coco", "image_size": SIZE,
      "model_type": "sact", "coco_annotations": fake_coco[0],
      "coco_images": fake_coco[1], "eval_coco_annotations": fake_coco[0],
      "eval_coco_images": fake_coco[1], **settings})


def test_evaluation_on_coco_scores_in_file_pixels(fake_coco, monkeypatch):
  """Detections equal to the fitted ground truths: AP 1 in file pixels."""
  config = _coco_config(fake_coco)
  data = coco.read_annotations(*fake_coco, log=lambda line: None)
  fitted = [b for _, b, _, _ in coco.dataset(data, SIZE).as_numpy_iterator()]
  detect = detector_lib.detect

  def perfect(detector, images):
    out = detect(detector, images)
    n = len(images)
    boxes = np.stack(fitted[:n])
    del fitted[:n]
    labels = np.where(boxes[..., 0] < 0, -1, data["labels"][:n])
    return dict(out, boxes=tf.constant(boxes), labels=tf.constant(labels),
                confidence=tf.ones(labels.shape))

  monkeypatch.setattr(detector_lib, "detect", perfect)
  detector = detection_run.build_detector(config)
  logged = []
  results, kept = detection_run.evaluate(detector, config, batch_size=2,
                                         num_kept=1, log=logged.append)
  assert results["AP"] == pytest.approx(1.0)
  # In file pixels: 32x16 (512) and 20.5x30 (615): small; 80x40: medium.
  assert results["APs"] == pytest.approx(1.0)
  assert results["APm"] == pytest.approx(1.0) and results["APl"] == -1
  assert results["num_examples"] == 2 and "skipped 2" in logged[0]
  assert kept["images"].shape == (1, SIZE, SIZE, 3)
  assert 0 < results["ponder_cost_in_boxes"]


def test_coco_settings_are_checked(fake_coco, tmp_path):
  with pytest.raises(ValueError, match="--coco_annotations is for "
                     "--dataset=coco"):
    detection_run.make_config({"coco_annotations": fake_coco[0]})
  with pytest.raises(ValueError, match="digit_scenes are 64x64"):
    detection_run.make_config({"image_size": 128})
  config = _coco_config(fake_coco, eval_coco_images=str(tmp_path / "none"))
  with pytest.raises(ValueError, match="--eval_coco_images .* is not a "
                     "directory"):
    detection_run.check_data(config, "test")
  with pytest.raises(ValueError, match=r"coco/2017 is not prepared"):
    detection_run.check_data(detection_run.make_config(
        {"dataset": "coco", "tfds_data_dir": str(tmp_path)}), "train")
  moved = detection_run.with_data(config, "test", coco_images=fake_coco[1])
  assert moved["eval_coco_images"] == fake_coco[1]
  assert moved["coco_images"] == config["coco_images"]


@pytest.mark.slow
def test_train_and_evaluate_tools_on_coco(fake_coco, tmp_path):
  annotations, images = fake_coco
  run = tmp_path / "run"
  result = helpers.run_tool("train_detection.py", [
      "--dataset=coco", "--image_size=64", "--model=1_2_1_1",
      "--model_type=sact", "--base_channels=4", "--batch_size=2",
      "--max_number_of_steps=1", "--head_conv_layers=0",
      f"--coco_annotations={annotations}", f"--coco_images={images}",
      f"--eval_coco_annotations={annotations}",
      f"--eval_coco_images={images}", f"--train_log_dir={run}"])
  assert result.returncode == 0, result.stderr
  assert "skipped 2 without annotations" in result.stdout
  assert "AP50" in result.stdout
  result = helpers.run_tool("evaluate_detection.py", [
      f"--checkpoint_dir={run}", "--evaluate_once", "--num_pictures=1",
      f"--coco_annotations={tmp_path / 'none.json'}",
      f"--coco_images={images}"])
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"evaluate_detection: error: COCO annotation file "
      f"'{tmp_path / 'none.json'}' does not exist")
