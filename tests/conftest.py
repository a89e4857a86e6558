"""Shared test set-up: quiet TensorFlow, find the shared oracle data."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

from helpers import REPO  # pylint: disable=g-import-not-at-top
SHARED = pathlib.Path(os.environ.get("SACT_SHARED_DIR", REPO.parent / "shared"))


def shared_dir(name):
  """A folder of `../shared`; skipped where it is absent, unless CI requires it.

  `.ci/run` sets SACT_REQUIRE_SHARED=1, so there a missing folder fails.
  """
  path = SHARED / name
  if not path.is_dir():
    if os.environ.get("SACT_REQUIRE_SHARED") == "1":
      pytest.fail(f"{path} is missing and SACT_REQUIRE_SHARED=1")
    pytest.skip(f"{path} is not here (set SACT_SHARED_DIR)")
  return path


@pytest.fixture(scope="session")
def oracle_dir():
  return shared_dir("oracle")


@pytest.fixture(scope="session")
def testdata_dir():
  return shared_dir("testdata")


@pytest.fixture(autouse=True)
def seeded():
  """Every test starts from the same Python, NumPy and TensorFlow seeds."""
  keras.utils.set_random_seed(0)
