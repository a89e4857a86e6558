"""Depth strings of the original release: `"5"`, `"101"`, `"3_4_23_3"`."""

CIFAR_NUM_BLOCKS = 3
IMAGENET_NUM_BLOCKS = 4
IMAGENET_DEPTHS = {
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
    200: [3, 24, 36, 3],
}


def _split(model):
  """`"3_4_23_3"`, `"5"`, `5` or `[3, 4, 23, 3]` -> list of ints."""
  if isinstance(model, int) and not isinstance(model, bool):
    return [model]
  if isinstance(model, str):
    parts = model.split("_")
    if not all(p.isdigit() for p in parts):
      raise ValueError(
          f"model must be a depth string like '5' or '3_4_23_3', received "
          f"model={model!r}")
    return [int(p) for p in parts]
  if isinstance(model, (list, tuple)) and model and all(
      isinstance(n, int) and not isinstance(n, bool) for n in model):
    return list(model)
  raise ValueError(f"model must be a depth string or a list of ints, "
                   f"received model={model!r}")


def _check(units, model, num_blocks):
  if len(units) != num_blocks or min(units) < 1:
    raise ValueError(
        f"model must give {num_blocks} positive unit counts, received "
        f"model={model!r}")
  return units


def cifar_units(model):
  """Units per block of the CIFAR network.

  Args:
    model: `"5"` (5 units in each of the 3 blocks: ResNet-32; `"18"` gives
      ResNet-110), `"a_b_c"`, an int or a list of 1 or 3 ints.

  Returns:
    list of 3 ints.
  """
  units = _split(model)
  if len(units) == 1:
    units *= CIFAR_NUM_BLOCKS
  return _check(units, model, CIFAR_NUM_BLOCKS)


def imagenet_units(model):
  """Units per block of the ImageNet network.

  Args:
    model: `"50" | "101" | "152" | "200"`, `"a_b_c_d"` or a list of ints.

  Returns:
    list of 4 ints.
  """
  units = _split(model)
  if len(units) == 1:
    if units[0] not in IMAGENET_DEPTHS:
      raise ValueError(
          f"model must be one of {sorted(IMAGENET_DEPTHS)} or 'a_b_c_d', "
          f"received model={model!r}")
    units = list(IMAGENET_DEPTHS[units[0]])
  return _check(units, model, IMAGENET_NUM_BLOCKS)
