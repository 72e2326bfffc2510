"""Hypothesis profiles for gdtui's property tests; choose one with ``pytest --hypothesis-profile NAME``.

* ``default``: 200 examples, derandomized, so CI draws the same examples every
  run and writes no example database; test_property.py must stay well within
  a minute on a 2-core machine. Being the default, it applies to
  every hypothesis test in the run: size a new test's work to it.
* ``long``: 3000 random examples (minutes, not seconds), for a hunt before a release.

Registering ``default`` here, at import, takes effect at once. A name other
than ``default`` must be registered before pytest configures hypothesis's
plugin, which happens before test modules are imported, so ``long`` needs
this module loaded early: ``python -m pytest -p tests.hypothesis_profiles
--hypothesis-profile long tests/engine/test_property.py``, or the
``from tests import hypothesis_profiles`` in ``tests/conftest.py``.
"""

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

# Every setting is spelled out: a profile's unset values come from the profile
# active when it is registered, which may be one of these two.
_COMMON = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

settings.register_profile("default", max_examples=200, derandomize=True, database=None, **_COMMON)
settings.register_profile(
    "long",
    max_examples=3000,
    derandomize=False,
    database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
    **_COMMON,
)
