"""Tests of the CIFAR and ImageNet models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import randomize_halting
from helpers import tiny_model
from sact_tf import models
from sact_tf.layers import AdaptiveBlock
from sact_tf.models import adaptive_resnet

MODEL_TYPES = ["vanilla", "act", "act_early_stopping", "sact"]


def tiny_cifar(model_type, **kwargs):
  return tiny_model("cifar", model_type, **kwargs)


def tiny_imagenet(model_type, **kwargs):
  return tiny_model("imagenet", model_type, num_classes=7, **kwargs)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_cifar_outputs(model_type):
  model = tiny_cifar(model_type)
  out = model(tf.random.normal([3, 16, 16, 3]), training=False)
  assert out["logits"].shape == (3, 5)
  assert out["flops"].dtype == tf.int64 and out["flops"].shape == (3,)
  np.testing.assert_allclose(tf.reduce_sum(out["predictions"], 1), 1, 1e-6)
  for b, (size, depth) in zip(("block_1", "block_2", "block_3"),
                              ((16, 4), (8, 8), (4, 16))):
    assert out[f"{b}/outputs"].shape == (3, size, size, depth)
    assert out[f"{b}/flops"].shape == (3,)
    if model_type == "vanilla":
      assert f"{b}/ponder_cost" not in out
      continue
    decisions = (3,) if model_type != "sact" else (3, size, size)
    assert out[f"{b}/ponder_cost"].shape == decisions
    assert out[f"{b}/num_units"].dtype == tf.int32
    assert out[f"{b}/halting_distribution"].shape == decisions + (2,)
    np.testing.assert_allclose(
        tf.reduce_sum(out[f"{b}/halting_distribution"], -1), 1, atol=1e-6)
  assert ("ponder_cost_map" in out) == (model_type == "sact")
  # Root conv, blocks and logits add up to the total.
  total = sum(out[f"{b}/flops"] for b in ("block_1", "block_2", "block_3"))
  root = 2 * 16 * 16 * 4 * 9 * 3
  np.testing.assert_array_equal(out["flops"], total + root + 2 * 5 * 16)


def test_vanilla_flops_by_hand():
  model = models.cifar_resnet("1", num_classes=10, base_channels=16)
  out = model(tf.zeros([1, 32, 32, 3]))
  conv = lambda hw, cin, cout, k=3: 2 * hw * hw * cout * k * k * cin
  block1 = conv(32, 16, 16) * 2
  block2 = conv(16, 16, 32) + conv(16, 32, 32)
  block3 = conv(8, 32, 64) + conv(8, 64, 64)
  np.testing.assert_array_equal(out["block_2/flops"], [block2])
  np.testing.assert_array_equal(
      out["flops"], [conv(32, 3, 16) + block1 + block2 + block3 +
                     2 * 64 * 10])


def test_sact_ponder_cost_map_is_the_upsampled_sum():
  # Seeded: with some initial weights and inputs every position of block 1
  # halts after the same unit, and the last assertion would not test much.
  keras.utils.set_random_seed(0)
  model = tiny_cifar("sact")
  randomize_halting(model, bias=4.0)
  out = model(tf.random.normal([2, 16, 16, 3]), training=False)
  expected = sum(
      np.repeat(np.repeat(out[f"{b}/ponder_cost"].numpy(), s, 1), s, 2)
      for b, s in (("block_1", 1), ("block_2", 2), ("block_3", 4)))
  np.testing.assert_allclose(out["ponder_cost_map"][..., 0], expected,
                             rtol=1e-6)
  assert len(np.unique(out["block_1/num_units"])) > 1


@pytest.mark.parametrize("size", [(224, 224), (225, 301), (33, 17), (7, 5)])
def test_sact_map_is_tf1_resize_nearest_neighbor(size):
  """The broadcast (power-of-two scales, known shapes) and the gathers
  (other scales, or shapes known only when run) give the resize op's
  values."""
  rng = np.random.default_rng(0)
  maps = [rng.normal(size=(2, -(-size[0] // s), -(-size[1] // s))).astype(
      np.float32) * 5 for s in (4, 8, 16, 32)]
  maps.append(rng.integers(0, 9, size=(2, 3, 2)).astype(np.int32))
  expected = tf.add_n([tf.raw_ops.ResizeNearestNeighbor(
      images=tf.cast(m[..., None], tf.float32), size=size,
      align_corners=False, half_pixel_centers=False) for m in maps])
  np.testing.assert_array_equal(
      adaptive_resnet.sact_map([tf.constant(m) for m in maps],
                               tf.constant(size)), expected)
  dynamic = tf.function(adaptive_resnet.sact_map, input_signature=[
      [tf.TensorSpec([None, None, None], m.dtype) for m in maps],
      tf.TensorSpec([2], tf.int32)])
  np.testing.assert_array_equal(
      dynamic([tf.constant(m) for m in maps], tf.constant(size)), expected)


def test_sact_flops_follow_the_masks():
  model = tiny_cifar("sact")
  randomize_halting(model, bias=4.0)
  out = model(tf.random.normal([2, 16, 16, 3]), training=False)
  num_units = out["block_1/num_units"].numpy()
  assert 0 < (num_units == 2).mean() < 1
  # Unit 2 of block_1 runs conv2 (3x3, 4 -> 4) on the positions active
  # after unit 1 and conv1 on their 3x3 dilation; unit 1 runs everywhere and
  # carries the halting head; unit 2 is the last, with no head.
  active = (num_units >= 2).astype(np.float32)
  dilated = tf.nn.max_pool2d(active[..., None], 3, 1, "SAME").numpy()
  per_pos = 2 * 4 * 9 * 4
  unit1 = 2 * 256 * per_pos + 2 * 256 * 9 * 4 + 2 * 4
  unit2 = (dilated.sum((1, 2, 3)) + active.sum((1, 2))) * per_pos
  np.testing.assert_array_equal(out["block_1/flops"], unit1 + unit2)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_imagenet_any_size_dynamic_batch(model_type):
  model = tiny_imagenet(model_type)
  run = tf.function(lambda x: model(x, training=False), input_signature=[
      tf.TensorSpec([None, None, None, 3])])
  for shape in ([1, 32, 32, 3], [2, 40, 72, 3]):
    out = run(tf.random.normal(shape))
    assert out["logits"].shape == (shape[0], 7)
    last = out["block4/outputs"].shape
    assert last[1:] == (-(-shape[1] // 32), -(-shape[2] // 32), 128)
    if model_type == "sact":
      assert out["ponder_cost_map"].shape == tuple(shape[:3]) + (1,)


def test_imagenet_shortcut_convs():
  model = tiny_imagenet("vanilla")
  model.build((None, 64, 64, 3))
  shortcuts = sorted(v.path for v in model.variables
                     if "/shortcut/weights" in v.path)
  # base_channels 4: block1/unit_1 projects 64 -> 16 at stride 1, the first
  # unit of every later block projects at stride 2.
  assert shortcuts == [f"resnet_v2/block{b}/unit_1/bottleneck_v2/shortcut/"
                       "weights" for b in range(1, 5)]


def test_act_early_stopping_matches_act_and_skips_units():
  act_model = tiny_cifar("act")
  early = tiny_cifar("act_early_stopping")
  images = tf.random.normal([4, 16, 16, 3])
  act_model(images)
  early(images)
  randomize_halting(act_model, scale=0.01, bias=8.0)
  for a, b in zip(act_model.variables, early.variables):
    b.assign(a)
  expected = act_model(images, training=False)
  calls = []
  for block in early.blocks:
    unit = block.units[1]
    original = unit.call
    unit.call = lambda *a, o=original, **k: calls.append(1) or o(*a, **k)
  out = early(images, training=False)
  for key in expected:
    np.testing.assert_allclose(out[key], expected[key], atol=1e-5,
                               err_msg=key)
  # Every image halts after the first unit: no second unit runs.
  np.testing.assert_array_equal(out["block_1/num_units"], 1)
  assert not calls


@pytest.mark.parametrize("model, error", [
    ("5_x", "model='5_x'"), ("7", "model='7'"), ("3_4_6", "model='3_4_6'"),
    ([3, 4, 0, 3], r"model=\[3, 4, 0, 3\]")])
def test_imagenet_rejects_bad_model(model, error):
  with pytest.raises(ValueError, match=error):
    models.imagenet_resnet(model)


@pytest.mark.parametrize("kwargs, error", [
    ({"model": "5_x"}, "model='5_x'"),
    ({"model": "2_2"}, "model='2_2'"),
    ({"model_type": "bogus"}, "model_type='bogus'"),
    ({"tau": -0.1}, "tau=-0.1"),
    ({"execution": "fast"}, "execution='fast'"),
    ({"base_channels": 0}, "base_channels=0"),
])
def test_cifar_rejects_bad_arguments(kwargs, error):
  with pytest.raises(ValueError, match=error):
    models.cifar_resnet(**kwargs)


@pytest.mark.parametrize("shape", [[2, 32, 32], [2, 32, 32, 1], [32, 32, 3]])
def test_rejects_bad_images(shape):
  model = tiny_imagenet("sact")
  with pytest.raises(ValueError, match=r"received shape \(" +
                     ", ".join(map(str, shape))):
    model(tf.zeros(shape))


def test_ponder_cost_loss_and_fit():
  model = tiny_cifar("sact", tau=0.01)
  images = tf.random.normal([4, 16, 16, 3])
  out = model(images, training=False)
  ponder = sum(tf.reduce_mean(out[f"block_{i}/ponder_cost"])
               for i in (1, 2, 3))
  assert len(model.losses) > 1  # The ponder cost and the weight decay.
  regularization = sum(
      1e-4 * tf.reduce_sum(tf.square(v)) for v in model.trainable_variables
      if v.path.endswith("/weights"))
  np.testing.assert_allclose(tf.add_n(model.losses),
                             0.01 * ponder + regularization, rtol=1e-5)
  model.compile(optimizer="sgd", loss={
      "logits": tf.keras.losses.SparseCategoricalCrossentropy(
          from_logits=True)})
  before = [v.numpy() for v in model.trainable_variables if "halting" in
            v.path]
  history = model.fit(images, {"logits": tf.constant([0, 1, 2, 3])},
                      epochs=2, verbose=0)
  after = [v.numpy() for v in model.trainable_variables if "halting" in
           v.path]
  assert np.isfinite(history.history["loss"]).all()
  assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_vanilla_ignores_tau():
  model = tiny_cifar("vanilla", tau=0.5, weight_decay=0.0)
  model(tf.zeros([1, 16, 16, 3]))
  assert not model.losses


@pytest.mark.parametrize("factory", [tiny_cifar, tiny_imagenet])
def test_keras_save_load_round_trip(tmp_path, factory):
  model = factory("sact", tau=0.02)
  images = tf.random.normal([2, 32, 48, 3])
  randomize_halting(model, bias=4.0)
  expected = model(images, training=False)
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.saving.load_model(path)
  assert type(loaded) is type(model)
  assert loaded.get_config() == model.get_config()
  out = loaded(images, training=False)
  for key in expected:
    np.testing.assert_array_equal(out[key], expected[key], err_msg=key)


def test_layer_config_round_trips():
  model = tiny_imagenet("sact", eps=0.05)
  model.build((None, 32, 32, 3))
  for layer in model._flatten_layers():  # pylint: disable=protected-access
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config, type(layer).__name__
  block = model.blocks[0]
  assert isinstance(block, AdaptiveBlock) and block.eps == 0.05
