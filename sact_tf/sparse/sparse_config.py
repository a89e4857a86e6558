"""The configuration of sparse execution."""

import dataclasses

import tensorflow as tf

KERNELS = ("auto", "xla", "tf")


def _pairs(table, name):
  """`table` as a tuple of `(max depth, threshold)` pairs, validated."""
  try:
    pairs = tuple((int(depth), float(value)) for depth, value in table)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be (max depth, threshold) pairs, "
                     f"received {name}={table!r}") from None
  depths = [depth for depth, _ in pairs]
  if depths != sorted(depths) or any(d < 1 for d in depths):
    raise ValueError(f"{name} must list increasing positive depths, "
                     f"received {name}={table!r}")
  return pairs


@dataclasses.dataclass(frozen=True)
class SparseConfig:
  """How sparse execution runs a SACT block: kernels, thresholds, buckets.

  The thresholds decide, per unit and per call, whether computing only the
  active positions pays for its gathers and scatters. They depend on the
  machine; the defaults are the break-evens measured on a 2-core CPU with
  `tools/benchmark.py` (see `docs/benchmarks.md`). Outputs do not depend on
  any of them, only speed does. The configuration is passed to the models
  (`sparse_config=`) and saved with them (`to_dict` in `get_config`).

  Args:
    kernels: str. `"tf"`: TensorFlow kernels on exactly the active rows;
      `"xla"`: one XLA-compiled kernel per unit, its active sets padded to
      one of `num_buckets` capacities; `"auto"`: `"xla"` where a GPU is
      visible, else `"tf"`. Defaults to `"auto"`.
    num_buckets: int. Capacities per map size of the `"xla"` kernels' active
      sets (bounds their compilations). Defaults to 8.
    dense_above_cost: `(max depth, threshold)` pairs. A unit runs dense
      (masked) when the share of its branch's multiply-adds that sparse
      execution would do (`sparse_cost`, eq. in `docs/sparse_execution.md`)
      exceeds the threshold of the first pair whose depth is at least the
      unit's; wider units always run sparse. The break-even rises with the
      width: the matmuls grow with channels squared, the gathers and
      scatters with channels. Defaults to `((256, 0.75), (512, 0.8),
      (1024, 0.85))`.
    dilation_gathered_below: `(max depth, share)` pairs, read as above. A
      unit that runs sparse gathers the 3x3 dilation of its active positions
      for its first conv and its halting head's taps only while the dilation
      covers less than this share of the map; above it, those two run on the
      whole map. Wider units always gather. Defaults to `((1024, 0.8),)`.
    xla_scatter_min_size: int. Scatters of `K` rows of `C` channels with
      `K * (C + xla_scatter_row_overhead) >= xla_scatter_min_size` run
      XLA-compiled, the others as TensorFlow's op (which adds rows one after
      another; XLA's costs more per call and less per row). Defaults to
      100000.
    xla_scatter_row_overhead: int. The per-row cost of TensorFlow's scatter
      in units of one channel's cost. Defaults to 22.
  """

  kernels: str = "auto"
  num_buckets: int = 8
  dense_above_cost: tuple = ((256, 0.75), (512, 0.8), (1024, 0.85))
  dilation_gathered_below: tuple = ((1024, 0.8),)
  xla_scatter_min_size: int = 100000
  xla_scatter_row_overhead: int = 22

  def __post_init__(self):
    if self.kernels not in KERNELS:
      raise ValueError(f"kernels must be one of {KERNELS}, received "
                       f"kernels={self.kernels!r}")
    for name in ("num_buckets", "xla_scatter_min_size"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, received "
                         f"{name}={value!r}")
    if (not isinstance(self.xla_scatter_row_overhead, int) or
        self.xla_scatter_row_overhead < 0):
      raise ValueError(
          f"xla_scatter_row_overhead must be an int >= 0, received "
          f"xla_scatter_row_overhead={self.xla_scatter_row_overhead!r}")
    for name in ("dense_above_cost", "dilation_gathered_below"):
      object.__setattr__(self, name, _pairs(getattr(self, name), name))

  @classmethod
  def create(cls, config):
    """A `SparseConfig` from one, from `to_dict`'s dict, or None (defaults)."""
    if config is None:
      return cls()
    if isinstance(config, cls):
      return config
    if isinstance(config, dict):
      unknown = set(config) - {f.name for f in dataclasses.fields(cls)}
      if unknown:
        raise ValueError(f"unknown sparse_config keys {sorted(unknown)}, "
                         f"received sparse_config={config!r}")
      return cls(**config)
    raise ValueError(f"sparse_config must be a SparseConfig, a dict or None, "
                     f"received sparse_config={config!r}")

  def to_dict(self):
    """A JSON-serializable dict that `create` turns back into this config."""
    config = dataclasses.asdict(self)
    for name in ("dense_above_cost", "dilation_gathered_below"):
      config[name] = [list(pair) for pair in config[name]]
    return config

  def resolved_kernels(self):
    """`kernels`, with `"auto"` resolved for the devices visible now."""
    if self.kernels == "auto":
      return "xla" if tf.config.list_logical_devices("GPU") else "tf"
    return self.kernels

  def dense_above(self, depth):
    """The `sparse_cost` above which a unit of `depth` channels runs dense."""
    return _threshold(self.dense_above_cost, depth)

  def gathered_below(self, depth):
    """The dilated share of the map from which the first conv runs whole."""
    return _threshold(self.dilation_gathered_below, depth)

  def scatter_compiled(self, count, channels):
    """Whether a scatter of `count` rows of `channels` runs XLA-compiled.

    Args:
      count: int or int32 scalar tensor, the number of rows.
      channels: int, the width of a row.

    Returns:
      bool, or a bool scalar tensor for a tensor `count`.
    """
    return (count * (channels + self.xla_scatter_row_overhead) >=
            self.xla_scatter_min_size)


def _threshold(table, depth):
  """The threshold of the first pair of `table` that fits `depth` (or inf)."""
  for max_depth, threshold in table:
    if depth <= max_depth:
      return threshold
  return float("inf")
