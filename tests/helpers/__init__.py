"""Helpers shared by several test modules (and benches/): not tests themselves, never collected.

Imported as ``helpers.<module>``; tests/conftest.py puts tests/ on ``sys.path`` (benches/conftest.py
does for the benchmarks), as it does for ``reference`` and ``_profile``.
"""
