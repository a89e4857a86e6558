"""The training step of ACT / SACT ResNets, as an orbit `StandardTrainer`."""

import keras
import orbit
import tensorflow as tf

from sact_tf.training import metrics


class Trainer(orbit.StandardTrainer):
  """Trains a model with momentum SGD under any `tf.distribute` strategy.

  One step (compiled with `tf.function`, several steps in a
  `tf.while_loop`): on each replica, the model on the replica's batch, the
  loss

    cross-entropy (with label smoothing) + tau * sum of the blocks' mean
    ponder costs (eq. (8) of the paper) + L2 weight decay

  (the last two are the model's `losses`), scaled for the global batch so
  the all-reduced gradients are those of the global batch, and the
  optimizer update; then the batch norm moving statistics are averaged over
  the replicas (Keras 3 keeps one copy per replica, each updated from its
  own batch, so copies on different workers would drift apart and a
  checkpoint would hold one worker's), and the weights' moving averages
  move. Statistics are averaged over the steps since the last `train()`
  call and over replicas.

  Args:
    strategy: `tf.distribute.Strategy` whose scope created the objects.
    model: a built `CifarResNet` / `ImageNetResNet`.
    optimizer: a `keras.optimizers.Optimizer`.
    train_dataset: a distributed dataset of batches `{"images": float32
      [b, s, s, 3], "labels": int64 [b]}` (b the replica's batch).
    global_step: int64 `tf.Variable`, incremented every step.
    global_batch_size: int, the batch over all replicas.
    label_smoothing: float. Defaults to 0.
    ema: `ExponentialMovingAverage` of the model's variables, or None.

  `train(num_steps)` returns a dict of float scalars: `losses/Total Loss`,
  `losses/cross_entropy`, `losses/ponder_cost`, `losses/regularization`,
  `training/Accuracy`, `training/Learning Rate` and the statistics of
  `metrics.batch_statistics` (per block ponder cost, units and FLOPs).
  """

  def __init__(self, strategy, model, optimizer, train_dataset, global_step,
               global_batch_size, label_smoothing=0.0, ema=None):
    super().__init__(train_dataset, options=orbit.StandardTrainerOptions(
        use_tf_while_loop=True))
    if int(global_batch_size) < 1:
      raise ValueError(f"global_batch_size must be positive, received "
                       f"{global_batch_size!r}")
    if not 0 <= label_smoothing < 1:
      raise ValueError(f"label_smoothing must be in [0, 1), received "
                       f"label_smoothing={label_smoothing!r}")
    self.strategy = strategy
    self.model = model
    self.optimizer = optimizer
    self.global_step = global_step
    self.global_batch_size = int(global_batch_size)
    self.label_smoothing = float(label_smoothing)
    self.ema = ema
    names = (["losses/Total Loss", "losses/cross_entropy",
              "losses/ponder_cost", "losses/regularization",
              "training/Accuracy"] +
             metrics.batch_statistic_names(model))
    with strategy.scope():
      self.means = {name: keras.metrics.Mean(name=name) for name in names}

  def train_loop_begin(self):
    for mean in self.means.values():
      mean.reset_state()

  def train_step(self, iterator):
    def step_fn(batch):
      labels = batch["labels"]
      with tf.GradientTape() as tape:
        outputs = self.model(batch["images"], training=True)
        per_example = metrics.cross_entropy(labels, outputs["logits"],
                                            self.label_smoothing)
        cross_entropy = tf.reduce_mean(per_example)
        model_loss = tf.add_n(self.model.losses)
        loss = (tf.nn.compute_average_loss(
            per_example, global_batch_size=self.global_batch_size) +
                tf.nn.scale_regularization_loss(model_loss))
      variables = self.model.trainable_variables
      self.optimizer.apply_gradients(
          zip(tape.gradient(loss, variables), variables))
      ponder = metrics.ponder_loss(self.model, outputs)
      accuracy = tf.reduce_mean(tf.cast(tf.equal(
          tf.argmax(outputs["logits"], -1), tf.cast(labels, tf.int64)),
                                        tf.float32))
      values = {"losses/Total Loss": cross_entropy + model_loss,
                "losses/cross_entropy": cross_entropy,
                "losses/ponder_cost": ponder,
                "losses/regularization": model_loss - ponder,
                "training/Accuracy": accuracy}
      values.update(metrics.batch_statistics(self.model, outputs))
      for name, value in values.items():
        self.means[name].update_state(value)

    self.strategy.run(step_fn, args=(next(iterator),))
    if self.strategy.num_replicas_in_sync > 1:
      statistics = self.model.non_trainable_variables
      local = self.strategy.run(
          lambda: [tf.convert_to_tensor(v) for v in statistics])
      for variable, value in zip(statistics, local):
        variable.assign(self.strategy.reduce(tf.distribute.ReduceOp.MEAN,
                                             value, axis=None))
    if self.ema is not None:
      self.ema.update(self.global_step)
    self.global_step.assign_add(1)

  def train_loop_end(self):
    results = {name: float(mean.result()) for name, mean in self.means.items()}
    learning_rate = self.optimizer.learning_rate
    results["training/Learning Rate"] = float(learning_rate)
    return results
