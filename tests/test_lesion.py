"""Deleting and reordering the residual units of vanilla models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from sact_tf import models
from sact_tf.models import lesion

SIZE = 8


def tiny(family, model_type="vanilla"):
  keras.utils.set_random_seed(4)
  if family == "cifar":
    model = models.cifar_resnet("3", num_classes=3, base_channels=2,
                                model_type=model_type)
  else:
    model = models.imagenet_resnet("1_3_2_1", num_classes=3, base_channels=2,
                                   model_type=model_type)
  model.build((None, SIZE, SIZE, 3))
  return model


@pytest.mark.parametrize("family", ["cifar", "imagenet"])
def test_nothing_deleted_is_bit_identical(family):
  model = tiny(family)
  images = tf.random.normal([2, SIZE, SIZE, 3])
  a, b = model(images, training=False), lesion.lesion(model)(images,
                                                             training=False)
  np.testing.assert_array_equal(a["logits"], b["logits"])
  np.testing.assert_array_equal(a["flops"], b["flops"])


@pytest.mark.parametrize("family", ["cifar", "imagenet"])
def test_flops_fall_by_the_deleted_units(family):
  model = tiny(family)
  costs = lesion.unit_flops(model, SIZE)
  deleted = lesion.deletable_units(model)[::2]
  lesioned = lesion.lesion(model, delete=deleted)
  images = tf.random.normal([2, SIZE, SIZE, 3])
  full = model(images, training=False)["flops"]
  np.testing.assert_array_equal(
      lesioned(images, training=False)["flops"],
      full - sum(costs[name] for name in deleted))
  assert set(lesion.unit_names(lesioned)) == set(
      lesion.unit_names(model)) - set(deleted)
  # Units of a block past the first are identical in cost.
  assert costs["block_2/unit_2" if family == "cifar" else "block2/unit_2"] > 0


def test_deleted_and_reordered_units_run_as_named():
  model = tiny("cifar")
  images = tf.random.normal([2, SIZE, SIZE, 3])
  units = [u.residual_unit for u in model.blocks[0].units]
  features, _ = model._root(images, training=False)  # pylint: disable=protected-access

  def run(*indices):
    state = features
    for i in indices:
      state, _ = units[i](state, training=False)
    return state

  reordered = lesion.lesion(model, order={"block_1": [1, 3, 2]})
  np.testing.assert_allclose(
      reordered(images, training=False)["block_1/outputs"], run(0, 2, 1),
      rtol=1e-6, atol=1e-6)
  deleted = lesion.lesion(reordered, delete=["block_1/unit_2"])
  np.testing.assert_allclose(
      deleted(images, training=False)["block_1/outputs"], run(0, 2),
      rtol=1e-6, atol=1e-6)
  assert deleted.get_config()["unit_order"] == {"block_1": [1, 3]}
  clone = type(deleted).from_config(deleted.get_config())
  assert lesion.unit_names(clone) == lesion.unit_names(deleted)


@pytest.mark.parametrize("name, message", [
    ("block_2/unit_1", "block_2/unit_1 cannot be deleted"),
    ("block_2/unit_4", "no residual unit 'block_2/unit_4'"),
    ("block_7/unit_2", "no residual unit 'block_7/unit_2'"),
    ("unit_2", "no residual unit 'unit_2'"),
])
def test_bad_units(name, message):
  with pytest.raises(ValueError, match=message):
    lesion.lesion(tiny("cifar"), delete=[name])


def test_bad_orders_and_models():
  model = tiny("cifar")
  with pytest.raises(ValueError, match="block_1/unit_1 cannot be"):
    lesion.lesion(model, order={"block_1": [2, 1, 3]})
  with pytest.raises(ValueError, match="already deleted"):
    lesion.lesion(lesion.lesion(model, delete=["block_3/unit_2"]),
                  delete=["block_3/unit_2"])
  with pytest.raises(ValueError, match="model_type='act'"):
    lesion.lesion(tiny("cifar", "act"), delete=["block_1/unit_2"])
