"""Random networks that halt like trained ones (benchmarks and tests)."""

import keras
import numpy as np
import tensorflow as tf

from sact_tf import models
from sact_tf.utils import halting_calibration


def test_tuned_bias_is_away_from_every_halting_step():
  keras.utils.set_random_seed(0)
  model = models.imagenet_resnet("2_3_2_2", num_classes=5, model_type="sact",
                                 base_channels=4)
  images = tf.random.stateless_normal([2, 32, 32, 3], [0, 1])
  halting_calibration.set_batch_norm_statistics(model, images)
  halting_calibration.randomize_halting(model)
  run = tf.function(lambda x: model(x, training=False)["flops"])

  def flops_at(bias):
    halting_calibration.set_halting_bias(model, bias)
    return run(images).numpy()

  # Nothing halts / everything halts after the first unit of each block.
  full, least = (float(np.mean(flops_at(b))) for b in (-30.0, 30.0))
  target = (full + least) / 2
  bias, flops = halting_calibration.tune_halting_bias(model, images, target)
  # The bias is set on the model, on the plateau at or below the target.
  tuned = flops_at(bias)
  assert flops == float(np.mean(tuned)) and least < flops <= target
  # Plain bisection ends within 30 / 2**20 = 2.9e-5 of a step; the tuned
  # bias is further from both steps of its plateau (float rounding moves
  # the logits by about 1e-6).
  for delta in (-1e-4, 1e-4):
    np.testing.assert_array_equal(flops_at(bias + delta), tuned)
  assert np.mean(flops_at(bias - 0.5)) > flops
