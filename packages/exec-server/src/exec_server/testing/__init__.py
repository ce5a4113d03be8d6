"""Test doubles shipped with the library: a raw JSON-RPC client, a server runner, and a
fault-injecting TCP proxy."""

from .proxy import CutMode, FaultProxy
from .raw import RawClient, RawRpcError
from .server_process import ServerProcess

__all__ = ["CutMode", "FaultProxy", "RawClient", "RawRpcError", "ServerProcess"]
