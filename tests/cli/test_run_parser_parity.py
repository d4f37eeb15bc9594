"""The fast `run` parser (cli/options.parse_run, no click) and click agree.

parse_run either returns exactly the options click would, or None (then
click parses the line itself and gives its usual messages).  So: whatever
parse_run accepts, click accepts with the same values; and a line click
refuses, parse_run never accepts.  Pure parsing: no process is started.
"""

import click
import pytest
from hypothesis import given, strategies as st

from landwrap.cli import options
from landwrap.cli.main import cli

RUN = cli.commands["run"]


def click_parse(args):
    """click's options for `landwrap run ARGS`, or None if it refuses them
    (a usage error, or --help)."""
    try:
        ctx = RUN.make_context("run", list(args), parent=click.Context(cli, info_name="landwrap"))
    except (click.exceptions.UsageError, click.exceptions.Exit):
        return None
    return {k: list(v) if isinstance(v, tuple) else v for k, v in ctx.params.items()}


def fast_parse(args):
    opts = options.parse_run(list(args))
    if opts is not None:
        opts["command"] = list(opts["command"])
    return opts


TABLE = [
    # accepted by both
    (["--", "true"], True),
    (["true"], True),
    (["-p", "cat", "--", "cat", "x"], True),
    (["--profile=cat", "cat"], True),
    (["--ro", "/usr", "--rox", "/bin", "--rw", ".", "--", "ls", "-l"], True),
    (["-vv", "-q", "--", "true"], True),
    (["-qv", "true"], True),
    (["--abi", "3", "--best-effort", "--", "true"], True),
    (["--abi=3", "true"], True),
    (["--keep-fd", "3", "--keep-fd=4", "--", "true"], True),
    (["--connect-tcp", "443", "--bind-tcp", "8000-8100", "--", "true"], True),
    (["--unrestricted-filesystem", "--unrestricted-net", "true"], True),
    (["--env", "A=b", "--clean-env", "--", "env"], True),
    (["--dry-run", "--json", "--", "python3", "-c", "pass"], True),
    (["true", "--ro", "/etc"], True),  # options after the command are the command's
    (["--", "--ro"], True),
    # refused by click (parse_run leaves them to click)
    ([], False),
    (["--"], False),
    (["--ro"], False),
    (["--ro", "/usr"], False),
    (["--abi", "x", "true"], False),
    (["--keep-fd", "three", "true"], False),
    (["--no-such-option", "true"], False),
    (["-x", "true"], False),
    (["--dry-run=yes", "true"], False),
    (["-vz", "true"], False),
    (["--help"], False),
]


@pytest.mark.parametrize("args,accepted", TABLE)
def test_table(args, accepted):
    fast, slow = fast_parse(args), click_parse(args)
    assert (slow is not None) is accepted, slow
    if accepted:
        assert fast == slow
    else:
        assert fast is None


_NAMES = sorted(d for opt in options.RUN_OPTIONS for d in opt[0])
_TOKENS = _NAMES + [n + "=" + v for n in ("--abi", "--ro", "--keep-fd", "-v", "--json")
                    for v in ("1", "x")] + \
    ["--", "-", "1", "x", "-1", "/usr", "a=b", "-vq", "-qq", "-vp", "true", "--nope", "-z", ""]


@given(st.lists(st.sampled_from(_TOKENS), max_size=8))
def test_whatever_the_fast_parser_accepts_click_parses_the_same(args):
    fast = fast_parse(args)
    if fast is not None:
        assert click_parse(args) == fast
