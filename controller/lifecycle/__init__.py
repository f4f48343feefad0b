"""Pure state machines: what a task becomes on an event, and what must follow (no I/O here)."""
