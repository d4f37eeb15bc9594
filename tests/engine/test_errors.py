"""engine/errors.py: errors carry the fields their wording is made from, so
that nobody has to parse or rewrite a message."""

from landwrap.engine.errors import DenialLoggingUnsupported, EnforcementError


def test_enforcement_error_words_its_outcome_from_the_restricted_field():
    before = EnforcementError(cause="cannot restrict every thread: x", hint="h")
    assert before.message == "cannot restrict every thread: x; nothing was restricted"
    after = EnforcementError(cause=before.cause, hint="h", restricted=True)
    assert after.message == "cannot restrict every thread: x; only the calling thread is restricted"
    assert after.cause == before.cause and after.restricted and not before.restricted
    plain = EnforcementError("a sentence of its own")
    assert plain.message == "a sentence of its own" and plain.cause is None


def test_denial_logging_unsupported_says_capped_from_the_abi_fields():
    missing = [("flags", 4, "restrict flag log_new_exec_on (ABI 7)")]
    capped = DenialLoggingUnsupported(6, 7, missing, 7, "ABI 7, Linux 6.15")
    assert capped.message == ("--log-denials needs denial logging (ABI 7, Linux 6.15); "
                              "Landlock ABI 6 (capped with --abi 6) lacks it")
    assert "--best-effort" in capped.hint
    kernel = DenialLoggingUnsupported(6, 6, missing, 7, "ABI 7, Linux 6.15")
    assert "capped" not in kernel.message and kernel.needs == "ABI 7, Linux 6.15"
    assert (capped.abi, capped.kernel_abi, capped.needed_abi) == (6, 7, 7)
