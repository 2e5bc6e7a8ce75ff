"""Helpers the test modules share: fakes, stand-in planes, recordings and app drivers.

No test module imports another; what two of them need lives here (or in a conftest
fixture)."""
