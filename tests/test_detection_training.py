"""Detection training: TensorBoard summaries and tf.distribute strategies."""

import subprocess
import sys

import numpy as np
import pytest

import helpers
from sact_tf.training import detection_run


def test_summaries_losses_learning_rate_flops_and_ponder_maps(tmp_path):
  config = detection_run.make_config(dict(helpers.TINY_DETECTION_RUN,
                                          model_type="sact", tau=0.01))
  detection_run.train(config, str(tmp_path), save_summaries_secs=0)
  tags = helpers.summary_tags(tmp_path)
  for tag in ("losses/loss", "learning_rate", "flops",
              "ponder_cost/block1", "ponder_cost/block4",
              "heatmaps/ponder_cost", "heatmaps/num_units"):
    assert tag in tags, (tag, sorted(tags))
  # Written after each of the 2 steps (every 0 seconds).
  assert [step for step, _ in tags["losses/loss"]] == [1, 2]
  np.testing.assert_allclose(tags["learning_rate"][-1][1], 1e-3)
  losses = [name for name in tags if name.startswith("losses/")]
  assert len(losses) > 1  # The total and its parts.
  assert all(np.isfinite(float(v)) for name in losses for _, v in tags[name])
  assert float(tags["flops"][-1][1]) > 0
  # Fresh halting: every unit runs, ponder cost >= units + remainder.
  assert float(tags["ponder_cost/block2"][-1][1]) >= 2
  # The original's heatmap: 3 images, image | border | red-channel map.
  _, image = tags["heatmaps/ponder_cost"][-1]
  assert int(image[0]) == 64 * 2 + 5 and int(image[1]) == 64
  assert len(image) == 2 + 3


def test_strategy_is_checked():
  with pytest.raises(ValueError, match="unknown strategy 'bogus'; known: "
                     "default, one_device, mirrored"):
    detection_run.make_config({"strategy": "bogus"})


_MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, "tests")
import helpers
from sact_tf.training import detection_run, strategies
strategy = strategies.make_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
config = detection_run.make_config(dict(
    helpers.TINY_DETECTION_RUN, model_type="sact", strategy="mirrored"))
_, step = detection_run.train(config, sys.argv[1], strategy, 0)
assert step == 2, step
_, restored = detection_run.restore(sys.argv[1])
assert restored["strategy"] == "mirrored" and restored["global_step"] == 2
"""


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpu_devices(tmp_path):
  result = subprocess.run(
      [sys.executable, "-c", _MIRRORED, str(tmp_path)], cwd=helpers.REPO,
      env=dict(__import__("os").environ, PYTHONPATH=str(helpers.REPO)),
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "step 2/2" in result.stdout
  tags = helpers.summary_tags(tmp_path)
  assert np.isfinite(float(tags["losses/loss"][-1][1]))
