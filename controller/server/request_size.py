"""How large a client's request may be, checked before the method reads any of it.

Submit, Apply and Offers carry a configuration, which bounded_input caps at 1 MiB with its own
sentence ("the task configuration is larger than the 1 MiB limit") before it is parsed. Every
other field of every call is a name, a word or a flag, a few hundred bytes at most; unbounded,
a name of megabytes was looked up in the store and echoed back in the error ("no task named
'xxxx...'"), whose trailer then broke gRPC's 16 KiB metadata limit and reached the client as
"Stream removed". Anything past gRPC's own limit (the server's max_receive_message_length, see
controller/server/ports.py) is refused by gRPC before it is decoded."""

from __future__ import annotations

from google.protobuf.message import Message

# Names, words and flags of one request, configuration aside: a task or host name is at most 63
# characters, a list of instance types to check a few dozen; 8 KiB is far past any of them and
# keeps every sentence that quotes one under gRPC's metadata limit.
MAX_PLAIN_BYTES = 8 * 1024
MAX_PLAIN_TEXT = "8 KiB"


def oversized(rpc: str, request: Message) -> str:
    """Why `request` is too large for `rpc`, or "" when it is not."""
    size = request.ByteSize()
    if size <= MAX_PLAIN_BYTES:
        return ""
    configuration = getattr(request, "configuration_json", None)
    if isinstance(configuration, str):
        # The configuration has its own cap and sentence (bounded_input, in the method).
        size -= len(configuration.encode("utf-8", "replace"))
        if size <= MAX_PLAIN_BYTES:
            return ""
        return (
            f"the {rpc} request's fields besides the configuration take {size} bytes, "
            f"past the {MAX_PLAIN_TEXT} limit for names and options"
        )
    return f"the {rpc} request takes {size} bytes, past the {MAX_PLAIN_TEXT} limit for names and options"
