"""Test doubles shipped with the library: a raw JSON-RPC client, a server runner, and a
fault-injecting TCP proxy."""

from .raw import RawClient, RawRpcError
from .server_process import ServerProcess

__all__ = ["RawClient", "RawRpcError", "ServerProcess"]
