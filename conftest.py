"""Project-wide pytest configuration: Hypothesis profiles.

Select one with HYPOTHESIS_PROFILE (default, ci, dev). Hypothesis is configured only when a
collected test module imported it, so `pytest specs/ --collect-only` never pays its import.
"""

import os
import sys


def pytest_collection_finish(session):
    if "hypothesis" not in sys.modules:
        return
    from hypothesis import HealthCheck, settings

    settings.register_profile("default", max_examples=100, deadline=None)
    settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("dev", max_examples=20, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
