"""gunicorn settings for a checkout: ``gunicorn -c gunicorn.conf.py app:app``.

The settings and hooks ship inside the package (pledge_ws/gunicorn_conf.py), so the installed
``pledge-ws`` command and this file configure gunicorn the same way.
"""

from pledge_ws.gunicorn_conf import *  # noqa: F403
