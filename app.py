"""WSGI entry point: ``gunicorn -c gunicorn.conf.py app:app``."""

from pledge_ws.factory import create_app

app = create_app()
