"""The public API's types catch mistakes: mypy --strict on the whole
package (``mypy --strict -p landwrap``) passes, and a user script with misspelled arguments fails to
type-check, naming each one (with **kwargs: Any it said "Success")."""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("mypy", reason="mypy is in the test extras: pip install -e '.[test]'")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mypy(tmp_path, *args):
    """mypy --strict on *args*; errors are reported for those files only."""
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-color-output",
                           "--follow-imports=silent",
                           "--cache-dir", str(tmp_path / "mypy-cache"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_the_package_passes_mypy_strict(tmp_path):
    r = mypy(tmp_path, "-p", "landwrap")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success: no issues found" in r.stdout, r.stdout


def test_misspelled_arguments_are_reported(tmp_path):
    script = tmp_path / "user.py"
    script.write_text(textwrap.dedent("""
        import landwrap
        import landwrap.asyncio

        landwrap.run(["x"], capture_ouput=True)
        landwrap.run(["x"], rox_="/usr")
        landwrap.run(["x"], conect_tcp=443)
        landwrap.restrict(rox_="/usr")
        landwrap.Popen(["x"], conect_tcp=443)
        landwrap.check_output(["x"], capture_ouput=True)
        landwrap.run(["x"], compat="loose")
        landwrap.restrict(compat="best_effort")

        async def main() -> None:
            await landwrap.asyncio.create_subprocess_exec("x", rox_="/usr")
    """))
    r = mypy(tmp_path, str(script))
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    for line, name in ((5, "capture_ouput"), (6, "rox_"), (7, "conect_tcp"), (8, "rox_"),
                       (9, "conect_tcp"), (10, "capture_ouput"), (15, "rox_")):
        # newer mypy names the keyword; older ones (Python 3.9's) say only
        # that no overload matches -- an error on that line either way
        assert any(f"user.py:{line}: error" in l and (name in l or "No overload variant" in l)
                   for l in out.splitlines()), (line, name, out)
    for line in (11, 12):  # compat is a Literal
        assert f"user.py:{line}:" in out, (line, out)


def test_types_follow_text_and_name_fields(tmp_path):
    script = tmp_path / "ok.py"
    script.write_text(textwrap.dedent("""
        import landwrap

        r1 = landwrap.run(["x"], text=True)
        r2 = landwrap.run(["x"])
        p1 = landwrap.Popen(["x"], text=True)
        p2 = landwrap.Popen(["x"], ro="/tmp", die_with_parent=True)
        st = landwrap.status()
        enf = landwrap.restrict(ro="/tmp", multiprocessing=True)
        reveal_type(r1)
        reveal_type(r2)
        reveal_type(p1)
        reveal_type(p2)
        reveal_type(st["kernel_abi"])
        reveal_type(enf.status)
        reveal_type(landwrap.check_output(["x"], text=True))
        reveal_type(st["security"][0]["covered"])
        reveal_type(st["lsm"])
    """))
    r = mypy(tmp_path, str(script))
    notes = [l.split("note: Revealed type is ", 1)[1] for l in r.stdout.splitlines()
             if "Revealed type" in l]
    notes = [_pep604(n.replace("builtins.", "")) for n in notes]  # older mypy spells it out
    assert notes == ['"subprocess.CompletedProcess[str]"',
                     '"subprocess.CompletedProcess[bytes]"',
                     '"landwrap.api.Popen[str]"',
                     '"landwrap.api.Popen[bytes]"',
                     '"int | None"',
                     """"Literal['fully'] | Literal['partially'] | Literal['not']\"""",
                     '"str"', '"bool"', '"list[str] | None"'], r.stdout
    assert "error" not in r.stdout, r.stdout


def _pep604(revealed: str) -> str:
    """``"Union[A, B]"`` as newer mypy prints it, ``"A | B"``."""
    body = revealed.strip('"')
    if not (body.startswith("Union[") and body.endswith("]")):
        return revealed
    parts, depth, cur = [], 0, ""
    for ch in body[6:-1]:
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += ch == "["
        depth -= ch == "]"
        cur += ch
    parts.append(cur.strip())
    return '"' + " | ".join(parts) + '"'
