"""Project-wide pytest configuration: Hypothesis profiles.

Select one with HYPOTHESIS_PROFILE: `default`, `ci` (derandomized, more examples) or `dev`
(fewer examples). The profile is loaded just before the first Python test module is imported,
because `@given` reads the settings when it decorates; spec files are not Python test modules,
so `pytest specs/` never imports Hypothesis.
"""

import os

_profile_loaded = False


def _load_hypothesis_profile() -> None:
    from hypothesis import HealthCheck, settings

    settings.register_profile("default", max_examples=100, deadline=None)
    settings.register_profile(
        "ci",
        max_examples=200,
        deadline=None,
        derandomize=True,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("dev", max_examples=20, deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_pycollect_makemodule(module_path, parent):
    global _profile_loaded
    if not _profile_loaded:
        _profile_loaded = True
        _load_hypothesis_profile()
