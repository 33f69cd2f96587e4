"""Experiment building blocks: tasks, architectures, models."""
