"""cli: the command-line tool.  click, the fast `run` path, every command
and all output; the only layer that knows option names and exit codes and
writes to the terminal.  Nothing below imports it.  Kept empty so that
`landwrap run` does not import click."""
