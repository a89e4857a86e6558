"""Quiet start-up of the command-line tools: their own lines, little else.

Call `quiet_tensorflow()` before TensorFlow is imported. Settings the user
made win: an exported `TF_CPP_MIN_LOG_LEVEL`, absl's `--verbosity`.
"""

import glob
import logging
import os

from absl import app
from absl import flags
from absl import logging as absl_logging

# TensorFlow's C++ log levels: 0 all, 1 warnings and errors, 2 errors,
# 3 none.
ERRORS = "2"
NONE = "3"


def quiet_tensorflow():
  """TensorFlow's C++ log quiet; Python logging at warning level.

  Python's INFO lines (absl's, TensorFlow's, tf.data's) are off unless
  `--verbosity` asks for them.

  The C++ log shows errors only: its warnings are the end of every input
  dataset (`OUT_OF_RANGE: End of sequence`) and notices of the CPU build.
  Where no NVIDIA device is present it is off altogether: TensorFlow's
  CUDA build then logs its failed CUDA initialisation as an error at
  import, and the tools' errors reach them as Python exceptions anyway.
  """
  if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
    has_gpu = bool(glob.glob("/dev/nvidia[0-9]*"))
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = ERRORS if has_gpu else NONE
  app.call_after_init(_quiet_python_logging)


def _quiet_python_logging():
  """absl's and TensorFlow's loggers at WARNING, unless `--verbosity` set."""
  if not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
