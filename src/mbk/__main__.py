"""``python -m mbk``: the command line."""

from ._cli import entry_point

entry_point()
