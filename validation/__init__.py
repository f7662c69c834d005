"""The theory validation suite: ``python -m validation --help``; checks in ``validation.checks``."""

__all__: list[str] = []  # the API is in the submodules
