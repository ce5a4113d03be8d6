"""`environment/info` (docs/protocol.md §3): facts about the executor host, computed once."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile

from exec_server_protocol import format_path_uri
from exec_server_protocol.session import EnvironmentInfo, ShellInfo

__all__ = ["CAPABILITIES", "environment_info", "executor_version"]

CAPABILITIES: dict[str, bool] = {
    # The reference's names (codex 0.169.0), true only for what we really do.
    "networkProxyLaunch": False,
    "networkProxyReviewDomains": False,
    "credentialMasking": False,
    "credentialMaskingCustomProviders": False,
    "capabilityDiscoverySandbox": False,
    "fsWatchMissing": True,
    "capabilityDiscoveryV2": False,
    "environmentConfigRead": True,
    "httpHeaderEnvVars": False,
    "sandboxedFileStreaming": True,
    "fileWriteStreaming": True,
    "shellSnapshotV2": False,
    "windowsMxc": False,
    "linuxRootWritePreservesDevices": False,
    "linuxApprovedRootWritePreservesRestrictions": False,
    # [ours]
    "processResize": True,
    "processCloseStdin": True,
    "processPtySize": True,
    "processExtraSignals": True,
    "processResourceUsage": True,
    "readRetainedFromSeq": True,
    "sessionTakeover": True,
    "concurrentRequests": True,
    "treeKill": True,
    "startErrorData": True,
    "processList": True,
    "externalIsolation": False,  # true with --isolation external (environmentInfo.isolation)
}


def executor_version() -> str:
    # importlib.metadata costs several ms at import: only the first environment/info pays it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("exec-server")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def _shell() -> ShellInfo:
    path = os.environ.get("SHELL") or ""
    if not path:
        try:
            path = pwd.getpwuid(os.getuid()).pw_shell
        except KeyError:
            path = ""
    if not path or not os.access(path, os.X_OK):
        path = shutil.which("bash") or shutil.which("sh") or "/bin/sh"
    return ShellInfo(name=os.path.basename(path), path=path)


def environment_info(capabilities: dict[str, bool] | None = None) -> EnvironmentInfo:
    home = os.path.expanduser("~")
    return EnvironmentInfo(
        shell=_shell(),
        executor_version=executor_version(),
        provider_id="exec-server",
        cwd=format_path_uri(os.getcwd()),
        user_home_dir=format_path_uri(home),
        platform_os="linux",
        prepend_path_dirs=[],
        temporary_directories=[],
        temp_dir=format_path_uri(tempfile.gettempdir()),
        capabilities=dict(CAPABILITIES if capabilities is None else capabilities),
    )
