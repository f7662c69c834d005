"""Test-suite settings.

Hypothesis explores new random examples on every developer run (its default).  Under CI
(``CI`` set, as the CI runner does) the examples are derived deterministically from each test,
so a landing never depends on the luck of the draw; the laws and tolerances are the same."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
