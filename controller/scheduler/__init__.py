"""Placing pending tasks: a reconciler loop woken on every change, and the requirements a task
carries (explicit, learnt from a refusal, or read from its image's registry)."""
