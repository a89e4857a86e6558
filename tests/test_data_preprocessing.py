"""Preprocessing: the original's exact inputs (oracle) and the random paths."""

import numpy as np
import pytest
import tensorflow as tf

from sact_tf.data import preprocessing


def _decode_first(path):
  record = next(iter(tf.data.TFRecordDataset(str(path))))
  features = tf.io.parse_single_example(
      record, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})
  return tf.io.decode_image(features["image/encoded"], channels=3,
                            expand_animations=False)


def test_cifar_eval_reproduces_oracle_inputs(oracle_dir, testdata_dir):
  reference = np.load(oracle_dir / "cifar_resnet32_sact" / "reference.npz")
  records = tf.data.TFRecordDataset(
      str(testdata_dir / "cifar10_test.tfrecord"))
  for i, record in enumerate(records):
    features = tf.io.parse_single_example(
        record, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})
    image = tf.io.decode_png(features["image/encoded"], channels=3)
    out = preprocessing.preprocess_for_eval(image, "cifar", 32)
    assert out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), reference["images"][i])


def test_imagenet_eval_reproduces_oracle_inputs(oracle_dir, testdata_dir):
  reference = np.load(
      oracle_dir / "imagenet_resnet50_bc16_vanilla" / "reference.npz")
  images = [
      _decode_first(testdata_dir / "imagenet-validation-00000-of-00001"),
      tf.io.decode_jpeg(tf.io.read_file(str(testdata_dir / "cat.jpg")), 3)]
  for image, expected in zip(images, reference["images"]):
    out = preprocessing.preprocess_for_eval(image, "imagenet", 224)
    np.testing.assert_array_equal(out.numpy(), expected)


def test_eval_works_in_a_tf_function_on_unknown_sizes():
  fn = tf.function(
      lambda x: preprocessing.preprocess_for_eval(x, "imagenet", 8),
      input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
  image = tf.constant(np.full((20, 30, 3), 255, np.uint8))
  np.testing.assert_allclose(fn(image).numpy(), np.ones((8, 8, 3)))
  gray = tf.constant(np.arange(16, dtype=np.uint8).reshape(4, 4, 1))
  out = preprocessing.preprocess_for_eval(gray, "cifar", 6).numpy()
  assert out.shape == (6, 6, 3)
  np.testing.assert_array_equal(out[..., 0], out[..., 2])
  # Zero padding to 6x6, then standardized to mean 0, std 1.
  np.testing.assert_allclose([out.mean(), out.std()], [0, 1], atol=1e-5)


def test_cifar_train_is_a_shifted_standardized_window():
  tf.random.set_seed(3)
  image = np.random.RandomState(0).randint(0, 256, (8, 8, 3)).astype(np.uint8)
  out = preprocessing.preprocess_for_train(image, "cifar", 8, flip=False)
  padded = np.pad(image.astype(np.float32), ((4, 4), (4, 4), (0, 0)))
  windows = [padded[i:i + 8, j:j + 8] for i in range(9) for j in range(9)]
  standardized = [(w - w.mean()) / max(w.std(), 1 / np.sqrt(w.size))
                  for w in windows]
  assert min(np.abs(s - out.numpy()).max() for s in standardized) < 1e-4


def test_inception_train_range_and_box():
  tf.random.set_seed(1)
  image = np.zeros((40, 40, 3), np.uint8)
  image[:20, :20] = 255  # A white object in the top-left quarter.
  boxes = tf.constant([[0.0, 0.0, 0.5, 0.5]])
  outs = [preprocessing.preprocess_for_train(image, "imagenet", 16, boxes)
          for _ in range(8)]
  for out in outs:
    assert out.shape == (16, 16, 3)
    assert -1.0 <= out.numpy().min() and out.numpy().max() <= 1.0
  # Every crop covers at least 10% of the object, so has bright pixels.
  assert all(out.numpy().max() > 0.0 for out in outs)
  # Random: the crops differ.
  assert len({out.numpy().tobytes() for out in outs}) > 1


@pytest.mark.parametrize("family,size", [("mnist", 32), ("cifar", 0),
                                         ("imagenet", 2.5)])
def test_bad_arguments(family, size):
  with pytest.raises(ValueError, match=repr(family if family == "mnist"
                                            else size)):
    preprocessing.preprocess_for_eval(np.zeros((4, 4, 3), np.uint8), family,
                                      size)
