"""Persisted queue decisions (pause, scale) and applying them to oban nodes."""
