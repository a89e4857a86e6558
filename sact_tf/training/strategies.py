"""The `tf.distribute` strategies of `--strategy`."""

import tensorflow as tf

from official.common import distribute_utils

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored",
              "tpu")


def make_strategy(name, tpu_address=""):
  """A `tf.distribute.Strategy` by name.

  Args:
    name: str. `"default"`: no distribution (one device);
      `"one_device"`: `OneDeviceStrategy` on the first GPU, else the CPU;
      `"mirrored"`: `MirroredStrategy` over all GPUs, or, without GPUs,
      over all logical CPU devices; `"multi_worker_mirrored"`:
      `MultiWorkerMirroredStrategy`, the cluster from `TF_CONFIG`;
      `"tpu"`: `TPUStrategy` on `tpu_address` (`""` or `"local"` for a TPU
      VM's own chips), the TPU system initialized here.
    tpu_address: str, see `"tpu"`.

  Returns:
    The strategy (created through tf-models-official's
    `distribute_utils.get_distribution_strategy`).
  """
  if name not in STRATEGIES:
    raise ValueError(f"unknown strategy {name!r}; known: "
                     f"{', '.join(STRATEGIES)}")
  # Physical devices: listing logical ones would start the runtime, after
  # which MultiWorkerMirroredStrategy can no longer be created.
  num_gpus = len(tf.config.list_physical_devices("GPU"))
  if name == "mirrored" and not num_gpus:
    cpus = tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in cpus])
  return distribute_utils.get_distribution_strategy(
      {"default": "off"}.get(name, name),
      num_gpus=num_gpus if name == "mirrored" else min(num_gpus, 1),
      tpu_address=tpu_address)
