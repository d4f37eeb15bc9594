"""Tests for the man pages, man/landwrap.1 and man/landwrap-profile.5.

They must render without groff warnings, and they must not fall behind the
code: every command and option of the CLI, every `run` option of
``landwrap.options`` with its aliases and argument, every profile table and
key that ``landwrap.profile`` accepts, every filesystem right of
``landwrap.compat`` with its ABI, and every LANDWRAP_* environment variable
the code reads must be documented.  The examples in landwrap-profile(5)
must be profiles that the loader accepts.

Comparisons are made against the rendered text, rendered with "-" mapped to
a typographic hyphen (U+2010), so that an option written as "--ro" instead
of "\\-\\-ro" in the source fails: only "\\-" renders as the "-" a user can
copy into a shell.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import click
import pytest

from landwrap.cli import main as cli, options
from landwrap.engine import compat
from landwrap.profiles import lookup, profile, validate, variables

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAN1 = os.path.join(ROOT, "man", "landwrap.1")
MAN5 = os.path.join(ROOT, "man", "landwrap-profile.5")
PAGES = [MAN1, MAN5]
TAG = " " * 7      # indentation of a section's text and of .TP tags
WIDE = 400          # line length for the content tests: nothing wraps


def _need(tool: str) -> None:
    """groff and man-db are in the machine image CI runs on: missing there
    is a failure; on a developer's machine without them, a skip."""
    if shutil.which(tool) is None:
        msg = f"{tool} is not installed (Debian: groff-base, man-db)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _groff(page: str, *args: str, after_th: str = "") -> subprocess.CompletedProcess:
    """Run groff on *page*, with the requests *after_th* inserted after its
    .TH line (before it, man.local would undo them)."""
    _need("groff")
    with open(page, encoding="ascii") as f:
        src = f.read()
    if after_th:
        src = re.sub(r"^(\.TH .*\n)", lambda m: m.group(1) + after_th, src, count=1,
                     flags=re.M)
    return subprocess.run(["groff", "-t", "-man", "-Tutf8", *args], input=src,
                          capture_output=True, text=True, timeout=60)


_RENDERED: dict = {}


def render(page: str) -> str:
    """The page as plain text, WIDE columns, no hyphenation, plain "-"
    shown as U+2010 (only "\\-" gives an ASCII hyphen-minus)."""
    if page not in _RENDERED:
        # \- as ASCII whatever the groff version maps it to; "-" as U+2010
        r = _groff(page, f"-rLL={WIDE}n", "-rHY=0", "-P-cbou",
                   after_th=".char \\- \\N'45'\n.char - \\[hy]\n")
        assert r.returncode == 0 and not r.stderr, r.stderr
        _RENDERED[page] = r.stdout
    return _RENDERED[page]


def sections(page: str) -> dict:
    """{heading: text} of the page's .SH sections (.SS stay inside)."""
    out: dict = {}
    current = None
    for line in render(page).splitlines():
        if line and not line[0].isspace():
            if re.search(r"\(\d\)(\s|$)", line):   # page header or footer
                continue
            current = line.strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def tags(text: str) -> list:
    """The .TP tag lines of a section: lines at the section's indentation,
    with a tag short enough to share its line with the body included."""
    return [line[len(TAG):] for line in text.splitlines()
            if len(line) > len(TAG) and line.startswith(TAG) and not line[len(TAG)].isspace()]


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


# rendering ----------------------------------------------------------------

@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
@pytest.mark.parametrize("width", [65, 80, 120])
def test_groff_renders_without_warnings(page, width):
    r = _groff(page, "-ww", "-z", f"-rLL={width}n")
    assert r.returncode == 0
    assert r.stderr == ""


@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_man_l_renders_without_warnings(page):
    _need("man")
    env = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat")
    r = subprocess.run(["man", "--warnings=all", "-l", page], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    name = "LANDWRAP(1)" if page == MAN1 else "LANDWRAP-PROFILE(5)"
    assert r.stdout.startswith(name)
    assert "NAME" in r.stdout


@pytest.mark.parametrize("page", PAGES, ids=os.path.basename)
def test_source_is_ascii_and_escapes_dashes(page):
    with open(page, "rb") as f:
        src = f.read()
    src.decode("ascii")  # raises on anything else
    # every option-looking "--word" must be written \-\-word
    body = [line for line in src.decode().splitlines() if not line.startswith('.\\"')]
    bad = [line for line in body if re.search(r"(?<!\\)--[a-z]", line)]
    assert bad == []


def test_pages_are_installed_with_the_package():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        data_files = tomllib.load(f)["tool"]["setuptools"]["data-files"]
    assert data_files["share/man/man1"] == ["man/landwrap.1"]
    assert data_files["share/man/man5"] == ["man/landwrap-profile.5"]
    assert sorted(os.listdir(os.path.join(ROOT, "man"))) == ["landwrap-profile.5", "landwrap.1"]


# landwrap(1) --------------------------------------------------------------

def test_landwrap1_has_the_usual_sections():
    have = list(sections(MAN1))
    for s in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "EXIT STATUS",
              "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"):
        assert s in have
    assert have.index("NAME") == 0 and have[-1] == "SEE ALSO"


@pytest.mark.parametrize("opt", options.RUN_OPTIONS, ids=lambda o: o[0][-1])
def test_every_run_option_is_documented(opt):
    """Each option of landwrap.options.RUN_OPTIONS has a tag in OPTIONS that
    lists all its spellings, in order, followed by its argument."""
    decls, _, kind, _, metavar, _ = opt
    tag = ", ".join(decls)
    if kind in (options.VALUE, options.MULTI):
        want = re.compile("^" + re.escape(f"{tag} {metavar}") + r"\s*$")
    else:
        want = re.compile("^" + re.escape(tag) + r"(\s|$)")
    found = [t for t in tags(sections(MAN1)["OPTIONS"]) if want.match(t)]
    assert found, f"no tag {tag!r} in the OPTIONS section of landwrap.1"


def test_options_section_documents_only_real_options():
    known = {d for o in options.RUN_OPTIONS for d in o[0]}
    documented = set()
    for t in tags(sections(MAN1)["OPTIONS"]):
        m = re.match(r"(-[-\w]+(?:, -[-\w]+)*)", t)
        if m:
            documented.update(m.group(1).split(", "))
    assert documented, "no option tags found"
    assert documented - known == set(), "documented but not in landwrap.options"


def _commands(cmd, path=()):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            if not getattr(sub, "hidden", False):
                yield from _commands(sub, path + (name,))


def _command_entries() -> dict:
    """{'landwrap profile show': entry text} from the COMMANDS section."""
    entries: dict = {}
    current = None
    for line in sections(MAN1)["COMMANDS"].splitlines():
        if line.startswith(TAG + "landwrap"):
            current = line[len(TAG):]
            entries[current] = []
        if current is not None:
            entries[current].append(line)
    return {k: squash("\n".join(v)) for k, v in entries.items()}


ALL_COMMANDS = [p for p, _ in _commands(cli.cli) if p]


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_command_and_its_options_are_documented(path):
    cmd = cli.cli
    for name in path:
        cmd = cmd.commands[name]
    head = "landwrap " + " ".join(path)
    entries = {tag: text for tag, text in _command_entries().items()
               if tag == head or tag.startswith(head + " ")}
    assert entries, f"no entry for {head!r} in the COMMANDS section of landwrap.1"
    if path == ("run",):
        text = squash(sections(MAN1)["OPTIONS"])
    else:
        text = " ".join(entries.values())
    for param in cmd.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        for opt in param.opts + param.secondary_opts:
            assert re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", text), \
                f"{head} {opt} is not documented"


def test_top_level_options_are_documented():
    text = squash(sections(MAN1)["COMMANDS"])
    opts = list(cli.CONTEXT["help_option_names"])
    for param in cli.cli.params:
        if isinstance(param, click.Option):
            opts += param.opts + param.secondary_opts
    for opt in opts:
        assert re.search(r"landwrap " + re.escape(opt) + r"(?![\w-])", text), opt


def test_synopsis_lists_every_command():
    synopsis = squash(sections(MAN1)["SYNOPSIS"])
    for path in ALL_COMMANDS:
        cmd = cli.cli
        for name in path:
            cmd = cmd.commands[name]
        if isinstance(cmd, click.Group):
            continue
        assert "landwrap " + " ".join(path) + " " in synopsis + " ", path


def test_exit_status_section():
    from landwrap.engine import errors

    text = squash(sections(MAN1)["EXIT STATUS"])
    for code in (errors.EXIT_ERROR, errors.EXIT_CANNOT_EXEC, errors.EXIT_NOT_FOUND):
        assert re.search(rf"(^| ){code} ", text), code
    assert "128 + N" in text


def test_abi_table_matches_compat():
    """One row per ABI landwrap knows, with the Linux release and every
    right, scope and flag that ABI introduced."""
    text = render(MAN1)
    tables = (compat.FS_RIGHTS, compat.NET_RIGHTS, compat.SCOPES, compat.RESTRICT_FLAGS)
    for abi in range(1, compat.LATEST_ABI + 1):
        rows = re.findall(rf"^\s+{abi}\s+{re.escape(compat.KERNEL[abi])}\s+(.*)$", text, re.M)
        assert len(rows) == 1, f"ABI {abi}: {rows}"
        for table in tables:
            for name, (_, since) in table.items():
                if since == abi:
                    assert re.search(rf"(?<!\w){name}(?!\w)", rows[0]), (abi, name)
    assert not re.search(rf"^\s+{compat.LATEST_ABI + 1}\s+\d+\.\d+\s", text, re.M)


def _env_vars_in_code() -> set:
    found = set()
    paths = [os.path.join(ROOT, "tests", "conftest.py")]
    for d, _, files in os.walk(os.path.join(ROOT, "landwrap")):
        paths += [os.path.join(d, f) for f in files if f.endswith(".py")]
    for p in paths:
        with open(p, encoding="utf-8") as f:
            found.update(re.findall(r"(?<![\w])(LANDWRAP_[A-Z_]+)", f.read()))
    return found


def test_environment_variables_are_documented():
    documented = {t.split()[0] for t in tags(sections(MAN1)["ENVIRONMENT"])}
    needed = _env_vars_in_code() | {"LANDWRAP_PROFILE_PATH", "LANDWRAP_CACHE_DIR",
                                    "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "_LANDWRAP_COMPLETE"}
    assert needed - documented == set()


def test_files_section_gives_the_lookup_order():
    text = squash(sections(MAN1)["FILES"])
    order = ["$LANDWRAP_PROFILE_PATH", "$XDG_CONFIG_HOME/landwrap/profiles",
             "/etc/landwrap/profiles", "shipped with landwrap"]
    pos = [text.find(s) for s in order]
    assert -1 not in pos and pos == sorted(pos), pos
    assert "NAME.local.toml" in text


# landwrap-profile(5) -------------------------------------------------------

TABLE_KEYS = {
    "[filesystem]": validate.FS_KEYS,
    "[[filesystem.rule]]": validate.RULE_KEYS,
    "[network]": validate.NET_KEYS,
    "[scope]": validate.SCOPE_KEYS,
    "[env]": validate.ENV_KEYS,
}


def _key_entries(section: str) -> dict:
    """{key: the text of its .TP entry} in a section of landwrap-profile.5."""
    out: dict = {}
    current = None
    for line in sections(MAN5)[section].splitlines():
        if len(line) > len(TAG) and line.startswith(TAG) and not line[len(TAG)].isspace():
            current = None
            # a tag alone on its line, or one whose body starts at the
            # .TP indentation (7 more columns) on the same line
            m = re.match(r"([a-z_]+)(\s*$| +(?=\S))", line[len(TAG):])
            if m and (m.end() == len(line) - len(TAG) or m.end() == 7):
                current = m.group(1)
                out[current] = [line[len(TAG) + len(current):]]
                continue
        if current is not None:
            out[current].append(line)
    return {k: squash("\n".join(v)).strip() for k, v in out.items()}


def test_profile_lookup_comes_first():
    have = list(sections(MAN5))
    assert have[:4] == ["NAME", "SYNOPSIS", "DESCRIPTION", "PROFILE LOOKUP"]
    text = squash(sections(MAN5)["PROFILE LOOKUP"])
    pos = [text.find(s) for s in ("$LANDWRAP_PROFILE_PATH", "$XDG_CONFIG_HOME/landwrap/profiles",
                                  "/etc/landwrap/profiles", "shipped with landwrap",
                                  "NAME.local.toml")]
    assert -1 not in pos and pos == sorted(pos), pos


def test_every_top_level_key_is_documented():
    entries = _key_entries("TOP-LEVEL KEYS")
    have = set(sections(MAN5))
    for key in validate.TOP_KEYS:
        assert key in entries or f"[{key}]" in have, key
    for key in entries:
        assert key in validate.TOP_KEYS, f"documented but not accepted: {key}"


@pytest.mark.parametrize("table", sorted(TABLE_KEYS))
def test_every_table_key_is_documented(table):
    """Each key is a .TP entry of its table's section that opens with
    "Takes", and the section documents no key the loader rejects."""
    entries = _key_entries(table)
    assert set(entries) == set(TABLE_KEYS[table])
    for key, text in entries.items():
        assert text.startswith("Takes "), (table, key, text[:60])


def test_vars_table_is_documented():
    text = squash(sections(MAN5)["[vars]"])
    assert text.strip().startswith("Takes ")
    paths = squash(sections(MAN5)["PATHS AND VARIABLES"])
    for name in variables.BUILTIN_VARS:
        assert "${%s}" % name in paths, name
    assert "$$" in paths


def test_rights_table_matches_compat():
    text = render(MAN5)
    for name, (_, abi) in compat.FS_RIGHTS.items():
        assert re.search(rf"^\s+{name}\s+{abi}\s+{re.escape(compat.KERNEL[abi])}\s+\S",
                         text, re.M), name
    for name in compat.ACCESS_SETS:
        assert name in _key_entries("[filesystem]")


def _examples(page: str) -> list:
    """(section, text) of every .EX/.EE block, with roff escapes undone."""
    out = []
    section, block = None, None
    with open(page, encoding="ascii") as f:
        for line in f.read().splitlines():
            if line.startswith(".SH "):
                section = line[4:].strip().strip('"').replace("\\-", "-")
            elif line == ".EX":
                block = []
            elif line == ".EE":
                text = "\n".join(block)
                for esc, ch in (("\\-", "-"), ("\\(dq", '"'), ("\\(ti", "~"),
                                ("\\(aq", "'"), ("\\e", "\\")):
                    text = text.replace(esc, ch)
                out.append((section, text))
                block = None
            elif block is not None:
                block.append(line)
    return out


# The section whose table a one-line example belongs to.
WRAP = {"[filesystem]": "filesystem", "[network]": "network", "[scope]": "scope",
        "[env]": "env", "PATHS AND VARIABLES": "filesystem"}


def _profile_examples():
    for i, (section, text) in enumerate(_examples(MAN5)):
        if text.lstrip().startswith("$") or section == "LANDLOCKCONFIG FILES":
            continue  # commands; landlockconfig (tested below)
        if section == "[[filesystem.rule]]" and "[[filesystem.rule]]" not in text:
            continue  # one key of a rule, not a rule
        if section in WRAP:
            text = f"[{WRAP[section]}]\n{text}"
        yield pytest.param(text, id=f"{i}-{section}")


@pytest.mark.parametrize("text", list(_profile_examples()))
def test_profile_examples_are_valid(text, tmp_path):
    doc = tomllib.loads(text)
    path = tmp_path / "example.toml"
    path.write_text(text)
    extends = doc.get("extends", [])
    for name in [extends] if isinstance(extends, str) else extends:
        if "/" not in name:
            assert lookup.find(name) is not None or name == "network-client", name
    validate.apply_document(validate.Profile(), doc, str(path))


def test_landlockconfig_example_is_valid(tmp_path):
    from landwrap.profiles import landlockconfig

    found = [text for section, text in _examples(MAN5) if section == "LANDLOCKCONFIG FILES"]
    assert found
    for text in found:
        doc = tomllib.loads(text)
        assert profile.is_landlockconfig(doc)
        path = tmp_path / "example.toml"
        path.write_text(text)
        prof = validate.Profile()
        landlockconfig.apply(prof, doc, str(path))
        assert any(r.path == "/usr" for r in prof.ruleset.paths)
