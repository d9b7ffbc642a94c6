"""The WSGI application gunicorn loads (``pledge_ws.wsgi:app``), in each worker after the fork.

It serves ``/ws`` only under gunicorn's gevent worker, whose hooks (pledge_ws/gunicorn_conf.py)
start the runtime: run ``pledge-ws`` (or ``gunicorn -c gunicorn.conf.py app:app`` in a
checkout). ``flask --app pledge_ws.wsgi run`` serves the HTTP routes without prices and
answers ``/ws`` with a 500 that says so.
"""

from pledge_ws.web.factory import create_app

app = create_app()
