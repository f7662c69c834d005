"""Simulation protocols of the validation checks that are more than one simulator call
(experiments with their own stopping rules and outcome measures)."""

__all__: list[str] = []  # the API is in the submodules
