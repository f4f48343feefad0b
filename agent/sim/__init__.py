"""Pieces of `dstack-agent simulate`: per-host facts from a template, and tasks that run without Docker."""
