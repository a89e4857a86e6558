"""Lesioning a trained vanilla ResNet: deleting and reordering its units.

Veit et al. 2016 (arXiv 1605.06431, "Residual Networks Behave Like
Ensembles of Relatively Shallow Networks") delete residual units of a
trained network at test time (the unit becomes the identity, eq. (1) with
`f = 0`) or reorder the units of a block, and find that the error grows
smoothly. A lesioned model is a model of the same class whose blocks run a
subset of their units (`unit_order`), with the same weights; its FLOPs are
the original's minus exactly those of the deleted units. Units are named
`"<block>/unit_<k>"` (`"block_2/unit_3"`), as their variables.

The first unit of each block has a projection or a stride in its shortcut:
it can be neither deleted nor moved.
"""

import tensorflow as tf


def _check_vanilla(model):
  if model.model_type != "vanilla":
    raise ValueError(f"lesioning needs a vanilla model, received "
                     f"model_type={model.model_type!r}")


def unit_order(model):
  """`{block name: [unit numbers (1-based) in the order they run]}`."""
  current = model.unit_order or {}
  return {b.name: list(current.get(b.name, range(1, len(b.units) + 1)))
          for b in model.blocks}


def unit_names(model):
  """Names of the units that run, `"<block>/unit_<k>"`, in order."""
  return [f"{block}/unit_{u}" for block, order in unit_order(model).items()
          for u in order]


def deletable_units(model):
  """The units that run and may be deleted or moved (not first of a block)."""
  return [f"{block}/unit_{u}" for block, order in unit_order(model).items()
          for u in order[1:]]


def _parse(model, name):
  """`"block_2/unit_3"` -> `("block_2", 3)`; ValueError naming bad names."""
  blocks = {b.name: len(b.units) for b in model.blocks}
  block, _, unit = str(name).rpartition("/unit_")
  if block not in blocks or not unit.isdigit() or not (
      1 <= int(unit) <= blocks[block]):
    raise ValueError(f"no residual unit {name!r}; units are named like "
                     f"{model.blocks[0].name}/unit_1 (blocks: "
                     f"{', '.join(f'{b} has {n}' for b, n in blocks.items())})")
  if int(unit) == 1:
    raise ValueError(f"{name} cannot be deleted or moved: the first unit of a "
                     f"block has a projection or stride shortcut")
  return block, int(unit)


def lesion(model, delete=(), order=None):
  """A copy of a vanilla model with units deleted or reordered.

  Args:
    model: built vanilla `CifarResNet` / `ImageNetResNet` (itself possibly
      lesioned, or trained with stochastic depth).
    delete: iterable of unit names (`"block_2/unit_3"`) to delete.
    order: dict or None: `{block name: [unit numbers]}`, a new order of the
      units of those blocks (applied before `delete`); a block's list must
      start with 1 and may leave units out (deleted).

  Returns:
    A new built model of the same class and configuration but `unit_order`,
    holding copies of `model`'s weights. With nothing deleted or moved its
    outputs are bit-identical to `model`'s.

  Raises:
    ValueError: a model that is not vanilla; a unit that does not exist or
      cannot be deleted (named); a unit deleted that does not run.
  """
  _check_vanilla(model)
  new_order = unit_order(model)
  for block, units in (order or {}).items():
    if block not in new_order:
      raise ValueError(f"no block {block!r}; blocks are "
                       f"{list(new_order)}")
    units = [int(u) for u in units]
    for u in units[1:]:
      _parse(model, f"{block}/unit_{u}")
    new_order[block] = units
  for name in delete:
    block, unit = _parse(model, name)
    if unit not in new_order[block]:
      raise ValueError(f"{name} is already deleted")
    new_order[block].remove(unit)
  config = model.get_config()
  config["unit_order"] = {
      block: units for block, units in new_order.items()
      if units != list(range(1, len(model.get_layer(block).units) + 1))
  } or None
  lesioned = type(model).from_config(config)
  lesioned.build((None, None, None, 3))
  for target, source in zip(lesioned.weights, model.weights, strict=True):
    if target.path != source.path:
      raise ValueError(f"weights differ: {target.path} vs {source.path}")
    target.assign(source)
  return lesioned


def unit_flops(model, image_size):
  """FLOPs per image of every residual unit, on `image_size` inputs.

  Each unit's branch (and shortcut) is run on zeros of its input shape and
  its FLOP count read, so this is what the model's `flops` output counts
  for the unit.

  Args:
    model: a built `CifarResNet` / `ImageNetResNet`.
    image_size: int or `(height, width)`.

  Returns:
    `{unit name: int}` for every unit of the network (deleted or not).
  """
  size = (image_size, image_size) if isinstance(image_size, int) else tuple(
      image_size)
  images = tf.zeros((1, *size, 3))
  features, _ = model._root(images, training=False)  # pylint: disable=protected-access
  counts = {}
  for block in model.blocks:
    for index, unit in enumerate(block.units):
      features, flops = unit.residual_unit(features, training=False)
      counts[f"{block.name}/unit_{index + 1}"] = int(flops[0])
  return counts
