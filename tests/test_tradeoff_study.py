"""The trade-off study end to end, tiny: two families, two points, two seeds.

Seeded training and `tools/lesion_study.py` (LesionResNet from a
stochastic-depth network) in one process (importing TensorFlow takes
seconds; the same seed twice gives the same loss curve), then
`tools/tradeoff.py` as users run it.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import helpers
from sact_tf.viz import tradeoff_charts

REPO = helpers.REPO
LESION_STUDY = str(REPO / "tools" / "lesion_study.py")
TRADEOFF = str(REPO / "tools" / "tradeoff.py")
TIMEOUT = 600
# Trained on the first 256 examples (a small shuffle buffer to fill), so
# LesionResNet chooses on the held-out rest of the training split.
TINY = {"dataset": "cluttered_digits", "base_channels": 2, "batch_size": 8,
        "max_number_of_steps": 2, "learning_rate": 0.05,
        "stochastic_depth": 0.5, "train_split": "train[:256]"}
# name: settings. "sd_2_s1_again" repeats "sd_2_s1".
RUNS = {
    "sd_2_s1": {"model": "2", "seed": 1},
    "sd_2_s2": {"model": "2", "seed": 2},
    "sd_3_s1": {"model": "3", "seed": 1},
    "sd_3_s2": {"model": "3", "seed": 2},
    "sd_2_s1_again": {"model": "2", "seed": 1},
}


LESION_FLAGS = ["--experiments=lesion_resnet", "--budgets=0.9,0.8",
                "--selection_examples=40", "--num_examples=40",
                "--batch_size=40"]


def study(base, runs):
  """Trains and evaluates tiny runs, then studies the lesions of `sd_2_s*`.

  Prints the loss curves of the runs as JSON.
  """
  # pylint: disable=g-import-not-at-top
  import importlib.util
  from sact_tf.training import loop
  from sact_tf.training import run_config
  from sact_tf.training import strategies
  from sact_tf.training.evaluation_run import EvaluationRun
  strategy = strategies.make_strategy("default")
  losses = {}
  for name, settings in runs.items():
    directory = os.path.join(base, name)
    lines = []
    loop.train(run_config.make_config(dict(TINY, **settings)), directory,
               strategy, 3600, 3600, log_every_n_steps=1, log=lines.append)
    losses[name] = [line.split("loss ")[1].split(",")[0]
                    for line in lines if "loss " in line]
    EvaluationRun(directory, os.path.join(directory, "eval"), strategy,
                  num_examples=40, batch_size=40, log=lambda _: None).run()
  spec = importlib.util.spec_from_file_location("lesion_study", LESION_STUDY)
  tool = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(tool)
  for seed in (1, 2):
    tool.FLAGS([LESION_STUDY, f"--checkpoint_dir={base}/sd_2_s{seed}",
                f"--output_dir={base}/lesion_s{seed}"] + LESION_FLAGS)
    tool.main([])
  print(json.dumps(losses))


def _run(args, **kwargs):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=os.pathsep.join(
                 [str(REPO), str(REPO / "tests"),
                  os.environ.get("PYTHONPATH", "")]))
  return subprocess.run([sys.executable] + args, env=env, capture_output=True,
                        text=True, timeout=TIMEOUT, **kwargs)


@pytest.mark.slow
def test_tiny_tradeoff_study(tmp_path):
  result = _run(["-c", f"import test_tradeoff_study as t; "
                       f"t.study({str(tmp_path)!r}, t.RUNS)"])
  assert result.returncode == 0, result.stderr[-2000:]
  losses = json.loads(result.stdout.strip().splitlines()[-1])
  assert len(losses["sd_2_s1"]) == 2
  assert losses["sd_2_s1"] == losses["sd_2_s1_again"]
  assert losses["sd_2_s1"] != losses["sd_2_s2"]

  lesions = json.loads(
      (tmp_path / "lesion_s1" / "lesion_study.json").read_text())
  points = lesions["lesion_resnet"]["points"]
  assert [p["budget"] for p in points] == [0.9, 0.8]
  assert all(p["flops_fraction"] <= p["budget"] for p in points)
  assert lesions["lesion_resnet"]["selection_split"] == "train[256:]"
  assert lesions["lesion_resnet"]["selection_held_out"]

  runs = [str(tmp_path / f"sd_{d}_s{s}") for d in (2, 3) for s in (1, 2)]
  result = _run([TRADEOFF, *runs, str(tmp_path / "lesion_s1"),
                 str(tmp_path / "lesion_s2"),
                 f"--output_dir={tmp_path}/chart"])
  assert result.returncode == 0, result.stderr[-2000:]
  curves = json.loads((tmp_path / "chart" / "tradeoff.json").read_text())
  family = "stochastic depth p_L=0.5"
  assert sorted(curves) == ["LesionResNet from stochastic depth p_L=0.5 "
                            "model=2", family]
  assert [p["point"] for p in curves[family]] == ["model=2", "model=3"]
  for point in curves[family]:
    accuracies = [json.loads((tmp_path / f"sd_{point['point'][-1]}_s{s}"
                              / "eval" / "metrics.json").read_text())[
                                  "metrics"]["eval/Accuracy"] for s in (1, 2)]
    assert point["seeds"] == [1, 2]
    assert point["accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert point["accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1))
  assert (tmp_path / "chart" / "tradeoff.png").stat().st_size > 1000
  table = (tmp_path / "chart" / "tradeoff.md").read_text().splitlines()
  assert len(table) == 2 + 4 and table[2].startswith(
      "| LesionResNet from stochastic depth p_L=0.5 model=2 | budget=0.8 | 2 |")


# (sparse loss weight, seed): (test accuracy, FLOPs per image).
SAMPLING_RUNS = {(0.05, 1): (0.9, 8e6), (0.05, 2): (0.8, 9e6),
                 (0.2, 1): (0.7, 4e6), (0.2, 2): (0.76, 5e6)}


@pytest.mark.slow
def test_sampling_family_beside_sact(tmp_path):
  """Sampling runs: one curve, a point per loss weight, over seeds."""
  runs = []
  for (weight, seed), (accuracy, flops) in SAMPLING_RUNS.items():
    runs.append(tmp_path / f"sampling_{weight}_s{seed}")
    helpers.write_run(runs[-1], "cifar", "sampling", seed=seed,
                      model_kwargs={"sparse_loss_weight": weight})
    helpers.write_metrics(runs[-1], {"eval/Accuracy": accuracy,
                                     "Total Flops/mean": flops})
  runs.append(tmp_path / "sact_s1")
  helpers.write_run(runs[-1], "cifar", "sact", seed=1,
                    model_kwargs={"tau": 0.1})
  helpers.write_metrics(runs[-1], {"eval/Accuracy": 0.85,
                                   "Total Flops/mean": 6e6})
  result = _run([TRADEOFF, *map(str, runs), f"--output_dir={tmp_path}/chart",
                 "--min_accuracy=0.75"])
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.splitlines()[-1] == (
      "below --min_accuracy on the chart: sampling weight=0.2 (0.730)")
  curves = json.loads((tmp_path / "chart" / "tradeoff.json").read_text())
  assert sorted(curves) == ["SACT", "sampling"]
  points = curves["sampling"]
  assert [p["point"] for p in points] == ["weight=0.2", "weight=0.05"]
  for point, weight in zip(points, (0.2, 0.05)):
    accuracy, flops = zip(*(SAMPLING_RUNS[weight, s] for s in (1, 2)))
    assert point["seeds"] == [1, 2]
    assert point["flops_mean"] == pytest.approx(np.mean(flops))
    assert point["accuracy_mean"] == pytest.approx(np.mean(accuracy))
    assert point["accuracy_std"] == pytest.approx(np.std(accuracy, ddof=1))
  table = (tmp_path / "chart" / "tradeoff.md").read_text().splitlines()
  assert table[2:] == [
      "| SACT | tau=0.1 | 1 | 6.00 ± 0.00 | 0.850 ± 0.000 |",
      "| sampling | weight=0.2 | 2 | 4.50 ± 0.71 | 0.730 ± 0.042 |",
      "| sampling | weight=0.05 | 2 | 8.50 ± 0.71 | 0.850 ± 0.071 |"]
  assert (tmp_path / "chart" / "tradeoff.png").stat().st_size > 1000
  result = _run([TRADEOFF, *map(str, runs), f"--output_dir={tmp_path}/bad",
                 "--min_accuracy=1.5"])
  assert result.returncode != 0 and not (tmp_path / "bad").exists()
  assert result.stderr.strip().splitlines()[-1] == (
      "tradeoff: error: --min_accuracy must be in [0, 1), received 1.5")


def test_chart_floor_marks_the_points_below(tmp_path):
  def point(label, flops, accuracy):
    return {"point": label, "flops_mean": flops, "flops_std": 0.0,
            "accuracy_mean": accuracy, "accuracy_std": 0.01}
  curves = {"vanilla": [point("model=1", 6e6, 0.93), point("model=5", 3e7,
                                                             0.97)],
            "LesionResNet": [point("budget=0.9", 2.7e7, 0.82),
                             point("budget=0.6", 1.8e7, 0.25)]}
  path = tmp_path / "chart.png"
  assert tradeoff_charts.draw_tradeoff(curves, str(path)) == []
  # Drawn in order of FLOPs within a family.
  assert tradeoff_charts.draw_tradeoff(curves, str(path), 0.9) == [
      ("LesionResNet", "budget=0.6", 0.25),
      ("LesionResNet", "budget=0.9", 0.82)]
  assert tradeoff_charts.draw_tradeoff(curves, str(path), 0.5) == [
      ("LesionResNet", "budget=0.6", 0.25)]
  assert path.stat().st_size > 1000
