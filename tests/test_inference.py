"""`sact_tf.inference.optimize`: folded batch norms, the same outputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import helpers
import oracle
from conftest import SHARED
from sact_tf import act
from sact_tf import inference
from sact_tf.layers.channel_affine import ChannelAffine
from sact_tf.utils import halting_calibration

CASES = sorted(p.parent.name for p in (SHARED / "oracle").glob("*/case.json"))
# Sparse execution with every unit that has an active position sparse.
SPARSE = {"execution": "sparse", "sparse_config": {"dense_above_cost": ()}}
# A cumulative halting score within this of the threshold may fall on
# either side of it under float32 rounding of reordered sums.
THRESHOLD_ATOL = 1e-5


def borderline_mismatches(exact, optimized, blocks, eps=act.DEFAULT_EPS):
  """Positions whose `num_units` differ, asserted to be at the threshold.

  Where the two runs halt a position at different units, the run that
  went further has, after the other's last unit, a cumulative halting
  score `1 - remainder` (remainder `ponder_cost - num_units`, eq. (7))
  that must lie within `THRESHOLD_ATOL` of `1 - eps`.

  Returns:
    `{block: number of such positions}`.
  """
  counts = {}
  for block in blocks:
    if f"{block}/num_units" not in exact:
      continue  # Vanilla.
    units = [np.asarray(o[f"{block}/num_units"]) for o in (exact, optimized)]
    cost = [np.asarray(o[f"{block}/ponder_cost"]) for o in (exact, optimized)]
    differ = units[0] != units[1]
    further = np.where(units[1] > units[0], 1, 0)
    score = 1 - np.choose(further, [c - u for c, u in zip(cost, units)])
    np.testing.assert_array_less(np.abs(units[0] - units[1])[differ], 2)
    np.testing.assert_allclose(score[differ], 1 - eps, rtol=0,
                               atol=THRESHOLD_ATOL, err_msg=block)
    counts[block] = int(np.sum(differ))
  return counts


def assert_same_outputs(exact, optimized, blocks, atol=1e-4):
  """Every output within `atol` (FLOPs and num_units equal but at ties)."""
  assert sorted(exact) == sorted(optimized)
  ties = borderline_mismatches(exact, optimized, blocks)
  for key, value in exact.items():
    expected, actual = np.asarray(value), np.asarray(optimized[key])
    if any(ties.values()) and key not in ("logits", "predictions"):
      continue  # A position that halts one unit later differs after it.
    if expected.dtype.kind in "iu":
      np.testing.assert_array_equal(actual, expected, err_msg=key)
    else:
      np.testing.assert_allclose(actual, expected, rtol=0, atol=atol,
                                 err_msg=key)


@pytest.mark.parametrize("case", CASES or ["<no oracle cases>"])
def test_oracle_cases(case, oracle_dir):
  folder = oracle_dir / case
  sact = oracle.load_case(folder)["model_type"] == "sact"
  reference = np.load(folder / "reference.npz")
  images = tf.constant(reference["images"])
  for kwargs in [{}, SPARSE] if sact else [{}]:
    model = oracle.load_model(folder, **kwargs)
    optimized = inference.optimize(model)
    exact = model(images, training=False)
    outputs = optimized(images, training=False)
    blocks = [b.name for b in model.blocks]
    # On these cases no position lies at the threshold: num_units equal.
    assert set(borderline_mismatches(exact, outputs, blocks).values()) <= {0}
    assert_same_outputs(exact, outputs, blocks)
    oracle.compare(outputs, reference, sact=sact)


@pytest.mark.parametrize("model_type,kwargs", [
    ("vanilla", {}), ("act", {}), ("act_early_stopping", {}), ("sact", {}),
    ("sact", {"execution": "sparse",
              "sparse_config": helpers.ALWAYS_SPARSE["gathered"]}),
    ("sact", {"execution": "sparse",
              "sparse_config": dict(helpers.ALWAYS_SPARSE["whole_map"],
                                    kernels="xla")}),
])
@pytest.mark.parametrize("family", ["cifar", "imagenet"])
def test_tiny_models(family, model_type, kwargs):
  model = helpers.tiny_model(family, model_type, **kwargs)
  images = tf.random.normal([4, 64, 64, 3])
  model.build(images.shape)
  helpers.randomize_halting(model)
  halting_calibration.set_batch_norm_statistics(model, images)
  optimized = inference.optimize(model)
  # No batch norm is left; the convs after one carry it in their biases.
  layers = list(optimized._flatten_layers())  # pylint: disable=protected-access
  assert not [l for l in layers
              if isinstance(l, keras.layers.BatchNormalization)]
  assert [l.name for l in layers if isinstance(l, ChannelAffine)][-1] == (
      "postnorm" if family == "imagenet" else "BatchNorm")
  unit = optimized.blocks[0].units[0].residual_unit
  assert unit.convs[0].normalizer is None and unit.convs[0].use_bias
  exact = model(images, training=False)
  outputs = optimized(images, training=False)
  assert_same_outputs(exact, outputs, [b.name for b in model.blocks])
  # Halting varies, so the test covers halted positions.
  if model_type == "sact":
    assert len(np.unique(exact["num_units_map"])) > 1


def test_channel_affine_is_the_batch_norm_at_inference():
  norm = keras.layers.BatchNormalization(epsilon=1e-3)
  x = tf.random.normal([3, 2, 2, 4]) * 3 + 1
  norm(x, training=True)
  affine = ChannelAffine()
  affine.build(x.shape)
  scale = norm.gamma / tf.sqrt(norm.moving_variance + 1e-3)
  affine.scale.assign(scale)
  affine.offset.assign(norm.beta - norm.moving_mean * scale)
  np.testing.assert_allclose(affine(x), norm(x, training=False), atol=1e-5)
  np.testing.assert_array_equal(affine(x, training=True), affine(x))
  copy = ChannelAffine.from_config(affine.get_config())
  assert copy.name == affine.name


def test_fold_weights_follows_the_model():
  model = helpers.tiny_model("imagenet", "act")
  images = tf.random.normal([2, 32, 32, 3])
  model.build(images.shape)
  optimized = inference.optimize(model)
  helpers.randomize_halting(model, seed=1, bias=-1.0)
  inference.fold_weights(model, optimized)
  np.testing.assert_allclose(optimized(images)["logits"],
                             model(images)["logits"], atol=1e-4)
  np.testing.assert_array_equal(optimized(images)["block2/num_units"],
                                model(images)["block2/num_units"])


def test_serialization_round_trip():
  model = helpers.tiny_model("imagenet", "sact", execution="sparse")
  model.build((None, None, None, 3))
  optimized = inference.optimize(model)
  config = optimized.get_config()
  assert config["folded_batch_norm"] and config["execution"] == "sparse"
  copy = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(optimized))
  assert copy.folded_batch_norm
  # The ImageNet heads' global batch norms fold into their convs.
  head = copy.blocks[1].units[0].halting_head
  assert head.global_bn is None and head.global_conv is not None


def test_bad_arguments():
  model = helpers.tiny_model("imagenet", "vanilla")
  with pytest.raises(ValueError, match="must be a built"):
    inference.optimize(model)
  model.build((None, None, None, 3))
  optimized = inference.optimize(model)
  with pytest.raises(ValueError, match="folded already"):
    inference.optimize(optimized)
  other = helpers.tiny_model("imagenet", "act")
  other.build((None, None, None, 3))
  with pytest.raises(ValueError, match="model_type"):
    inference.fold_weights(other, optimized)
  with pytest.raises(ValueError, match="must be a built"):
    inference.fold_weights(model, "resnet")
