"""CAT2000 reading, the saliency evaluation, and tools/saliency_eval.py on a
tiny CAT2000-layout directory with a tiny SACT model."""

import json
import os
import pathlib

import numpy as np
import pytest
from scipy import io as scipy_io

from sact_tf import saliency
from sact_tf.saliency import cat2000
from sact_tf.saliency import evaluation
from sact_tf.saliency import maps
from sact_tf.viz import photos
import helpers
NUM_IMAGES = 3
SETTINGS = {"num_splits": 5, "emd_downsize": 8, "blur_sigma": 0.05}


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("cat2000") / "digits"
  cat2000.write_cluttered_digits(str(directory), NUM_IMAGES)
  return directory


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("saliency_run") / "run"
  helpers.write_run(directory, "cifar", "sact")
  return directory


def test_reader_finds_the_layout(digits_dir):
  stimuli = cat2000.find_stimuli(str(digits_dir))
  assert len(stimuli) == NUM_IMAGES
  assert [s.category for s in stimuli] == sorted(s.category for s in stimuli)
  first = stimuli[0]
  assert first.image_path.endswith(f"Stimuli/{first.category}/"
                                   f"{first.name}.png")
  fixated = cat2000.read_fixation_locations(first.fixation_locations_path)
  assert fixated.shape == (32, 32) and 2 <= fixated.sum() <= 16
  density = cat2000.read_fixation_map(first.fixation_map_path, (32, 32))
  assert density.max() == 1.0
  # The density is blurred fixations: highest where people looked.
  assert saliency.auc_judd(density, fixated) > 0.9


def test_writer_draws_fixations_in_the_box():
  rng = np.random.default_rng(0)
  fixated = cat2000.box_fixations((32, 32), (0.25, 0.5, 0.75, 1.0), 40, rng)
  rows, cols = np.nonzero(fixated)
  assert rows.min() >= 8 and rows.max() < 24
  assert cols.min() >= 16 and cols.max() < 32


def _copy_layout(source, target):
  for path in source.rglob("*"):
    if path.is_file():
      destination = target / path.relative_to(source)
      destination.parent.mkdir(parents=True, exist_ok=True)
      destination.write_bytes(path.read_bytes())
  return cat2000.find_stimuli(str(target))


def test_reader_names_the_bad_file(digits_dir, tmp_path):
  stimuli = _copy_layout(digits_dir, tmp_path / "bad")
  mat = stimuli[0].fixation_locations_path
  scipy_io.savemat(mat, {"other": np.ones((32, 32))})
  with pytest.raises(ValueError, match=f"^{mat} has no fixLocs$"):
    cat2000.read_fixation_locations(mat)
  scipy_io.savemat(mat, {"fixLocs": np.zeros((32, 32))})
  with pytest.raises(ValueError, match=f"{mat} has no fixations"):
    cat2000.read_fixation_locations(mat)
  pathlib.Path(mat).write_text("not a mat file")
  with pytest.raises(ValueError, match=f"cannot read {mat} as a .mat"):
    cat2000.read_fixation_locations(mat)
  os.remove(mat)
  with pytest.raises(ValueError, match=f"{stimuli[0].image_path} has no "
                     f"fixation locations"):
    cat2000.find_stimuli(str(tmp_path / "bad"))
  scipy_io.savemat(mat, {"fixLocs": np.ones((32, 32))})
  os.remove(stimuli[1].fixation_map_path)
  with pytest.raises(ValueError, match=f"{stimuli[1].image_path} has no "
                     f"fixation map"):
    cat2000.find_stimuli(str(tmp_path / "bad"))
  with pytest.raises(ValueError, match="has no <category>/<name>.jpg"):
    cat2000.find_stimuli(str(tmp_path))


def test_evaluation_scores_every_map(digits_dir, run_dir):
  model, family = evaluation.load_model(str(run_dir))
  stimuli = cat2000.find_stimuli(str(digits_dir))
  results = evaluation.evaluate(model, family, stimuli, num_examples=2,
                                **SETTINGS)
  per_image = results["per_image"]
  assert [r["name"] for r in per_image] == [s.name for s in stimuli]
  first = per_image[0]["scores"]
  assert set(first) == set(evaluation.METHODS)
  assert set(first["ponder_cost"]) == set(evaluation.METRICS)
  # The uniform map: chance in every AUC, undefined NSS / CC / similarity.
  for metric in ("auc_judd", "auc_borji", "shuffled_auc"):
    assert first["uniform"][metric] == 0.5
  for metric in ("nss", "cc", "similarity"):
    assert first["uniform"][metric] is None
  # The ponder map scored is the model's map, post-processed.
  stimulus = stimuli[0]
  photo = photos.load_photo(stimulus.image_path)
  ponder = photos.ponder_cost_map(model, photo, family)
  expected = maps.normalize_range(maps.blur(ponder, SETTINGS["blur_sigma"]))
  fixated = cat2000.read_fixation_locations(
      stimulus.fixation_locations_path)
  assert first["ponder_cost"]["auc_judd"] == pytest.approx(
      saliency.auc_judd(expected, fixated), abs=1e-6)
  assert first["ponder_cost"]["nss"] == pytest.approx(
      saliency.nss(expected, fixated), abs=1e-5)
  assert len(results["examples"]) == 2

  summary = evaluation.summarize(per_image)
  assert summary["num_images"] == NUM_IMAGES
  assert summary["overall"]["center_prior"]["cc"] == pytest.approx(
      np.mean([r["scores"]["center_prior"]["cc"] for r in per_image]))
  assert summary["overall"]["uniform"]["nss"] is None
  assert summary["undefined"]["uniform"] == {
      "nss": NUM_IMAGES, "cc": NUM_IMAGES, "similarity": NUM_IMAGES}
  assert set(summary["per_category"]) == {s.category for s in stimuli}
  table = evaluation.markdown(summary)
  assert "| uniform | 0.5000 | 0.5000 | 0.5000 | n/a | n/a | n/a |" in table


@pytest.mark.parametrize("setting, message", [
    ({"blur_sigma": -0.1}, "blur_sigma must be >= 0, received "
     "blur_sigma=-0.1"),
    ({"center_prior_weight": 2}, "center_prior_weight must be in"),
    ({"center_sigma": 0.0}, "center_sigma must be > 0"),
    ({"num_splits": 0}, "num_splits must be a positive int"),
    ({"num_other_images": 0}, "num_other_images must be >= 1"),
    ({"emd_downsize": -1}, "emd_downsize must be an int >= 0")])
def test_evaluation_checks_settings_first(setting, message):
  with pytest.raises(ValueError, match=message):
    # No model and no stimuli are touched before the settings are checked.
    evaluation.evaluate(None, "cifar", [], **setting)


def test_keras_file(run_dir, tmp_path):
  model, family = evaluation.load_model(str(run_dir))
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded, loaded_family = evaluation.load_model(path)
  assert loaded_family == family == "cifar"
  photo = np.random.default_rng(0).integers(0, 256, (32, 24, 3), np.uint8)
  expected = evaluation.network_maps(model, photo, family)
  actual = evaluation.network_maps(loaded, photo, family)
  for name in ("ponder_cost", "feature_norm"):
    assert actual[name].shape == (32, 24)
    np.testing.assert_allclose(actual[name], expected[name], atol=1e-5)
  with pytest.raises(ValueError, match="does not exist"):
    evaluation.load_model(str(tmp_path / "missing.keras"))


def _tool(*args):
  return helpers.run_tool("saliency_eval.py", args)


@pytest.mark.slow
def test_tool_end_to_end(run_dir, tmp_path):
  data, output = tmp_path / "digits", tmp_path / "out"
  result = _tool(f"--checkpoint_dir={run_dir}", f"--data_dir={data}",
                 f"--output_dir={output}", "--write_cluttered_digits=3",
                 "--num_splits=5", "--emd_downsize=8", "--num_examples=2")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "| ponder_cost |" in result.stdout
  record = json.loads((output / "saliency_metrics.json").read_text())
  assert record["num_images"] == 3 and len(record["per_image"]) == 3
  assert record["overall"]["uniform"]["auc_judd"] == 0.5
  assert 0 < record["overall"]["ponder_cost"]["auc_judd"] < 1
  assert record["settings"]["num_splits"] == 5
  assert (output / "saliency_metrics.md").read_text().startswith(
      "Saliency metrics over 3 images")
  assert (output / "saliency_examples.png").stat().st_size > 1000

  # Bad input: one line naming the file, no traceback, nothing written.
  stimuli = cat2000.find_stimuli(str(data))
  mat = stimuli[-1].fixation_locations_path
  scipy_io.savemat(mat, {"fixations": np.ones((32, 32))})
  bad_output = tmp_path / "bad_out"
  result = _tool(f"--checkpoint_dir={run_dir}", f"--data_dir={data}",
                 f"--output_dir={bad_output}")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      f"saliency_eval: error: {mat} has no fixLocs")
  assert "Traceback" not in result.stderr
  assert not bad_output.exists()
