"""Persistence: config (de)serialisation, arrays, run directories."""
