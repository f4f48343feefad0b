"""Task files that ask for far more work than their size: the inputs the bounded loader must refuse."""

from __future__ import annotations

TASK_HEAD = "type: task\nimage: ubuntu:24.04\n"


def alias_bomb(levels: int = 9) -> str:
    """The classic "billion laughs": each level is nine aliases of the one before (9**9 strings)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    return TASK_HEAD + "\n".join(lines) + f"\ncommands: *a{levels}\n"


def deep_list(depth: int) -> str:
    return TASK_HEAD + "commands: " + "[" * depth + "]" * depth + "\n"


def deep_map(depth: int) -> str:
    return TASK_HEAD + "env: " + "{a: " * depth + "1" + "}" * depth + "\n"


def deep_block(depth: int) -> str:
    """Nesting written with indentation instead of brackets."""
    lines = [f"{'  ' * level}- " for level in range(depth)]
    return "commands:\n" + "\n".join(line + ("x" if i == depth - 1 else "") for i, line in enumerate(lines)) + "\n"
