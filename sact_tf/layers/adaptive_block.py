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

  * `"vanilla"`: every unit, one after the other (in `unit_order`, which
    may leave units out or reorder them: the lesion study of Veit et al.
    2016, arXiv 1605.06431); with stochastic depth (Huang et al. 2016,
    arXiv 1603.09382) unit `l` is, during training, run with probability
    `survival_probabilities[l]` (one Bernoulli gate per unit per mini-batch,
    per replica under tf.distribute; a dropped unit is the identity, its
    branch is not computed and its FLOPs are not counted) and, at test
    time, its residual is scaled by that probability (eq. (4)-(5) of Huang
    et al.: `F' = F + p_l f(F)`).
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
    survival_probabilities: list of floats in (0, 1], one per unit, or None
      (all 1). Vanilla only; a unit with probability below 1 must have an
      identity shortcut (not the first of a block). Defaults to None.
    unit_order: list of unit indices (0-based) in the order they run, or
      None (all, in order). Vanilla only; it must start with 0 (the first
      unit, whose shortcut is a projection or a stride) and name each
      other unit at most once; units left out are deleted (the identity).
      Defaults to None.

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
               execution="dense", sparse_config=None,
               survival_probabilities=None, unit_order=None, **kwargs):
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
    self.survival_probabilities = self._check_survival(survival_probabilities)
    self.unit_order = self._check_unit_order(unit_order)

  def _unit_name(self, index):
    return f"{self.name}/unit_{index + 1}"

  def _check_survival(self, probabilities):
    if probabilities is None:
      return None
    probabilities = [float(p) for p in probabilities]
    if len(probabilities) != len(self.units):
      raise ValueError(
          f"{self.name} has {len(self.units)} units, received "
          f"survival_probabilities={probabilities!r}")
    for index, p in enumerate(probabilities):
      if not 0 < p <= 1:
        raise ValueError(f"survival probabilities must be in (0, 1], "
                         f"received {p!r} for {self._unit_name(index)}")
    if probabilities[0] != 1:
      raise ValueError(
          f"{self._unit_name(0)} has a projection or stride shortcut and "
          f"cannot be dropped, received survival probability "
          f"{probabilities[0]!r}")
    if self.model_type != "vanilla" and min(probabilities) < 1:
      raise ValueError(f"stochastic depth needs model_type 'vanilla', "
                       f"received model_type={self.model_type!r}")
    return probabilities

  def _check_unit_order(self, unit_order):
    if unit_order is None:
      return None
    unit_order = [int(i) for i in unit_order]
    if self.model_type != "vanilla":
      raise ValueError(f"deleting or reordering units needs model_type "
                       f"'vanilla', received model_type={self.model_type!r}")
    for index in unit_order:
      if not 0 <= index < len(self.units):
        raise ValueError(f"{self.name} has units 1..{len(self.units)}, "
                         f"received unit_{index + 1}")
    if not unit_order or unit_order[0] != 0:
      raise ValueError(
          f"{self._unit_name(0)} has a projection or stride shortcut: it "
          f"must run first, received unit_order={unit_order!r}")
    if len(set(unit_order)) != len(unit_order):
      raise ValueError(f"{self.name}: each unit may run once, received "
                       f"unit_order={unit_order!r}")
    return unit_order

  def build(self, input_shape):
    shape = input_shape
    for unit in self.units:
      if not unit.built:
        unit.build(shape)
      shape = unit.residual_unit.compute_output_shape(shape)[0]

  def call(self, inputs, training=None):
    if self.model_type == "vanilla":
      state, flops = inputs, 0
      for index in self.unit_order or range(len(self.units)):
        state, unit_flops = self._run_vanilla_unit(index, state, training)
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

  def _run_vanilla_unit(self, index, state, training):
    """Unit `index` of a vanilla block, with its stochastic depth.

    Returns:
      `(state, flops)`: float `[batch, h, w, c]`, int64 `[batch]`.
    """
    unit = self.units[index]
    survival = (1.0 if self.survival_probabilities is None else
                self.survival_probabilities[index])
    if survival == 1:
      state, _, flops = unit(state, training=training)
      return state, flops
    if training:
      # One gate per mini-batch; the dropped branch is never computed.
      def run():
        outputs, _, unit_flops = unit(state, training=training)
        return outputs, tf.cast(unit_flops, tf.int64)
      return tf.cond(
          tf.random.uniform([]) < survival, run,
          lambda: (state, tf.zeros(tf.shape(state)[:1], tf.int64)))
    # The identity shortcut plus the expected residual.
    _, residual, flops = unit.residual_unit.call_with_residual(
        state, training=training)
    return state + tf.cast(survival, residual.dtype) * residual, flops
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
        sparse_config=self.sparse_config.to_dict(),
        survival_probabilities=self.survival_probabilities,
        unit_order=self.unit_order)
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["units"] = [keras.saving.deserialize_keras_object(u)
                       for u in config["units"]]
    return cls(**config)
