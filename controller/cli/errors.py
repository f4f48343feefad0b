"""Errors dstackctl shows as one sentence: UsageError exits 2, CommandError exits 1."""


class UsageError(Exception):
    pass


class CommandError(Exception):
    pass
