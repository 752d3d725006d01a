"""gunicorn settings read by `gunicorn wsgi:app` from the project directory (see docs/deploy.md).

The request limits sit above the application's own (config.py: MAX_URL_LENGTH 4096,
MAX_HEADER_BYTES 16 KiB), so an over-long URL or header block reaches the app and is answered
in the API's JSON error shape (414, 431); only requests beyond these are cut off by gunicorn.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
limit_request_line = 8190  # gunicorn's maximum; the app answers 414 above 4096
limit_request_fields = 100
limit_request_field_size = 8190
timeout = 30


def post_worker_init(worker: object) -> None:
    """Move what the app built at start-up out of the garbage collector's view.

    A worker starts with some hundred thousand long-lived objects (modules, the ORM's mappers,
    compiled flows and templates). Every full collection walked all of them again, and a request
    allocates enough to trigger collections often (docs/performance.md has the figures). The
    objects stay alive; the collector only stops re-examining them.
    """
    import gc

    gc.collect()
    gc.freeze()
