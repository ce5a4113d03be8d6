"""Test doubles shipped with the library: a raw JSON-RPC client, a server runner (and the
arguments of a token-guarded server), a fault-injecting TCP proxy, and an in-memory connection
pair (:mod:`.memory`, used through ``RawClient.in_memory(server)``)."""

from .proxy import CutMode, FaultProxy
from .raw import RawClient, RawRpcError
from .server_process import ServerProcess, capability_token_args

__all__ = [
    "CutMode",
    "FaultProxy",
    "RawClient",
    "RawRpcError",
    "ServerProcess",
    "capability_token_args",
]
