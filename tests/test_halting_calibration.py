"""Random networks that halt like trained ones (benchmarks and tests)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sact_tf import models
from sact_tf.utils import halting_calibration as calibration

# model type: (randomize, set the shared bias, tune it, the sign of the bias
# change that lowers the FLOPs, the width). Sampling's FLOPs grow with every
# sampled position only from a bottleneck depth of about 64: an
# interpolated position costs `2 * 49 * (channels + 1)` FLOPs, as much as
# computing it in a narrower unit.
FAMILIES = {
    "sact": (calibration.randomize_halting, calibration.set_halting_bias,
             calibration.tune_halting_bias, 1.0, 4),
    "sampling": (calibration.randomize_sampling,
                 calibration.set_sampling_bias,
                 calibration.tune_sampling_bias, -1.0, 16),
}


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_tuned_bias_is_away_from_every_step(model_type):
  randomize, set_bias, tune, fewer, width = FAMILIES[model_type]
  keras.utils.set_random_seed(0)
  model = models.imagenet_resnet("2_3_2_2", num_classes=5,
                                 model_type=model_type, base_channels=width)
  images = tf.random.stateless_normal([2, 32, 32, 3], [0, 1])
  calibration.set_batch_norm_statistics(model, images)
  randomize(model)
  run = tf.function(lambda x: model(x, training=False)["flops"])

  def flops_at(bias):
    set_bias(model, bias)
    return run(images).numpy()

  # SACT: nothing halts / everything halts after the first unit of each
  # block. Sampling: every position sampled / only the grid prior.
  full, least = (float(np.mean(flops_at(b * fewer))) for b in (-30.0, 30.0))
  assert least < full
  target = (full + least) / 2
  bias, flops = tune(model, images, target)
  # The bias is set on the model, on the plateau at or below the target.
  tuned = flops_at(bias)
  assert flops == float(np.mean(tuned)) and least < flops <= target
  # Plain bisection ends within 30 / 2**20 = 2.9e-5 of a step; the tuned
  # bias is further from both steps of its plateau (float rounding moves
  # the logits by about 1e-6).
  for delta in (-1e-4, 1e-4):
    np.testing.assert_array_equal(flops_at(bias + delta), tuned)
  assert np.mean(flops_at(bias - 0.5 * fewer)) > flops
