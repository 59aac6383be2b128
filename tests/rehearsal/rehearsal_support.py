"""What the rehearsal tests share (a module with a unique name, so test modules import it unambiguously)."""

# The release's programs that come from this machine (Debian packages) rather than the virtualenv.
TOOLS_USED = (
    "redis-server",
    "redis-cli",
    "psql",
    "pg_isready",
    "initdb",
    "postgres",
    "prometheus",
    "alertmanager",
)
