"""diagnose: audit records and sessions, suggestions from denials, `why`
and `learn`.  Imports only from profiles and engine."""
