"""WSGI entry point for gunicorn: `gunicorn yibao.wsgi:app`."""

from yibao import create_app

app = create_app()
