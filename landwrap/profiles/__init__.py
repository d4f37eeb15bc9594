"""profiles: finding, parsing, validating and composing TOML profiles, and
the landlockconfig format.  Imports only from engine; never enforces.
The shipped profile files are the data package ``landwrap.profiles.shipped``
(the top-level ``profiles/`` directory of the source tree)."""
