"""Browser tests: a real server on 127.0.0.1 with a fresh SQLite database, driven by Chromium.

Run with `pytest tests/browser --screenshots DIR` to keep screenshots of the inbox and the
document page. With FUHE_REQUIRE_BROWSER=1 (CI) a missing Chromium fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEFINITIONS, PASSWORD, PEOPLE

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots",
        action="store",
        default=None,
        metavar="DIR",
        help="write screenshots of the inbox and document pages into DIR",
    )


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest) -> Path | None:
    folder = request.config.getoption("--screenshots")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        message = "Chromium is not installed (apt-get install chromium)"
        if os.environ.get("FUHE_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " and FUHE_REQUIRE_BROWSER=1")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def closed_before_sending(wsgi_app: Any) -> Any:
    """The response read whole and closed before the server writes it.

    Werkzeug's development server closes a response (a static file's handle included) only
    after it has drained the client's socket; when Chromium resets a connection it no longer
    needs (a favicon, a page it navigated away from), that drain raises first and the file is
    left to the garbage collector: a ResourceWarning in whichever test runs next. Pages here
    are small, so reading them whole costs nothing and leaves nothing open.
    """

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        response = wsgi_app(environ, start_response)
        try:
            return [b"".join(response)]
        finally:
            if hasattr(response, "close"):
                response.close()

    return app


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """`app` served by werkzeug in a thread on 127.0.0.1 (any free port): yields its URL."""
    from werkzeug.serving import make_server

    from webui.extensions import db

    app.wsgi_app = closed_before_sending(app.wsgi_app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    """The application served by a real WSGI server in a thread, on a fresh SQLite file."""
    from webui import create_app
    from webui.extensions import db
    from workflow.accounts import create_user
    from workflow.db import Base
    from workflow.services import publish_files

    url = f"sqlite:///{tmp_path / 'browser.sqlite3'}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        Base.metadata.create_all(db.engine)
        publish_files(db.session, DEFINITIONS)
        for name, roles in PEOPLE.items():
            create_user(db.session, name, PASSWORD, roles)
        db.session.remove()
    with serving(app) as url:
        yield url
