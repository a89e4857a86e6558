"""The port reproduces the original release's outputs (`../shared/oracle`)."""

import numpy as np
import pytest
import tensorflow as tf

import oracle
from conftest import SHARED

CASES = sorted(p.parent.name for p in (SHARED / "oracle").glob("*/case.json"))
SACT_CASES = [c for c in CASES
              if oracle.load_case(SHARED / "oracle" / c)["model_type"] == "sact"]


@pytest.fixture(params=CASES or ["<no oracle cases>"])
def case_dir(request, oracle_dir):
  return oracle_dir / request.param


def test_oracle_cases_exist(oracle_dir):
  assert CASES, f"no case folders in {oracle_dir}"


def test_matches_original(case_dir):
  model = oracle.load_model(case_dir)
  reference = np.load(case_dir / "reference.npz")
  outputs = model(tf.constant(reference["images"]), training=False)
  compared = oracle.compare(outputs, reference,
                            sact=model.model_type == "sact")
  assert "logits" in compared and "flops_per_image" in compared


def test_early_stopping_matches_original(oracle_dir):
  folder = oracle_dir / "cifar_resnet32_act"
  reference = np.load(folder / "act_early_stopping.npz")
  model = oracle.load_model(folder, model_type="act_early_stopping")
  outputs = model(tf.constant(np.load(folder / "reference.npz")["images"]),
                  training=False)
  compared = oracle.compare(outputs, reference)
  assert "block_3/halting_distribution" in compared


@pytest.mark.parametrize("case", SACT_CASES or ["<no SACT oracle case>"])
@pytest.mark.parametrize("sparse_kernels", ["tf", "xla"])
def test_sparse_matches_original(case, sparse_kernels, oracle_dir):
  case_dir = oracle_dir / case
  # Every unit with an active position runs the sparse kernels.
  model = oracle.load_model(
      case_dir, execution="sparse",
      sparse_config={"dense_above_cost": (), "kernels": sparse_kernels})
  reference = np.load(case_dir / "reference.npz")
  outputs = model(tf.constant(reference["images"]), training=False)
  oracle.compare(outputs, reference, sact=True)
