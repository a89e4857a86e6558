"""Losses, statistics and summary images, on hand-made values."""

import numpy as np
import tensorflow as tf

from sact_tf import models
from sact_tf.training import metrics
from sact_tf.training import summaries


class _Blocks:
  """Stands for a model: what the statistics read of it."""

  def __init__(self, model_type, tau=None, num_classes=10):
    self.model_type = model_type
    self.tau = tau
    self.num_classes = num_classes
    self.blocks = [type("Block", (), {"name": "block_1", "units": [1, 2]})()]


def test_cross_entropy_with_label_smoothing_is_tf1s():
  logits = tf.constant([[2.0, 0.0, -1.0]])
  log_p = tf.nn.log_softmax(logits).numpy()[0]
  # TF1: targets (1 - 0.3) * onehot + 0.3 / 3.
  expected = -((0.7 + 0.1) * log_p[1] + 0.1 * log_p[0] + 0.1 * log_p[2])
  np.testing.assert_allclose(metrics.cross_entropy(tf.constant([1]), logits,
                                                   0.3), [expected],
                             rtol=1e-6)


def test_ponder_loss_and_batch_statistics():
  model = _Blocks("sact", tau=0.5)
  outputs = {"flops": tf.constant([10, 30], tf.int64),
             "block_1/flops": tf.constant([4, 6], tf.int64),
             "block_1/ponder_cost": tf.constant([[[1.0, 2.0]], [[3.0, 6.0]]]),
             "block_1/num_units": tf.constant([[[1, 2]], [[2, 2]]])}
  np.testing.assert_allclose(metrics.ponder_loss(model, outputs), 0.5 * 3.0)
  stats = metrics.batch_statistics(model, outputs)
  assert list(stats) == metrics.batch_statistic_names(model)
  np.testing.assert_allclose(stats["Total Flops/mean"], 20)
  np.testing.assert_allclose(stats["Total Flops/std"], 10)
  np.testing.assert_allclose(stats["block_1/ponder_cost_mean"], 3.0)
  np.testing.assert_allclose(stats["block_1/ponder_cost_std"],
                             np.std([1, 2, 3, 6]), rtol=1e-6)
  np.testing.assert_allclose(stats["block_1/num_units_max"], 2)
  assert metrics.ponder_loss(_Blocks("vanilla"), outputs).numpy() == 0
  assert "block_1/ponder_cost_mean" not in metrics.batch_statistic_names(
      _Blocks("vanilla"))


def test_eval_sums_accumulate_to_dataset_moments():
  model = _Blocks("act", num_classes=10)
  rng = np.random.RandomState(0)
  all_flops, sums = [], {}
  correct = 0
  for _ in range(3):
    flops = rng.randint(1e9, 2e10, size=4).astype(np.int64)
    logits = rng.randn(4, 10).astype(np.float32)
    labels = rng.randint(0, 10, size=4)
    correct += (logits.argmax(1) == labels).sum()
    outputs = {"flops": tf.constant(flops), "logits": tf.constant(logits),
               "block_1/flops": tf.constant(flops),
               "block_1/ponder_cost": tf.constant(rng.rand(4), tf.float32),
               "block_1/num_units": tf.constant([1, 2, 2, 1])}
    batch = metrics.eval_sums(model, outputs, tf.constant(labels),
                              tf.constant([1.0, 2.0, 3.0, 4.0]))
    for k, v in batch.items():
      sums[k] = sums.get(k, 0.0) + v.numpy()
    all_flops.append(flops)
  results = metrics.eval_results(sums, 10)
  all_flops = np.concatenate(all_flops).astype(np.float64)
  assert results["eval/Accuracy"] == correct / 12
  assert results["eval/Mean Loss"] == 2.5
  # Streaming float64 moments of 1e10-sized FLOPs: exact to 1e-9.
  np.testing.assert_allclose(results["Total Flops/mean"], all_flops.mean(),
                             rtol=1e-12)
  np.testing.assert_allclose(results["Total Flops/std"], all_flops.std(),
                             rtol=1e-6)
  np.testing.assert_allclose(results["block_1/num_units_mean"], 1.5)
  np.testing.assert_allclose(results["block_1/num_units_std"], 0.5)
  assert 0 <= results["eval/Recall@5"] <= 1
  assert results["eval/Recall@5"] >= results["eval/Accuracy"]


def test_object_background_sums():
  ponder = tf.constant([[[[1.0], [3.0]], [[5.0], [7.0]]]])
  mask = tf.constant([[[[1.0], [0.0]], [[0.0], [0.0]]]])
  sums = {k: v.numpy() for k, v in
          metrics.object_background_sums(ponder, mask).items()}
  sums.update(examples=1.0, correct=1.0, correct_top5=1.0, loss=0.0)
  results = metrics.eval_results(sums, 2)
  assert results["eval/ponder_cost_map/object_mean"] == 1.0
  assert results["eval/ponder_cost_map/background_mean"] == 5.0
  assert "eval/Recall@5" not in results  # Two classes.


def test_heatmap_image_is_the_originals():
  images = np.zeros((1, 2, 2, 3), np.float32)
  images[0, 0, 0] = 2.0  # Normalized to 1 there, 0 elsewhere.
  heat = np.array([[[[4.0], [0.0]], [[2.0], [0.0]]]], np.float32)
  out = summaries.sact_heatmap_image(images, heat, max_value=4.0,
                                     border=1).numpy()
  assert out.shape == (1, 2, 5, 3)
  np.testing.assert_allclose(out[0, :, :2], images[0] / 2.0)
  np.testing.assert_array_equal(out[0, :, 2], 0)  # The border.
  overlay = out[0, :, 3:]
  # 0.25 * image + 0.75 * heat / max in red; green and blue just the image.
  np.testing.assert_allclose(overlay[..., 0], [[1.0, 0.0], [0.375, 0.0]])
  np.testing.assert_allclose(overlay[..., 1], [[0.25, 0.0], [0.0, 0.0]])


def test_heatmap_images_of_a_model():
  model = models.cifar_resnet("2", model_type="sact", base_channels=4)
  images = tf.random.stateless_normal([2, 8, 8, 3], seed=[1, 2])
  out = summaries.heatmap_images(model, images, model(images))
  assert set(out) == {"heatmaps/ponder_cost", "heatmaps/num_units"}
  assert out["heatmaps/num_units"].shape == (2, 8, 21, 3)
