"""Score documents sentence by sentence against a content policy, review the flags, retrain on the decisions."""


def __getattr__(name: str) -> str:
    # Looked up when asked for (`moderation --version`): importing importlib.metadata costs every run 50 ms, in which
    # a Ctrl-C could not yet be answered with one line (see __main__).
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("moderation")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
