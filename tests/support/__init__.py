"""Test tooling: a synthetic study directory in the documented formats, and a headless-browser check of a report."""
