"""tools/results_table.py: rows from evaluated run directories."""

import json
import subprocess
import sys

import tensorflow as tf

import helpers

REPO = helpers.REPO
TOOL = str(REPO / "tools" / "results_table.py")


def _write_metrics(run_dir, metrics):
  (run_dir / "eval").mkdir()
  (run_dir / "eval" / "metrics.json").write_text(json.dumps(
      {"checkpoint": "ckpt-1", "global_step": 1, "metrics": metrics}))


def test_table_of_a_vanilla_and_a_sact_run(tmp_path):
  vanilla = helpers.write_run(tmp_path / "vanilla", "cifar", "vanilla")
  full = int(vanilla(tf.zeros([1, 32, 32, 3]), training=False)["flops"][0])
  _write_metrics(tmp_path / "vanilla", {"eval/Accuracy": 0.9,
                                        "Total Flops/mean": full})
  helpers.write_run(tmp_path / "sact", "cifar", "sact")
  config = json.loads((tmp_path / "sact" / "config.json").read_text())
  config["model_kwargs"]["tau"] = 0.05
  (tmp_path / "sact" / "config.json").write_text(json.dumps(config))
  _write_metrics(tmp_path / "sact", {
      "eval/Accuracy": 0.875, "Total Flops/mean": full / 4,
      "eval/ponder_cost_map/object_mean": 5.5,
      "eval/ponder_cost_map/background_mean": 4.25})
  result = subprocess.run(
      [sys.executable, TOOL, str(tmp_path / "sact"), str(tmp_path / "vanilla")],
      capture_output=True, text=True, timeout=120, check=True)
  lines = result.stdout.strip().splitlines()
  assert lines[2] == (f"| vanilla | vanilla |  | 0.900 | {full / 1e6:.2f}M | "
                      "100% |  |  |")
  assert lines[3] == (f"| sact | sact | 0.05 | 0.875 | {full / 4e6:.2f}M | "
                      "25% | 5.50 | 4.25 |")


def test_a_run_without_evaluation_is_one_line_error(tmp_path):
  helpers.write_run(tmp_path / "run", "cifar", "sact")
  result = subprocess.run([sys.executable, TOOL, str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith(
      "results_table: error: ")
  assert "tools/evaluate.py" in result.stderr
