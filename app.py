"""WSGI entry point in a checkout: ``gunicorn -c gunicorn.conf.py app:app`` (the installed
``pledge-ws`` command serves ``pledge_ws.wsgi:app`` the same way). ``flask run`` does not serve
``/ws``: see pledge_ws/wsgi.py."""

from pledge_ws.wsgi import app  # noqa: F401
