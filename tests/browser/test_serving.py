"""The browser tests' server leaves no file open when a client drops a connection mid-response
(as Chromium does with a favicon or a page it navigated away from): such a leak surfaced as a
ResourceWarning in whichever test ran next."""

from __future__ import annotations

import gc
import socket
import struct
import sys
import time
from typing import Any

import pytest

from tests.browser.conftest import serving


def test_a_connection_reset_mid_response_leaves_no_file_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from webui import create_app

    leaked: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", leaked.append)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        for _ in range(30):
            client = socket.create_connection(("127.0.0.1", port))
            client.sendall(b"GET /static/css/app.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            client.recv(10)  # the response has started
            # Close with a reset (linger 0), not a polite FIN: what a browser does to a
            # request it has stopped caring about.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
        time.sleep(0.3)  # the server threads finish with the dropped connections
    gc.collect()
    assert [str(u.exc_value) for u in leaked] == []
