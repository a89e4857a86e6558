"""tools/results_table.py: rows from evaluated run directories."""

import subprocess
import sys

import pytest
import tensorflow as tf

import helpers
from sact_tf.training import run_results

REPO = helpers.REPO
TOOL = str(REPO / "tools" / "results_table.py")


def test_table_of_vanilla_sact_and_sampling_runs(tmp_path):
  vanilla = helpers.write_run(tmp_path / "vanilla", "cifar", "vanilla")
  full = int(vanilla(tf.zeros([1, 32, 32, 3]), training=False)["flops"][0])
  helpers.write_metrics(tmp_path / "vanilla", {"eval/Accuracy": 0.9,
                                        "Total Flops/mean": full})
  helpers.write_run(tmp_path / "sact", "cifar", "sact",
                    model_kwargs={"tau": 0.05})
  helpers.write_metrics(tmp_path / "sact", {
      "eval/Accuracy": 0.875, "Total Flops/mean": full / 4,
      "eval/ponder_cost_map/object_mean": 5.5,
      "eval/ponder_cost_map/background_mean": 4.25})
  helpers.write_run(tmp_path / "sampling", "cifar", "sampling",
                    model_kwargs={"sparse_loss_weight": 0.5})
  helpers.write_metrics(tmp_path / "sampling", {
      "eval/Accuracy": 0.75, "Total Flops/mean": full / 2,
      "eval/sampling_density_map/object_mean": 0.625,
      "eval/sampling_density_map/background_mean": 0.25})
  result = subprocess.run(
      [sys.executable, TOOL, str(tmp_path / "sact"), str(tmp_path / "sampling"),
       str(tmp_path / "vanilla")],
      capture_output=True, text=True, timeout=120, check=True)
  lines = result.stdout.strip().splitlines()
  assert lines[2] == (f"| vanilla | vanilla |  | 0.900 | {full / 1e6:.2f}M | "
                      "100% |  |  |")
  assert lines[3] == (f"| sact | sact | 0.05 | 0.875 | {full / 4e6:.2f}M | "
                      "25% | 5.50 | 4.25 |")
  # The sampling family's point is its loss weight, its map the density.
  assert lines[4] == (f"| sampling | sampling | weight=0.5 | 0.750 | "
                      f"{full / 2e6:.2f}M | 50% | 0.62 | 0.25 |")


def test_a_run_without_evaluation_is_one_line_error(tmp_path):
  helpers.write_run(tmp_path / "run", "cifar", "sact")
  result = subprocess.run([sys.executable, TOOL, str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith(
      "results_table: error: ")
  assert "tools/evaluate.py" in result.stderr


def test_row_of_a_sampling_run(tmp_path):
  """Its loss weight, no tau, its FLOPs against the vanilla network's."""
  vanilla = helpers.write_run(tmp_path / "vanilla", "cifar", "vanilla")
  full = int(vanilla(tf.zeros([1, 32, 32, 3]), training=False)["flops"][0])
  helpers.write_run(tmp_path / "sampling", "cifar", "sampling", seed=3,
                    model_kwargs={"sparse_loss_weight": 0.05})
  helpers.write_metrics(tmp_path / "sampling", {
      "eval/Accuracy": 0.75, "Total Flops/mean": full * 0.4,
      "eval/sampling_density_map/object_mean": 0.625,
      "eval/sampling_density_map/background_mean": 0.25})
  row = run_results.run_row(str(tmp_path / "sampling"))
  assert row["model_type"] == "sampling" and row["seed"] == 3
  assert row["tau"] is None and row["sparse_loss_weight"] == 0.05
  assert row["flops_fraction"] == pytest.approx(0.4)
  assert (row["density_object"], row["density_background"]) == (0.625, 0.25)
  assert row["ponder_object"] is None
