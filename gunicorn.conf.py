"""gunicorn settings for videobatch (``gunicorn wsgi:app -c gunicorn.conf.py``).

Every value can be overridden with the usual GUNICORN_CMD_ARGS or command-line flags.
"""

import multiprocessing
import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
# The API waits on PostgreSQL and Redis far more than it computes: a few processes with several
# threads each keep the cores busy without one process per connection.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
worker_class = "gthread"
timeout = 30
graceful_timeout = 30
keepalive = 5
