"""Helpers shared by the test modules (imported, never collected: no ``test_`` names here)."""
