"""Stdlib-only logic of the built-in agents; each file runs alone as a sandboxed `process.py`."""
