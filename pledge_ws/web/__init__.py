"""The HTTP surface: the Flask app factory, the routes as blueprints, and the ``/ws`` upgrade
seam (the one place that knows flask-sock's and gunicorn's conventions).

Rule: routes read the worker's state through :class:`pledge_ws.worker.runtime.Runtime`; nothing
here imports ``exchange/`` or ``cluster/`` directly.
"""
