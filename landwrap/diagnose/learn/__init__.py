"""diagnose/learn: `landwrap learn` -- write a profile for a program by running it.

Each round runs the command in the candidate sandbox, collects what the
sandbox denied, and widens the candidate minimally; it stops when a round
has no denials (that exact profile is the result) or at the round limit.

Denials come from the kernel's audit records (``audit.Session``, Landlock
ABI 7) or, where those cannot be read, from tracing the program's file and
network system calls with strace inside the sandbox (:func:`parse_strace`,
:func:`strace_denials`) and keeping the failures the sandbox explains.
The candidate is written to a TOML file every round and loaded exactly as
`landwrap run -p FILE` loads it, so what ran clean is what is written out.

How a denial becomes a rule (:meth:`Learner.propose`):

* every path is taken as the real path (symlinks resolved: what strace
  reports is the path as the program wrote it); a symlink on the way is
  named in the rule's comment; a kernel record's path is resolved
  already, and a symlink on it after the run was made since: it grants
  nothing;
* reads become ``ro``, execution ``rox`` (on the program's installation
  prefix or ``bin`` directory), writing a file ``rw`` on that file;
  creating or removing entries in a directory an exact
  ``[[filesystem.rule]]`` on that directory (``make_reg`` is creation only:
  ``write_file`` and ``truncate`` come when the program then writes a file
  it created), so the program does not also get to read everything next
  to its output;
* paths inside a recognised container are generalised to it: a Python
  library directory (``lib/pythonX.Y``), a shared library directory, a
  ``bin``/``sbin``/``libexec`` directory for programs, locale and other
  ``share`` data, ``.git``, ``node_modules``, ``__pycache__``, and a git work
  tree for git itself;
* files that vanished by the end of the round (temporary files, journals)
  and files the program created, in a directory it may create in, become
  rights on that directory (a vanished file elsewhere grants nothing: the
  strace fallback's output is written in the sandbox and may name a file
  that never existed);
* three or more read-only rules directly in one directory are merged into
  ``ro`` on the directory;
* never ``/``, ``$HOME``, an ancestor of ``$HOME``, ``~/.config`` or a
  top-level directory as a whole by generalisation, nor a directory that
  holds a sensitive path; a rule that lands on a broad directory anyway is
  flagged with a warning;
* sensitive paths (:class:`Sensitive`: keys, credential stores, browser
  profiles, keyrings, /etc/shadow, container and D-Bus sockets, landwrap's
  own configuration and cache...) are granted only with ``--allow-sensitive
  PATH`` or an answer at the terminal; the others are listed in the summary
  and the profile's header.

Never runs anything outside the sandbox, and never writes the output file
before the learning is over; then writes it atomically (a new temporary
file, ``O_EXCL|O_NOFOLLOW``, renamed over the output).  Every string in
the profile and in progress lines is escaped (``safetext.printable``,
``profile.toml_str``): file names are chosen by the program.

The parts: ``candidate`` (the profile being learned and its TOML output),
``generalise`` (where a denial leads; sensitive paths), ``rounds`` (the
round loop, :class:`Learner`), ``strace`` (the fallback's parser).  The
command itself (prompts, output file) is ``cli.learn``.
"""

from .candidate import COLLAPSE, Candidate, Grant, show_command  # noqa: F401
from .generalise import (FILE_RIGHTS, READ_RIGHTS, Sensitive, container,  # noqa: F401
                         install_prefix, is_program_dir, symlinks_on, too_broad)
from .rounds import DEFAULT_ROUNDS, Learner  # noqa: F401
from .strace import STRACE, parse_strace, strace_denials  # noqa: F401

__all__ = ["COLLAPSE", "Candidate", "Grant", "show_command", "FILE_RIGHTS", "READ_RIGHTS",
           "Sensitive", "container", "install_prefix", "is_program_dir", "symlinks_on",
           "too_broad", "DEFAULT_ROUNDS", "Learner", "STRACE", "parse_strace", "strace_denials"]
