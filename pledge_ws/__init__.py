"""pledge-ws: live exchange prices pushed to browsers (README.md; the layout's rules are in each
folder's ``__init__``). ``pledge-ws`` serves it, ``pledge-ws-simulator`` runs the exchange
simulator; both are console scripts of the installed package (pyproject.toml)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pledge-ws")
except PackageNotFoundError:  # a checkout on sys.path without `pip install`
    __version__ = "0+unknown"
