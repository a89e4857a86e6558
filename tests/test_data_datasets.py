"""Datasets: the offline default, the original's TFRecords, tfds (mocked)."""

import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import helpers
from sact_tf.data import cluttered_digits
from sact_tf.data import datasets


@pytest.fixture(name="slim_dir")
def fixture_slim_dir(tmp_path, testdata_dir):
  """A dataset directory as the original's users have it."""
  for name in ("cifar10_train.tfrecord", "cifar10_test.tfrecord"):
    shutil.copy(testdata_dir / name, tmp_path / name)
  for split in ("train", "validation"):
    shutil.copy(testdata_dir / f"imagenet-{split}-00000-of-00001",
                tmp_path / f"{split}-00000-of-00001")
  return tmp_path


def test_cluttered_digits_splits_are_deterministic_and_disjoint():
  train, test = cluttered_digits.load("train"), cluttered_digits.load("test")
  assert train["image"].shape == (14330, 32, 32, 3)
  assert test["image"].shape == (728, 32, 32, 3)
  assert len(train["label"]) == cluttered_digits.NUM_EXAMPLES["train"]
  assert len(test["label"]) == cluttered_digits.NUM_EXAMPLES["test"]
  assert train["image"].dtype == np.uint8
  # Balanced classes (scikit-learn's digits are).
  assert np.bincount(test["label"]).tolist() == [72, 74, 72, 74, 74, 74, 74, 72,
                                                 70, 72]
  # Generated afresh, the same images.
  again = cluttered_digits.load.__wrapped__("test")
  np.testing.assert_array_equal(again["image"], test["image"])
  np.testing.assert_array_equal(again["box"], test["box"])
  # Each 16x16 box holds a digit: bright pixels inside, in every example.
  for image, box in zip(test["image"][:50], test["box"][:50]):
    y0, x0, y1, x1 = np.round(box * 32).astype(int)
    assert (y1 - y0, x1 - x0) == (16, 16)
    assert image[y0:y1, x0:x1, 0].max() > 200
  # Test digits are not train digits: no test canvas repeats a train one.
  assert not set(map(bytes, test["image"][:20])) & set(
      map(bytes, train["image"]))


def test_harder_variant_has_smaller_digits_on_larger_canvases():
  test = cluttered_digits.load("test", "cluttered_digits_64")
  default = cluttered_digits.load("test")
  assert test["image"].shape == (728, 64, 64, 3)
  np.testing.assert_array_equal(test["label"], default["label"])
  sides = np.round((test["box"][:, 2:] - test["box"][:, :2]) * 64)
  np.testing.assert_array_equal(sides[:, 0], sides[:, 1])
  assert set(sides[:, 0].astype(int)) == set(range(16, 25))
  assert test["box"].min() >= 0 and test["box"].max() <= 1
  for image, box in zip(test["image"][:50], test["box"][:50]):
    y0, x0, y1, x1 = np.round(box * 64).astype(int)
    assert image[y0:y1, x0:x1, 0].max() > 200
  # More clutter: a larger share of the background is drawn on.
  def background_ink(data, size):
    inside = np.zeros(data["image"].shape[:3], bool)
    for n, box in enumerate(np.round(data["box"] * size).astype(int)):
      inside[n, box[0]:box[2], box[1]:box[3]] = True
    return (data["image"][..., 0][~inside] > 0).mean()
  assert background_ink(test, 64) > background_ink(default, 32)
  batch = next(iter(datasets.make_input_fn(
      "cluttered_digits_64", "test", 4, training=False)()))
  assert batch["images"].shape == (4, 64, 64, 3)
  np.testing.assert_array_equal(
      batch["object_mask"].numpy().sum(axis=(1, 2, 3)),
      np.prod(sides[:4], axis=1))
  with pytest.raises(ValueError, match="'cluttered_digits_48'"):
    cluttered_digits.load("test", "cluttered_digits_48")


def test_eval_pipeline_of_digits():
  input_fn = datasets.make_input_fn("cluttered_digits", "test", 64,
                                    training=False, num_examples=100)
  batches = list(input_fn())
  assert [len(b["labels"]) for b in batches] == [64, 36]
  batch = batches[0]
  images = batch["images"].numpy()
  assert images.shape == (64, 32, 32, 3)
  np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), 0, atol=1e-4)
  np.testing.assert_allclose(images.std(axis=(1, 2, 3)), 1, atol=1e-3)
  # The object mask is the 16x16 digit box.
  np.testing.assert_array_equal(
      batch["object_mask"].numpy().sum(axis=(1, 2, 3)), 256)
  np.testing.assert_array_equal(batch["labels"].numpy(),
                                cluttered_digits.load("test")["label"][:64])


def test_sliced_splits_hold_examples_out(slim_dir):
  train = cluttered_digits.load("train")["label"]
  assert datasets.parse_split("train[:-1000]") == ("train",
                                                   slice(None, -1000))
  assert datasets.split_size("cluttered_digits", "train[:-1000]") == 13330
  assert datasets.split_size("cluttered_digits", "train[-1000:]") == 1000
  assert datasets.complement_split("train[:-1000]") == "train[-1000:]"
  assert datasets.complement_split("train[500:]") == "train[:500]"
  assert datasets.complement_split("train[2:5]") is None
  assert datasets.complement_split("train") is None
  held_out = datasets.make_input_fn("cluttered_digits", "train[-1000:]", 500,
                                    training=False)
  labels = np.concatenate([b["labels"].numpy() for b in held_out()])
  np.testing.assert_array_equal(labels, train[-1000:])
  kept = datasets.load_examples("cluttered_digits", "train[:-1000]")
  assert int(kept.cardinality()) == 13330
  for split, message in (("train[:1000", "NAME[START:STOP]"),
                         ("train[a:]", "NAME[START:STOP]"),
                         ("valid[:5]", "has the splits"),
                         ("train[5:5]", "has no examples")):
    with pytest.raises(ValueError, match=re.escape(message)):
      datasets.check("cluttered_digits", split)
  with pytest.raises(ValueError, match="cannot be sliced"):
    datasets.check("cifar10", "train[:100]", str(slim_dir))


def test_training_pipeline_shards_and_repeats():
  context = tf.distribute.InputContext(num_input_pipelines=2,
                                       input_pipeline_id=1,
                                       num_replicas_in_sync=2)
  input_fn = datasets.make_input_fn("cluttered_digits", "train", 16,
                                    training=True, seed=3)
  batch = next(iter(input_fn(context)))
  # The replica's share of the global batch, padded-cropped, not flipped.
  assert batch["images"].shape == (8, 32, 32, 3)
  assert "object_mask" not in batch


def test_original_tfrecords(slim_dir):
  cifar = list(datasets.load_examples("cifar10", "test",
                                      dataset_dir=str(slim_dir)))
  assert len(cifar) == 4
  assert cifar[0]["image"].shape == (32, 32, 3)
  assert cifar[0]["image"].dtype == tf.uint8
  imagenet = list(datasets.load_examples("imagenet2012", "train",
                                         dataset_dir=str(slim_dir)))
  assert len(imagenet) == 1
  np.testing.assert_allclose(imagenet[0]["boxes"].numpy(),
                             [[0.46666667, 0.1078125, 0.53125, 0.4109375]])
  batch = next(iter(datasets.make_input_fn(
      "imagenet2012", "validation", 2, training=False, image_size=64,
      dataset_dir=str(slim_dir))()))
  assert batch["images"].shape == (1, 64, 64, 3)
  assert -1 <= batch["images"].numpy().min() < batch["images"].numpy().max(
  ) <= 1
  batch = next(iter(datasets.make_input_fn(
      "imagenet2012", "train", 4, training=True, image_size=32,
      dataset_dir=str(slim_dir))()))
  assert batch["images"].shape == (4, 32, 32, 3)  # One example, repeated.


def test_bad_dataset_dirs(tmp_path, slim_dir):
  with pytest.raises(ValueError, match="does not exist"):
    datasets.check("cifar10", "train", str(tmp_path / "missing"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="has no cifar10 'train' files"):
    datasets.check("cifar10", "train", str(tmp_path / "empty"))
  (slim_dir / "cifar10_test.tfrecord").write_bytes(b"not a tfrecord" * 10)
  with pytest.raises(ValueError, match="corrupt or foreign TFRecord file "
                     ".*cifar10_test.tfrecord"):
    datasets.check("cifar10", "test", str(slim_dir))
  # Truncated: a record's length header says more than the file holds.
  data = (slim_dir / "cifar10_train.tfrecord").read_bytes()
  (slim_dir / "cifar10_train.tfrecord").write_bytes(data[:100])
  with pytest.raises(ValueError, match="corrupt"):
    datasets.check("cifar10", "train", str(slim_dir))
  with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
    datasets.check("mnist", "train")
  with pytest.raises(ValueError, match="split_name='validation'"):
    datasets.check("cifar10", "validation")
  with pytest.raises(ValueError, match="cluttered_digits is generated"):
    datasets.check("cluttered_digits", "train", str(slim_dir))


def test_tfds_cifar10_and_imagenet_labels(tmp_path):
  with tfds.testing.mock_data(num_examples=6):
    cifar = list(datasets.load_examples("cifar10", "train",
                                        tfds_data_dir=str(tmp_path)))
    imagenet = list(datasets.load_examples(
        "imagenet2012", "validation", tfds_data_dir=str(tmp_path),
        tfds_manual_dir=str(tmp_path)))
    batch = next(iter(datasets.make_input_fn(
        "imagenet2012", "train", 3, training=True, image_size=24,
        tfds_data_dir=str(tmp_path), tfds_manual_dir=str(tmp_path))()))
  assert len(cifar) == 6 and cifar[0]["image"].shape == (32, 32, 3)
  labels = np.array([int(e["label"]) for e in imagenet])
  # tfds' 0..999 become the original's 1..1000 (0 is background).
  assert labels.min() >= 1 and labels.max() <= 1000
  assert batch["images"].shape == (3, 24, 24, 3)


def test_missing_tfds_data_fails_fast(tmp_path):
  # ImageNet is downloaded by hand: with no prepared copy and no manual
  # files it cannot be had, network or not.
  with pytest.raises(ValueError, match=r"imagenet2012 is not prepared in "
                     r".*--tfds_manual_dir \(received None\).*pass "
                     r"--tfds_data_dir with it prepared or --dataset_dir"):
    datasets.check("imagenet2012", "validation",
                   tfds_data_dir=str(tmp_path))


@pytest.mark.slow
def test_train_tool_without_data_stops_at_once(tmp_path):
  run_dir = tmp_path / "run"
  result = helpers.run_tool("train.py", [
      "--dataset=imagenet2012", f"--tfds_data_dir={tmp_path / 'tfds'}",
      "--max_number_of_steps=2", f"--train_log_dir={run_dir}"], timeout=120)
  assert result.returncode != 0
  # One line, TensorFlow's start-up quiet, nothing written.
  assert result.stderr.strip().splitlines() == [
      result.stderr.strip()], result.stderr
  assert result.stderr.startswith("train: error: imagenet2012 is not "
                                  "prepared")
  assert not run_dir.exists()
