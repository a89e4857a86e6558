"""tf.distribute: MirroredStrategy and MultiWorkerMirroredStrategy runs.

Each runs in subprocesses (`distributed_worker.py`): logical devices and
multi-worker clusters must be set up before TensorFlow starts.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import tensorflow as tf

import helpers

WORKER = pathlib.Path(__file__).with_name("distributed_worker.py")
REPO = helpers.REPO
TIMEOUT = 240


def _env(**extra):
  env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3",
             **extra)
  env.pop("TF_CONFIG", None)
  env.update(extra)
  return env


def _check(process, output):
  assert process.returncode == 0, output[-3000:]


def test_mirrored_reproduces_single_device_training(tmp_path):
  result = subprocess.run(
      [sys.executable, str(WORKER), "mirrored", str(tmp_path)],
      env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
  _check(result, result.stdout + result.stderr)
  data = np.load(tmp_path / "mirrored.npz")
  np.testing.assert_allclose(data["mirrored_losses"], data["single_losses"],
                             rtol=1e-4)
  assert data["single_losses"][0] > data["single_losses"][-1] + 0.5
  # The same weights and averages, up to float32 rounding. The tolerance is
  # not 1e-6: the two runs sum gradients in another order, and a leaky ReLU
  # input or halting sum that lands on the other side of its kink or
  # threshold turns a 1e-7 difference into one of about 1e-3 after a few
  # steps at learning rate 0.1 (with the fixed seed here, 4e-4 at most).
  names = [k for k in data.files if k.startswith("single_") and
           k != "single_losses"]
  assert len(names) > 100
  for name in names:
    np.testing.assert_allclose(data["mirrored" + name[len("single"):]],
                               data[name], atol=1e-3, err_msg=name)


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_multi_worker_mirrored_trains_identical_workers(tmp_path):
  workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
  processes = []
  for index in range(2):
    tf_config = {"cluster": {"worker": workers},
                 "task": {"type": "worker", "index": index}}
    processes.append(subprocess.Popen(
        [sys.executable, str(WORKER), "multi_worker", str(tmp_path),
         str(tmp_path / "run")], env=_env(TF_CONFIG=json.dumps(tf_config)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  try:
    outputs = [p.communicate(timeout=TIMEOUT)[0] for p in processes]
  finally:
    for p in processes:
      p.kill()
  for process, output in zip(processes, outputs):
    _check(process, output)
  chief, worker = (np.load(tmp_path / f"weights_{i}.npz") for i in range(2))
  assert len(chief.files) == len(worker.files) > 10
  for name in chief.files:
    np.testing.assert_array_equal(chief[name], worker[name])
  # The chief wrote the run; the other worker wrote only scratch files.
  assert tf.train.latest_checkpoint(str(tmp_path / "run")).endswith("ckpt-4")
  assert "Saved" in outputs[0]
