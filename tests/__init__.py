"""
pop3kit's test suite; run it with C{python -m twisted.trial tests}.
"""

from hypothesis import settings

# Timing belongs in benchmarks/, not in tests: no per-example deadline, which would make
# property tests flaky on a loaded CI machine.  A failing example is printed so it can be
# reproduced with @reproduce_failure.
settings.register_profile("pop3kit", deadline=None, print_blob=True)
settings.load_profile("pop3kit")
