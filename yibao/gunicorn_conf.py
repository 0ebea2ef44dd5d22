"""gunicorn settings of the service: `gunicorn -c python:yibao.gunicorn_conf yibao.wsgi:app`.

What gunicorn refuses itself never reaches the application; these limits say where that line is,
and the worker class answers such refusals as problem+json like the application does (yibao/http_server.py).

- limit_request_line: the request line (`METHOD SP target SP HTTP/1.1`, without CRLF) may be at most
  4094 bytes; longer → 414 URI_TOO_LONG.
- limit_request_fields: at most 100 header fields; more → 431 REQUEST_HEADER_FIELDS_TOO_LARGE.
- limit_request_field_size: one header field (`Name: value`, without CRLF) at most 8190 bytes;
  longer → 431 REQUEST_HEADER_FIELDS_TOO_LARGE.
- a malformed request line, header or Content-Length (e.g. `-1`) → 400 BAD_REQUEST.

Workers are threaded (gthread, WEB_THREADS threads each, default 8): a page's long poll of the push
channel (GET /api/v1/events, bounded at 25 s) holds one thread, not a whole worker process.
"""

from yibao.config import server_settings
from yibao.http_server import LIMIT_REQUEST_FIELD_SIZE, LIMIT_REQUEST_FIELDS, LIMIT_REQUEST_LINE

worker_class = "yibao.http_server.ThreadedProblemWorker"
threads = server_settings().threads
limit_request_line = LIMIT_REQUEST_LINE
limit_request_fields = LIMIT_REQUEST_FIELDS
limit_request_field_size = LIMIT_REQUEST_FIELD_SIZE
# gunicorn's control socket (gunicornc) is not used, and its default path (~/.gunicorn/gunicorn.ctl) is
# shared by every server of the same user: a second server (a test, a benchmark) would take it over.
control_socket_disable = True
