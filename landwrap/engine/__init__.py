"""engine: the lowest layer.  The binding to the C extension, all ABI
knowledge (compat), the request model and plan (ruleset), enforcement on
threads and the spawn path.  Imports nothing from the layers above
(profiles, diagnose, cli, api)."""
