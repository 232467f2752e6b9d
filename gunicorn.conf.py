"""gunicorn settings for videobatch (``gunicorn wsgi:app -c gunicorn.conf.py``).

Command-line flags and GUNICORN_CMD_ARGS override anything here; the environment variables
read below are the knobs the container image documents (see .env.example).
"""

import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

from videobatch.config import Config


def _setting(name, default):
    # An empty value (as an env file leaves it) means the default, as in videobatch.config.
    return os.environ.get(name) or default


bind = _setting("BIND", "0.0.0.0:8000")

# The API waits on PostgreSQL and Redis far more than it computes: a create is a handful of short
# queries. gthread serves several requests per process while others wait on I/O, for far less
# memory than one process per request; a few processes still use every core and isolate crashes.
worker_class = "gthread"
workers = int(_setting("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
# A thread holds at most one database connection, so threads stay within the pool
# (DB_POOL_SIZE + DB_MAX_OVERFLOW, 20 by default) and a burst never queues on it.
threads = int(_setting("GUNICORN_THREADS", 8))

# Every dependency call has its own shorter bound (statement 15 s, pool 5 s, Redis 0.5 s), so a
# worker silent for this long is stuck, not busy, and is replaced.
timeout = int(_setting("GUNICORN_TIMEOUT", 30))
# On SIGTERM (a deploy or a scale-in) requests in flight get this long to finish; creates take
# well under a second. docker-compose.yml gives the container 35 s to stop, so gunicorn finishes
# the drain before Docker resorts to SIGKILL.
graceful_timeout = int(_setting("GUNICORN_GRACEFUL_TIMEOUT", 30))
# Keep idle client connections open longer than a load balancer's idle timeout (60 s on most):
# the balancer then closes first and never sends a request down a connection we just closed.
keepalive = int(_setting("GUNICORN_KEEPALIVE", 65))
# Recycle each process after about this many requests, staggered by the jitter so they do not all
# restart at once: bounds the cost of any slow leak in a library.
max_requests = int(_setting("GUNICORN_MAX_REQUESTS", 10_000))
max_requests_jitter = int(_setting("GUNICORN_MAX_REQUESTS_JITTER", 1_000))
# Request size limits before the app sees anything (gunicorn's defaults, stated on purpose):
# the request line, the number of headers and each header's size. Bodies are capped by the app
# (MAX_CONTENT_LENGTH, 413).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# Containers are managed with signals by their orchestrator; a control socket at a per-user path
# would also be shared by every gunicorn on the host.
control_socket_disable = True
# The heartbeat file lives in memory where it can: a slow overlay disk must not look like a hang.
if Path("/dev/shm").is_dir():
    worker_tmp_dir = "/dev/shm"

# Logs: JSON lines, the error log on stderr. The app already logs one line per request with
# more than gunicorn knows (route, account, correlation id), so gunicorn's own access log, a
# second line per request and a tenth of a create's CPU, is off unless GUNICORN_ACCESS_LOG=1.
# The app's own logs (videobatch.logs) go to stderr through the root logger.
accesslog = "-" if _setting("GUNICORN_ACCESS_LOG", "0") in ("1", "true", "yes") else None
errorlog = "-"
access_log_format = "%(m)s %(U)s %(s)s"  # the message; the fields come from gunicorn's atoms
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
    },
    "handlers": {
        "error": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "access",
            "stream": "ext://sys.stdout",
        },
    },
    "formatters": {
        "json": {"()": "videobatch.logs.RedactingJsonFormatter"},
        "access": {"()": "videobatch.logs.GunicornAccessFormatter"},
    },
}

# Prometheus: each worker writes its counters to files in this directory and /metrics sums them,
# so a scrape answered by any one worker covers all of them. It must be in the environment
# before a worker imports prometheus-client, hence here in the master.
metrics_dir_is_ours = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
metrics_dir = Path(
    _setting(
        "PROMETHEUS_MULTIPROC_DIR",
        str(Path(tempfile.gettempdir()) / f"videobatch-metrics-{os.getpid()}"),
    )
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
metrics_dir.mkdir(parents=True, exist_ok=True)  # already here if the app loads in the master


def on_starting(server):
    # Refuse to start on a configuration the app would refuse (production without its secrets).
    # ConfigError is a RuntimeError, which gunicorn prints as one "Error: ..." line, exiting 1.
    Config.from_env()
    # Files from a previous run would be added to this run's counters.
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    # Imported here, not above: prometheus-client picks its multi-process mode at import time,
    # and the master must not have imported it before PROMETHEUS_MULTIPROC_DIR was set.
    from prometheus_client import multiprocess

    # Counters of a finished worker keep counting in the sums; its live gauges must not.
    multiprocess.mark_process_dead(worker.pid, str(metrics_dir))


def on_exit(server):
    # A temporary directory we made goes with us; an operator's directory is left in place.
    if metrics_dir_is_ours and metrics_dir.exists():
        shutil.rmtree(metrics_dir)
