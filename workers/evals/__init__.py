"""Eval suites on the worker side: the checks a suite row makes and the scorer that runs them."""
