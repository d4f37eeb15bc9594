"""Packaging: what the wheel and the sdist ship, and what they promise.

The static completion files are what `landwrap completion SHELL` prints
now; the extension binds only to glibc symbols as old as manylinux2014's
(glibc 2.17); the version is written once; and `python -m landwrap` in a
source tree without a built extension says so in one line (exit 125).
"""

import os
import re
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import ROOT, need_program

import landwrap
from landwrap.engine import _binding
from landwrap.profiles import lookup, profile
from landwrap.cli.main import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The completion files shipped (pyproject.toml's data-files) per shell.
COMPLETIONS = {"bash": "landwrap", "zsh": "_landwrap", "fish": "landwrap.fish"}

#: manylinux2014's glibc.
MAX_GLIBC = (2, 17)


def pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


#: The shipped files come from click's templates as of click 8.1.7 (8.1.4
#: changed zsh's, 8.1.7 fish's); an older click prints older scripts.
CLICK_TEMPLATES = (8, 1, 7)


def click_version():
    from importlib.metadata import version

    return tuple(int(x) for x in re.findall(r"\d+", version("click"))[:3])


@pytest.mark.parametrize("shell", sorted(COMPLETIONS))
def test_shipped_completion_files_are_what_the_generator_prints(shell):
    name = COMPLETIONS[shell]
    if click_version() < CLICK_TEMPLATES:
        pytest.skip(f"click {'.'.join(map(str, click_version()))} prints older completion "
                    f"scripts than the click 8.1.7+ that generated the shipped ones")
    r = CliRunner().invoke(cli, ["completion", shell], prog_name="landwrap")
    assert r.exit_code == 0, r.output
    with open(os.path.join(ROOT, "completions", name), encoding="utf-8") as f:
        shipped = f.read()
    assert shipped == r.output, (
        f"completions/{name} is stale: regenerate it with "
        f"`python -m landwrap completion {shell} > completions/{name}`")


def test_completion_files_are_installed_where_shells_look():
    data = pyproject()["tool"]["setuptools"]["data-files"]
    assert data["share/bash-completion/completions"] == ["completions/landwrap"]
    assert data["share/zsh/site-functions"] == ["completions/_landwrap"]
    assert data["share/fish/vendor_completions.d"] == ["completions/landwrap.fish"]
    # zsh autoloads a file on fpath by its first line
    with open(os.path.join(ROOT, "completions", "_landwrap"), encoding="utf-8") as f:
        assert f.readline() == "#compdef landwrap\n"


def test_every_subpackage_and_the_shipped_profiles_are_packaged():
    """pyproject lists packages by name: a new layer left out of the list
    would be missing from the wheel.  The shipped TOML files are the data
    package landwrap.profiles.shipped, built from the top-level profiles/."""
    tool = pyproject()["tool"]["setuptools"]
    src = os.path.join(ROOT, "landwrap")
    rels = [os.path.relpath(d, src) for d, _, files in os.walk(src) if "__init__.py" in files]
    code = {"landwrap" if r == "." else "landwrap." + r.replace(os.sep, ".") for r in rels}
    assert set(tool["packages"]) == code | {"landwrap.profiles.shipped"}
    assert tool["package-dir"] == {"landwrap.profiles.shipped": "profiles"}
    assert tool["package-data"]["landwrap.profiles.shipped"] == ["*.toml"]
    # the landwrap under test finds every one of them, installed or in a checkout
    pkg = os.path.dirname(os.path.abspath(landwrap.__file__))
    assert lookup.PACKAGE_PROFILES in (os.path.join(pkg, "profiles", "shipped"),
                                        os.path.join(ROOT, "profiles"))
    shipped = {f[:-5] for f in os.listdir(os.path.join(ROOT, "profiles")) if f.endswith(".toml")}
    assert shipped and shipped == {n for n, *_ in profile.list_profiles([lookup.PACKAGE_PROFILES])}


def test_version_is_written_once():
    project = pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    attr = pyproject()["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "landwrap.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", landwrap.__version__)
    try:
        from importlib.metadata import PackageNotFoundError, version
        assert version("landwrap") == landwrap.__version__
    except PackageNotFoundError:  # pragma: no cover - run from an uninstalled tree
        pass


def test_extension_needs_nothing_newer_than_manylinux2014_glibc():
    objdump = need_program("objdump")
    so = os.path.dirname(os.path.dirname(_binding.__spec__.origin))  # landwrap/, beside engine/
    ext = [os.path.join(so, f) for f in os.listdir(so) if f.startswith("_lwcffi") and f.endswith(".so")]
    assert len(ext) == 1, ext
    assert ext[0].endswith(".abi3.so")  # the stable ABI: one wheel for every CPython
    out = subprocess.run([objdump, "-T", ext[0]], capture_output=True, text=True,
                         check=True).stdout
    too_new = sorted({(m.group(2), m.group(1)) for m in re.finditer(
        r"\(GLIBC_(\d+\.\d+(?:\.\d+)?)\)\s+(\w+)", out)
        if tuple(map(int, m.group(1).split(".")[:2])) > MAX_GLIBC})
    assert not too_new, f"symbols newer than glibc 2.17 (see csrc/lwsys.h): {too_new}"


def test_vfork_child_is_kept_out_of_line():
    """csrc/landwrap.c marks the vfork child and the function that calls
    vfork (vfork_child) noinline (as CPython's _posixsubprocess.c does):
    inlined, the child's frame could reuse stack the suspended parent still
    needs.  Both are functions of their own in the built extension."""
    nm = need_program("nm")
    so = os.path.dirname(os.path.dirname(_binding.__spec__.origin))  # landwrap/, beside engine/
    ext = [os.path.join(so, f) for f in os.listdir(so) if f.startswith("_lwcffi") and f.endswith(".so")]
    out = subprocess.run([nm, ext[0]], capture_output=True, text=True).stdout
    if not out.strip():
        pytest.skip(f"{ext[0]} is stripped: no symbol table to look in")
    symbols = {line.split()[-1]: line.split()[-2] for line in out.splitlines() if len(line.split()) == 3}
    assert symbols.get("child") in ("t", "T"), "the vfork child was inlined into lw_spawn"
    assert symbols.get("vfork_child") in ("t", "T")
    assert symbols.get("lw_spawn") in ("t", "T")


def test_main_in_a_source_tree_without_the_extension(tmp_path):
    # A copy of the source tree's package, without the built extension.
    tree = tmp_path / "checkout"
    shutil.copytree(os.path.dirname(landwrap.__file__), tree / "landwrap",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__", "shipped"))
    shutil.copytree(lookup.PACKAGE_PROFILES, tree / "profiles")
    (tree / "setup.py").write_text("")
    # -S: no site-packages, so no editable install's finder either; the
    # dependencies come from PYTHONPATH, after the working directory.
    import click
    deps = {os.path.dirname(os.path.dirname(m.__file__)) for m in (click, tomllib)}
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "LANDWRAP_CACHE_DIR": "", "PYTHONPATH": os.pathsep.join(sorted(deps))}
    for args in (["run", "--", "true"], ["status"]):
        r = subprocess.run([sys.executable, "-S", "-m", "landwrap", *args], cwd=tree, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 125, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        assert "pip install -e ." in r.stderr and str(tree / "landwrap") in r.stderr
        assert r.stdout == ""
