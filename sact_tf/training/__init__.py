"""Training and evaluation: loop, losses, metrics, summaries, tf.distribute."""
