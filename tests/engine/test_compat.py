"""compat.py: the ABI table and the downgrade logic (pure, no kernel)."""

import pytest

from landwrap.engine import compat


def test_abi_table_matches_the_published_history():
    expect = {  # right -> ABI, per the kernel's UAPI history
        "execute": 1, "make_sym": 1, "refer": 2, "truncate": 3, "ioctl_dev": 5,
        "resolve_unix": 9,
    }
    for name, abi in expect.items():
        assert compat.FS_RIGHTS[name][1] == abi
    assert compat.NET_RIGHTS["bind_tcp"][1] == compat.NET_RIGHTS["connect_tcp"][1] == 4
    assert compat.NET_RIGHTS["bind_udp"][1] == compat.NET_RIGHTS["connect_send_udp"][1] == 10
    assert {v[1] for v in compat.SCOPES.values()} == {6}
    assert compat.RESTRICT_FLAGS["log_new_exec_on"][1] == 7
    assert compat.RESTRICT_FLAGS["tsync"][1] == 8
    assert compat.KERNEL == {1: "5.13", 2: "5.19", 3: "6.2", 4: "6.7", 5: "6.10",
                             6: "6.12", 7: "6.15", 8: "7.0", 9: "7.1", 10: "7.2"}
    # bits are the kernel's
    assert compat.FS_RIGHTS["resolve_unix"][0] == 1 << 16
    assert compat.NET_RIGHTS["connect_send_udp"][0] == 1 << 3
    assert compat.RESTRICT_FLAGS["tsync"][0] == 8


@pytest.mark.parametrize("abi,fs_bits", [(1, 13), (2, 14), (3, 15), (4, 15), (5, 16),
                                         (8, 16), (9, 17), (10, 17)])
def test_fs_mask_grows_with_abi(abi, fs_bits):
    assert compat.mask(compat.FS_RIGHTS, abi) == (1 << fs_bits) - 1


def test_effective_abi_clamps_to_known_and_cap():
    assert compat.effective_abi(7) == 7
    assert compat.effective_abi(12) == compat.LATEST_ABI
    assert compat.effective_abi(7, 3) == 3
    assert compat.effective_abi(3, 7) == 3


def test_file_rights_exclude_directory_only_rights():
    for name in ("read_dir", "remove_dir", "remove_file", "make_reg", "refer"):
        assert not compat.FS_FILE & compat.FS_RIGHTS[name][0]
    for name in ("execute", "read_file", "write_file", "truncate", "ioctl_dev", "resolve_unix"):
        assert compat.FS_FILE & compat.FS_RIGHTS[name][0]


def test_access_sets():
    ro, rox, rw, rwx = (compat.access_bits(s) for s in ("ro", "rox", "rw", "rwx"))
    ex = compat.FS_RIGHTS["execute"][0]
    assert rox == ro | ex and rwx == rw | ex
    assert not rw & ex
    devices = compat.bits(compat.FS_RIGHTS, ("make_char", "make_block"))
    assert rwx == compat.FS_ALL & ~devices  # device nodes only by exact name


def test_downgrade_implicit_restrictions_are_dropped_not_missing():
    want = {"fs": compat.FS_ALL, "net": compat.NET_ALL, "scoped": compat.SCOPE_ALL}
    need = {"fs": compat.FS_ABI1}
    d = compat.downgrade(3, want, need, refer_allowed=False)
    assert not d.missing
    assert d.fs == compat.mask(compat.FS_RIGHTS, 3)
    assert d.net == 0 and d.scoped == 0
    text = " ".join(x[2] for x in d.dropped)
    assert "bind_tcp, connect_tcp (ABI 4, Linux 6.7)" in text
    assert "abstract_unix_socket, signal (ABI 6, Linux 6.12)" in text


def test_downgrade_explicit_tcp_is_missing_with_the_abi_that_has_it():
    want = {"fs": compat.FS_ALL, "net": compat.NET_ALL}
    need = {"fs": compat.FS_ABI1, "net": compat.NET_TCP}
    d = compat.downgrade(3, want, need, refer_allowed=False)
    assert [m[0] for m in d.missing] == ["net"]
    assert d.needed_abi == 4
    assert "connect_tcp" in d.missing[0][2]


def test_downgrade_refer_on_abi1_keeps_the_rest():
    want = {"fs": compat.FS_ALL}
    d = compat.downgrade(1, want, {"fs": compat.FS_ABI1}, refer_allowed=True)
    assert d.refer_lost
    assert d.fs == compat.FS_ABI1  # the whole ABI 1 filesystem sandbox is kept
    assert not d.missing


def test_downgrade_no_landlock_rights_at_all_is_missing():
    d = compat.downgrade(0, {"fs": compat.FS_ALL}, {"fs": compat.FS_ABI1}, False)
    assert d.missing and d.fs == 0


def test_features_listing():
    feats = {f[0]: f for f in compat.features(7)}
    assert feats["audit"][4] and not feats["tsync"][4]
    assert feats["net.udp"][2:4] == (10, "7.2")
    assert all(f[4] for f in compat.features(compat.LATEST_ABI))
