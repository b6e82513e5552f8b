"""harness.toml + flags -> Plan: the file, the flags' help, every check (one clear error).
Never imports a socket."""
