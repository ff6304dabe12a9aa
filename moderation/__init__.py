"""Score documents sentence by sentence against a content policy, review the flags, retrain on the decisions."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("moderation")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
