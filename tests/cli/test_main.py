"""cli/main.py, the click commands, driven in-process with CliRunner where
no real process is needed (test_launcher.py runs `landwrap` as a process,
for exit codes and signals that need one)."""

import json

import pytest
from click.testing import CliRunner

from landwrap.cli.main import cli


def invoke(*args, env=None):
    return CliRunner().invoke(cli, list(map(str, args)), prog_name="landwrap", env=env)


@pytest.mark.parametrize("args", [["run"], ["run", "--abi", "x", "--", "true"],
                                  ["run", "--no-such-option", "--", "true"],
                                  ["run", "--keep-fd", "three", "--", "true"]])
def test_run_usage_errors_are_125_not_click_s_2(args):
    """`run` keeps its own exit codes: a usage error must not look like the
    target's status 2.  click refuses these before anything would start."""
    r = invoke(*args)
    assert r.exit_code == 125, r.output
    assert "Error:" in r.output and "Traceback" not in r.output


def test_run_help_names_every_exit_status():
    r = invoke("run", "--help")
    assert r.exit_code == 0
    assert "--connect-tcp" in r.output and "Exit status" in r.output
    for code in ("125", "126", "127", "128+N"):
        assert code in r.output


def test_status_json(landlock):
    r = invoke("status", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["kernel_abi"] >= 1
    names = {f["name"]: f for f in d["features"]}
    assert names["net.tcp"]["abi"] == 4 and names["net.tcp"]["kernel"] == "6.7"
    assert names["filesystem"]["supported"]
    assert d["default"]["status"] in ("fully", "partially")


def test_profile_check_names_file_and_line(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[filesystem]\nro = ["/usr"]\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('[filesystem]\nro = ["/usr"]\n\n[network]\nconnect_tcp = [70000]\n')
    env = {"LANDWRAP_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    r = invoke("profile", "check", good, env=env)
    assert (r.exit_code, r.output) == (0, f"{good}: ok\n")
    r = invoke("profile", "check", good, bad, env=env)
    assert r.exit_code == 1
    assert r.output.splitlines()[1] == \
        f"{bad}:5: network.connect_tcp: bad port 70000: ports are 0-65535"


def test_run_looks_the_program_up_once(monkeypatch, capsys):
    """The profile is chosen for the file that runs: one PATH lookup feeds
    both (issue 13: the command was looked up three times)."""
    from landwrap.cli import options, run
    from landwrap.engine import spawn

    calls = []
    real = spawn.find_program

    def counting(name, path_env):
        calls.append(name)
        return real(name, path_env)

    monkeypatch.setattr(spawn, "find_program", counting)
    opts = options.parse_run(["--dry-run", "--", "cat", "/etc/hostname"])
    assert run.main(opts) == 0
    assert calls == ["cat"]
    assert "Command: " in capsys.readouterr().out
