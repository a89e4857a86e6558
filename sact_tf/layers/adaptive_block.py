"""A block of residual units run with vanilla, ACT or SACT semantics."""

import keras
import tensorflow as tf

from sact_tf import act
from sact_tf.sparse import block as sparse_block
from sact_tf.sparse.sparse_config import SparseConfig

MODEL_TYPES = ("vanilla", "act", "act_early_stopping", "sact", "sampling")
# The model types that halt (have halting heads and a ponder cost).
HALTING_TYPES = ("act", "act_early_stopping", "sact")
EXECUTIONS = ("dense", "sparse")


def check_model_type(model_type):
  if model_type not in MODEL_TYPES:
    raise ValueError(f"model_type must be one of {MODEL_TYPES}, received "
                     f"model_type={model_type!r}")


def check_execution(execution):
  if execution not in EXECUTIONS:
    raise ValueError(f"execution must be one of {EXECUTIONS}, received "
                     f"execution={execution!r}")


@keras.saving.register_keras_serializable(package="sact_tf")
class AdaptiveBlock(keras.layers.Layer):
  """A block of residual units that decides how many of them to run.

  The original `resnet_act.stack_blocks` for one block:

  * `"vanilla"`: every unit, one after the other.
  * `"act"`: every unit is computed; the output is the halting-distribution
    weighted sum of the unit outputs (eq. (6)), per image.
  * `"act_early_stopping"`: the same result, but units are skipped once every
    image of the batch has halted.
  * `"sact"`: ACT per spatial position: a unit after the first only updates
    the positions not yet halted. With `execution="dense"` every position is
    computed and the halted ones masked, exactly as the original; with
    `execution="sparse"` (at inference) only the active positions are
    computed (`sact_tf.sparse.block`), with the same outputs up to float
    rounding. Training (batch norm on batch statistics of the whole map)
    runs dense.
  * `"sampling"`: every unit (`SamplingUnit`), each computing its
    convolutions at sampled positions and interpolating the others (Xie et
    al., ECCV 2020; `sact_tf.sampling`). With `execution="sparse"` at
    inference (deterministic masks) its stride-1 units compute only the
    sampled positions (`sact_tf.sparse.sampling_rows`).

  Args:
    units: list of `HaltingUnit` (`SamplingUnit` for `"sampling"`), named
      `unit_1..unit_L`; all but the last carry a halting head if
      `model_type` is one of `HALTING_TYPES`.
    model_type: str. One of `MODEL_TYPES`. Defaults to `"vanilla"`.
    eps: float. Halting threshold `1 - eps`. Defaults to 0.01.
    execution: str. `"dense"` or `"sparse"`. Defaults to `"dense"`.
    sparse_config: `sact_tf.sparse.SparseConfig`, its `to_dict()` dict, or
      None for the defaults: how sparse execution runs. Defaults to None.

  Call arguments:
    inputs: float32 `[batch, H, W, c_in]`.
    training: bool.

  Returns:
    dict with `outputs` (float32 `[batch, h, w, c]`) and `flops` (int64
    `[batch]`); for ACT/SACT also `ponder_cost` (float32), `num_units`
    (int32) — `[batch]` for ACT, `[batch, h, w]` for SACT — and
    `halting_distribution` (float32, `[..., L]`); for sampling
    `sampling_density` (float32 `[batch, h, w]`, the mean over units of
    `SamplingUnit`'s `density`) and `sparse_loss` (float32 `[batch]`, the
    sum over units of their sparse loss).
  """

  def __init__(self, units, model_type="vanilla", eps=act.DEFAULT_EPS,
               execution="dense", sparse_config=None, **kwargs):
    super().__init__(**kwargs)
    check_model_type(model_type)
    check_execution(execution)
    if not units:
      raise ValueError(f"a block needs at least one unit, received units={units!r}")
    heads = [unit.halting_head is not None for unit in units]
    expected = [model_type in HALTING_TYPES] * (len(units) - 1) + [False]
    if heads != expected:
      raise ValueError(
          f"a {model_type!r} block needs halting heads on units {expected}, "
          f"received units with heads {heads}")
    self.units = list(units)
    self.model_type = model_type
    self.eps = eps
    self.execution = execution
    self.sparse_config = SparseConfig.create(sparse_config)

  def build(self, input_shape):
    shape = input_shape
    for unit in self.units:
      if not unit.built:
        unit.build(shape)
      shape = unit.residual_unit.compute_output_shape(shape)[0]

  def call(self, inputs, training=None):
    if self.model_type == "vanilla":
      state, flops = inputs, 0
      for unit in self.units:
        state, _, unit_flops = unit(state, training=training)
        flops += unit_flops
      return {"outputs": state, "flops": flops}
    if self.model_type == "sampling":
      return self._call_sampling(inputs, training)

    if (self.model_type == "sact" and self.execution == "sparse" and
        not training):
      result = sparse_block.sparse_block(self.units, inputs, self.eps,
                                         self.sparse_config, training)
    else:
      halting_fn = {
          "act": act.adaptive_computation_time_wrapper,
          "act_early_stopping": act.adaptive_computation_early_stopping,
          "sact": act.spatially_adaptive_computation_time,
      }[self.model_type]
      result = halting_fn(inputs, self._run_unit(training), len(self.units),
                          eps=self.eps)
    ponder_cost, num_units, flops, distribution, outputs = result
    return {"outputs": outputs, "flops": flops, "ponder_cost": ponder_cost,
            "num_units": num_units, "halting_distribution": distribution}

  def _call_sampling(self, inputs, training):
    state, flops, densities, losses = inputs, 0, [], []
    sparse_config = (self.sparse_config if self.execution == "sparse" and
                     not training else None)
    for unit in self.units:
      state, unit_flops, info = unit(state, training=training,
                                     sparse_config=sparse_config)
      flops += unit_flops
      densities.append(info["density"])
      losses.append(info["sparse_loss"])
    return {"outputs": state, "flops": flops,
            "sampling_density": tf.add_n(densities) / len(densities),
            "sparse_loss": tf.add_n(losses)}

  def _run_unit(self, training):
    """The unit callable of the `act` functions."""
    def run_unit(state, unit_idx, residual_mask=None):
      return self.units[unit_idx](state, residual_mask=residual_mask,
                                  training=training)
    return run_unit

  def get_config(self):
    config = super().get_config()
    config.update(
        units=[keras.saving.serialize_keras_object(u) for u in self.units],
        model_type=self.model_type, eps=self.eps, execution=self.execution,
        sparse_config=self.sparse_config.to_dict())
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["units"] = [keras.saving.deserialize_keras_object(u)
                       for u in config["units"]]
    return cls(**config)
