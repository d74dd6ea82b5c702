"""``acctctl``: the operations staff's tool for the five services.

It talks to each service's database and Kafka through the settings ``make run`` uses
(``<SERVICE>_DATABASE_URL``, ``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_NAMESPACE``...), reading
every service through its own ``bootstrap()``: the same registry, projections and
subscriptions as the running process, none of it started (no relay, consumer or runner).

Exit codes (stable, for scripts): 0 ok, 1 error, 2 usage, 3 not found, 4 check failed.
"""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CHECK_FAILED = 4


class OpsError(Exception):
    """A failure the tool reports in one line (exit 1)."""

    exit_code = EXIT_ERROR


class NotFound(OpsError):
    exit_code = EXIT_NOT_FOUND


class CheckFailed(OpsError):
    exit_code = EXIT_CHECK_FAILED


class Refused(OpsError):
    """The caller may not do this (a reveal without the operator role): a usage error."""

    exit_code = EXIT_USAGE
