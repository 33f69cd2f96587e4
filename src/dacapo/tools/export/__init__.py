"""Sharing trained runs: bioimage.io model packages (export and import)."""
