"""engine/spawn.py's errors for a child that failed: what they say."""

import errno

from landwrap.engine import _binding, spawn


def test_chdir_failure_names_a_bytes_cwd_as_a_path():
    """A working directory given as bytes is named as the path it is, not
    as a Python bytes literal (b'...')."""
    e = spawn.child_error(None, "/bin/true", b"/no/such/dir", _binding.STAGE_CHDIR,
                          errno.ENOENT)
    assert str(e).startswith("cannot change directory to /no/such/dir: "), str(e)
