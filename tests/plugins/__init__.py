"""Tests of the built-in agent plugins."""
