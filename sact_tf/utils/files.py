"""Writing outputs so that a failure leaves nothing half-written behind."""

import contextlib
import os
import shutil
import tempfile


def check_writable_output(path, overwrite=False):
  """Raises ValueError if `path` exists (and may not be replaced)."""
  if os.path.exists(path) and not overwrite:
    raise ValueError(f"{path} already exists; pass --overwrite to replace it")
  parent = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(parent):
    raise ValueError(f"the directory of {path} does not exist")


@contextlib.contextmanager
def atomic_output(path, overwrite=False, is_dir=False):
  """Yields a temporary path that becomes `path` only if the block succeeds.

  The temporary file or directory lives next to `path` (same file system,
  so the final rename is atomic); on any exception it is removed and an
  existing `path` is left untouched.

  Args:
    path: str, the final file or directory.
    overwrite: bool, replace an existing `path`.
    is_dir: bool, the output is a directory (else a file).
  """
  check_writable_output(path, overwrite)
  parent = os.path.dirname(os.path.abspath(path))
  base = os.path.basename(path)
  if is_dir:
    tmp = tempfile.mkdtemp(prefix=f".{base}.", dir=parent)
    # mkdtemp makes it private (0700); give it the permissions of a new
    # directory, so that e.g. a TF Serving container can read an export.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
  else:
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=os.path.splitext(
        path)[1], dir=parent)
    os.close(fd)
    os.remove(tmp)
  try:
    yield tmp
    if os.path.isdir(path) and overwrite:
      shutil.rmtree(path)
    os.replace(tmp, path)
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.exists(tmp):
      os.remove(tmp)
