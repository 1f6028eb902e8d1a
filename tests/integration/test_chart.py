"""
The Helm chart (C{charts/kgateway}), rendered by the real C{helm} and checked offline.

For each layout's values file in C{charts/kgateway/ci/}: C{helm lint --strict} passes; every
manifest C{helm template} renders is valid against the Kubernetes schemas (the
C{kubernetes-validate} package, strict: an unknown field fails) for the oldest Kubernetes
the chart supports and the newest the validator knows; the probes are on the admin port's
/health paths; the grace period outlasts the drain C{GATEWAY_SHUTDOWN_DELAY_BETWEEN_BROKERS_MS}
makes; and every environment variable the chart sets is one that C{twistd kgateway --help}
lists (or a C{KAFKA_*} client setting, which the node passes to its broker-side client), so
the chart cannot drift from the node.  The ServiceMonitor is a Prometheus Operator resource
with no schema here; it is checked against the Service and pods it scrapes instead.

C{scripts/setup} installs helm into C{~/.cache/kgateway/bin}; without it these tests skip
and say so.
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes_validate
import yaml
from twisted.trial.unittest import SkipTest, TestCase

from harness.gateway_process import twistd_command
from kgateway.config import Settings
from tests.certificates import Authority, write_pem_key_store

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "kgateway"
CACHED_HELM = Path.home() / ".cache" / "kgateway" / "bin" / "helm"
NAMESPACE = "kafka"
RELEASE = "gw"

#: The node gives connections still draining after the last broker this long
#: (GatewayNode.drain_timeout_seconds); the chart's drainMarginSeconds covers it.
NODE_FINAL_DRAIN_SECONDS = 30

#: Variables the chart sets in the kgateway container that are not settings: only sources
#: for a setting's $(VAR) expansion, named so the node never reads them (not GATEWAY_/KAFKA_).
EXPANSION_ONLY = {"POD_NAME": "metadata.name"}


def helm() -> str:
    """The helm binary: the one scripts/setup installs, or one on PATH."""
    if CACHED_HELM.is_file() and os.access(CACHED_HELM, os.X_OK):
        return str(CACHED_HELM)
    found = shutil.which("helm")
    if found is None:
        raise SkipTest(
            f"helm is not installed (neither {CACHED_HELM} nor on PATH): run scripts/setup, "
            "which installs it with go install"
        )
    return found


def kubernetes_versions() -> tuple[str, ...]:
    """The oldest Kubernetes the chart declares it supports, and the newest the validator has."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    oldest = re.match(r">=\s*(\d+\.\d+\.\d+)", chart["kubeVersion"])
    assert oldest, chart["kubeVersion"]
    return (oldest.group(1), kubernetes_validate.latest_version())


class RenderError(Exception):
    """helm template refused the values; the message is helm's."""


def render(
    values: Path | None = None, *sets: str, kube_version: str | None = None
) -> list[dict[str, Any]]:
    """The manifests C{helm template} renders, as dicts."""
    command = [helm(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if values is not None:
        command += ["--values", str(values)]
    for assignment in sets:
        command += ["--set", assignment]
    if kube_version is not None:
        command += ["--kube-version", kube_version]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def known_settings() -> frozenset[str]:
    """Every environment variable C{twistd kgateway --help} names, from this checkout."""
    result = subprocess.run(
        [*twistd_command(), "kgateway", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stderr
    # twistd wraps help text into a column and breaks a long word anywhere, so a name may
    # go on over the next lines ("[env GATE" / "WAY_FEATURE_..._BALA" / "NCING, default").
    # A name ends at its "," or "]", never at a line's end.
    fragments = re.findall(r"\[env\s+((?:[A-Z0-9_]|\n[ \t]*)+)", result.stdout)
    names = frozenset(re.sub(r"\s", "", fragment) for fragment in fragments)
    assert {"KAFKA_BOOTSTRAP_SERVERS", "GATEWAY_ADVERTISED_HOST"} <= names, result.stdout
    return names


def is_known(name: str) -> bool:
    """A setting the node reads: listed by --help, or a KAFKA_* broker-side client setting."""
    return name in known_settings() or name.startswith("KAFKA_")


def of_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [m for m in of_kind(manifests, kind) if name is None or m["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}: {[m['metadata'] for m in found]}"
    return found[0]


def gateway_container(statefulset: dict[str, Any]) -> dict[str, Any]:
    (container,) = [
        c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == "kgateway"
    ]
    return dict(container)


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each variable's entry, by name; a name set twice fails (the second hides the first)."""
    entries = container.get("env", [])
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"a variable is set twice: {names}"
    return {e["name"]: e for e in entries}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def values_of(path: Path) -> dict[str, Any]:
    """The chart's values with a values file over them (one level deep, as the ci files need)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for key, value in (yaml.safe_load(path.read_text()) or {}).items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return dict(values)


if TYPE_CHECKING:
    # To mypy the mixin is the TestCase it is mixed into: its assertions are there.
    _TestCaseMixin = TestCase
else:
    _TestCaseMixin = object


class LayoutChecks(_TestCaseMixin):
    """What every layout's rendering must satisfy; a subclass names its values file."""

    values_file: Path

    def setUp(self) -> None:
        self.manifests = render(self.values_file)
        self.values = values_of(self.values_file)
        self.statefulsets = of_kind(self.manifests, "StatefulSet")
        assert self.statefulsets, "no StatefulSet rendered"
        self.container = gateway_container(self.statefulsets[0])
        self.env = env_of(self.container)

    def setting(self, name: str) -> str:
        return str(self.env[name]["value"])

    def test_lint_is_clean(self) -> None:
        result = subprocess.run(
            [helm(), "lint", "--strict", str(CHART), "--values", str(self.values_file)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("0 chart(s) failed", result.stdout)
        problems = [
            line for line in result.stdout.splitlines() if re.match(r"\[(WARNING|ERROR)", line)
        ]
        self.assertEqual(problems, [])

    def test_every_manifest_is_valid_for_kubernetes(self) -> None:
        """Strict: an unknown or misplaced field fails, as the API server would refuse it."""
        for version in kubernetes_versions():
            for manifest in render(self.values_file, kube_version=version):
                if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
                    continue  # a CRD: test_service_monitor_scrapes_every_pod
                try:
                    kubernetes_validate.validate(manifest, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    where = "/".join(map(str, e.path))
                    name = f"{manifest['kind']} {manifest['metadata']['name']}"
                    self.fail(f"{name} on {version}: {where}: {e.message}")

    def test_every_variable_is_a_setting_the_node_knows(self) -> None:
        unknown = [name for name in self.env if not is_known(name) and name not in EXPANSION_ONLY]
        self.assertEqual(unknown, [], f"not in `twistd kgateway --help`: {unknown}")
        for name, field in EXPANSION_ONLY.items():
            if name not in self.env:
                continue
            self.assertEqual(self.env[name]["valueFrom"]["fieldRef"]["fieldPath"], field)
            users = [n for n, e in self.env.items() if f"$({name})" in str(e.get("value", ""))]
            self.assertTrue(users, f"{name} is set but no setting expands it")
            self.assertTrue(all(is_known(n) for n in users), users)
        for statefulset in self.statefulsets:
            for init in statefulset["spec"]["template"]["spec"].get("initContainers", []):
                args = init.get("args", [])
                if "--setting" in args:
                    self.assertTrue(is_known(args[args.index("--setting") + 1]), args)

    def test_the_node_is_told_its_kafka_and_cluster(self) -> None:
        self.assertEqual(
            self.setting("KAFKA_BOOTSTRAP_SERVERS"), self.values["kafka"]["bootstrapServers"]
        )
        self.assertEqual(self.setting("GATEWAY_CLUSTER_ID"), self.values["clusterId"])
        users = self.env["GATEWAY_ADMIN_API_USERS"]["valueFrom"]["secretKeyRef"]
        self.assertTrue(users["name"] and users["key"])

    def test_probes_are_on_the_admin_api_health_paths(self) -> None:
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.assertEqual(ports["admin"], int(self.setting("GATEWAY_HTTP_PORT")))
        readiness = self.container["readinessProbe"]["httpGet"]
        liveness = self.container["livenessProbe"]["httpGet"]
        self.assertEqual((readiness["path"], readiness["port"]), ("/health/ready", "admin"))
        self.assertEqual((liveness["path"], liveness["port"]), ("/health/live", "admin"))
        scheme = "HTTPS" if "GATEWAY_HTTP_TLS_KEY" in self.env else "HTTP"
        self.assertEqual({readiness["scheme"], liveness["scheme"]}, {scheme})

    def test_grace_period_outlasts_the_drain(self) -> None:
        """preStop sleep + delay x brokers + the node's final drain, at least."""
        delay_ms = int(self.setting("GATEWAY_SHUTDOWN_DELAY_BETWEEN_BROKERS_MS"))
        brokers = int(self.values["kafka"]["brokers"])
        for statefulset in self.statefulsets:
            pod = statefulset["spec"]["template"]["spec"]
            container = gateway_container(statefulset)
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {})
            needed = (
                pre_stop.get("seconds", 0)
                + math.ceil(delay_ms * brokers / 1000)
                + NODE_FINAL_DRAIN_SECONDS
            )
            self.assertGreaterEqual(pod["terminationGracePeriodSeconds"], needed)

    def test_kafka_ports_are_the_nodes_port_range(self) -> None:
        start = int(self.setting("GATEWAY_PORT_START"))
        count = int(self.setting("GATEWAY_PORT_COUNT"))
        kafka = [
            p["containerPort"] for p in self.container["ports"] if p["name"].startswith("kafka-")
        ]
        self.assertEqual(kafka, list(range(start, start + count)))
        if self.env.get("GATEWAY_ROUTING_MECHANISM", {}).get("value") == "host":
            self.assertEqual(count, 1)  # SNI: one port for every broker
        else:
            self.assertGreaterEqual(count, int(self.values["kafka"]["brokers"]))

    def test_services_pdb_and_spread_select_the_pods(self) -> None:
        for statefulset in self.statefulsets:
            labels = statefulset["spec"]["template"]["metadata"]["labels"]
            self.assertTrue(selects(statefulset["spec"]["selector"]["matchLabels"], labels))
            container_ports = {p["name"] for p in gateway_container(statefulset)["ports"]}
            for service in of_kind(self.manifests, "Service"):
                self.assertTrue(selects(service["spec"]["selector"], labels), service["metadata"])
                for port in service["spec"]["ports"]:
                    self.assertIn(port["targetPort"], container_ports)
            pdb = one(self.manifests, "PodDisruptionBudget")
            self.assertTrue(selects(pdb["spec"]["selector"]["matchLabels"], labels))
            spread = statefulset["spec"]["template"]["spec"]["topologySpreadConstraints"]
            for constraint in spread:
                self.assertTrue(selects(constraint["labelSelector"]["matchLabels"], labels))
            keys = {c["topologyKey"] for c in spread}
            self.assertIn("kubernetes.io/hostname", keys)
            if "nodeAffinity" not in statefulset["spec"]["template"]["spec"].get("affinity", {}):
                self.assertIn("topology.kubernetes.io/zone", keys)
        self.assertEqual(pdb["spec"]["maxUnavailable"], 1)

    def test_resources_have_requests_and_limits(self) -> None:
        for statefulset in self.statefulsets:
            pod = statefulset["spec"]["template"]["spec"]
            for container in pod["containers"] + pod.get("initContainers", []):
                resources = container["resources"]
                self.assertEqual(set(resources), {"requests", "limits"}, container["name"])
                for kind in ("requests", "limits"):
                    self.assertEqual(set(resources[kind]), {"cpu", "memory"}, container["name"])

    def test_runs_as_non_root_with_a_read_only_root(self) -> None:
        pod = self.statefulsets[0]["spec"]["template"]["spec"]
        self.assertIs(pod["securityContext"]["runAsNonRoot"], True)
        self.assertIs(self.container["securityContext"]["readOnlyRootFilesystem"], True)
        self.assertIs(pod["automountServiceAccountToken"], False)

    def test_service_monitor_scrapes_every_pod(self) -> None:
        (monitor,) = of_kind(self.manifests, "ServiceMonitor")
        (endpoint,) = monitor["spec"]["endpoints"]
        self.assertEqual((endpoint["port"], endpoint["path"]), ("admin", "/metrics"))
        scraped = [
            s
            for s in of_kind(self.manifests, "Service")
            if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        (service,) = scraped
        self.assertEqual(service["spec"]["clusterIP"], "None")
        self.assertIn("admin", {p["name"] for p in service["spec"]["ports"]})
        self.assertEqual(monitor["spec"]["namespaceSelector"]["matchNames"], [NAMESPACE])
        secured = self.env.get("GATEWAY_SECURED_METRICS", {}).get("value", "true") != "false"
        self.assertEqual("basicAuth" in endpoint, secured)


class InternalLayoutTests(LayoutChecks, TestCase):
    """ci/internal-values.yaml: each pod advertises its own name; racks from node labels."""

    values_file = CHART / "ci" / "internal-values.yaml"

    def test_each_pod_advertises_its_stable_dns_name(self) -> None:
        (statefulset,) = self.statefulsets
        headless = one(self.manifests, "Service", statefulset["spec"]["serviceName"])
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        # A node's name resolves as soon as the gateway cluster may hand it out.
        self.assertIs(headless["spec"]["publishNotReadyAddresses"], True)
        self.assertEqual(
            self.setting("GATEWAY_ADVERTISED_HOST"),
            f"$(POD_NAME).{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local",
        )
        # $(POD_NAME) expands only from a variable defined before it.
        names = list(self.env)
        self.assertLess(names.index("POD_NAME"), names.index("GATEWAY_ADVERTISED_HOST"))
        self.assertEqual(self.setting("GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING"), "true")
        bootstrap = one(self.manifests, "Service", f"{RELEASE}-kgateway")
        self.assertEqual(bootstrap["spec"]["type"], "ClusterIP")

    def test_rack_comes_from_the_node_zone_label(self) -> None:
        (statefulset,) = self.statefulsets
        pod = statefulset["spec"]["template"]["spec"]
        (init,) = pod["initContainers"]
        self.assertEqual(init["command"], ["kgateway-node-zone"])
        self.assertEqual(init["image"], self.container["image"])
        self.assertEqual(
            init["args"],
            ["--label", "topology.kubernetes.io/zone", "--setting", "GATEWAY_RACK_ID"]
            + ["--env-dir", "/run/kgateway/env"],
        )
        self.assertEqual(
            env_of(init)["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName"
        )
        self.assertNotIn("GATEWAY_RACK_ID", self.env)
        mounts = {m["name"]: m["mountPath"] for m in self.container["volumeMounts"]}
        self.assertEqual(mounts["settings"], "/run/kgateway/env")
        # The API token is the init container's alone.
        self.assertNotIn("kube-api-access", mounts)
        self.assertIn("kube-api-access", {m["name"] for m in init["volumeMounts"]})
        role = one(self.manifests, "ClusterRole")
        self.assertEqual(
            role["rules"], [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]
        )
        binding = one(self.manifests, "ClusterRoleBinding")
        self.assertEqual(binding["roleRef"]["name"], role["metadata"]["name"])
        self.assertEqual(
            binding["subjects"],
            [{"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": NAMESPACE}],
        )


class ExternalLayoutTests(LayoutChecks, TestCase):
    """ci/external-values.yaml: one LoadBalancer Service, whose name every node advertises."""

    values_file = CHART / "ci" / "external-values.yaml"

    def test_every_node_advertises_the_load_balancer(self) -> None:
        self.assertEqual(self.setting("GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING"), "false")
        self.assertEqual(self.setting("GATEWAY_ADVERTISED_HOST"), "kafka-gw.example.com")
        self.assertNotIn("POD_NAME", self.env)
        service = one(self.manifests, "Service", f"{RELEASE}-kgateway")
        self.assertEqual(service["spec"]["type"], "LoadBalancer")
        kafka = [
            p["containerPort"] for p in self.container["ports"] if p["name"].startswith("kafka-")
        ]
        # Broker b is advertised at the load balancer's port start + b - min id: the same number.
        self.assertEqual([p["port"] for p in service["spec"]["ports"]], kafka)
        self.assertEqual(self.setting("GATEWAY_MIN_BROKERID"), "1")

    def test_kafka_secrets_come_from_secrets(self) -> None:
        jaas = self.env["KAFKA_SASL_JAAS_CONFIG"]["valueFrom"]["secretKeyRef"]
        self.assertEqual((jaas["name"], jaas["key"]), ("kafka-client", "sasl.jaas.config"))

    def test_admin_users_secret_is_made_from_values(self) -> None:
        secret = one(self.manifests, "Secret")
        ref = self.env["GATEWAY_ADMIN_API_USERS"]["valueFrom"]["secretKeyRef"]
        self.assertEqual(ref["name"], secret["metadata"]["name"])
        self.assertIn(ref["key"], secret["data"])
        self.assertIn(
            "checksum/admin-api-users",
            self.statefulsets[0]["spec"]["template"]["metadata"]["annotations"],
        )

    def test_no_rack_and_no_access_to_nodes(self) -> None:
        self.assertNotIn("GATEWAY_RACK_ID", self.env)
        self.assertEqual(of_kind(self.manifests, "ClusterRole"), [])
        self.assertNotIn("initContainers", self.statefulsets[0]["spec"]["template"]["spec"])

    def test_load_balancer_is_given_time_to_take_the_node_out(self) -> None:
        self.assertEqual(self.container["lifecycle"]["preStop"], {"sleep": {"seconds": 10}})


class SniLayoutTests(LayoutChecks, TestCase):
    """ci/sni-values.yaml: one TLS port behind one Service passing TLS through."""

    values_file = CHART / "ci" / "sni-values.yaml"

    def test_one_port_routed_by_host(self) -> None:
        self.assertEqual(self.setting("GATEWAY_ROUTING_MECHANISM"), "host")
        self.assertEqual(self.setting("GATEWAY_ADVERTISED_HOST"), "kafka.example.com")
        self.assertEqual(self.setting("GATEWAY_FEATURE_FLAGS_INTERNAL_LOAD_BALANCING"), "false")
        self.assertEqual(self.setting("GATEWAY_SECURITY_PROTOCOL"), "SSL")
        self.assertEqual(self.setting("GATEWAY_PORT_COUNT"), "1")
        service = one(self.manifests, "Service", f"{RELEASE}-kgateway")
        self.assertEqual(service["spec"]["type"], "LoadBalancer")
        (port,) = service["spec"]["ports"]
        # Clients are given the Service's port; it reaches the node's one Kafka port.
        self.assertEqual(port["port"], int(self.setting("GATEWAY_ADVERTISED_SNI_PORT")))
        self.assertEqual((port["port"], port["targetPort"]), (443, "kafka-0"))

    def test_key_store_from_a_secret(self) -> None:
        path = self.setting("GATEWAY_SSL_KEY_STORE_PATH")
        self.assertEqual(self.setting("GATEWAY_SSL_KEY_TYPE"), "pem")
        pod = self.statefulsets[0]["spec"]["template"]["spec"]
        (mount,) = [m for m in self.container["volumeMounts"] if m["name"] == "sni-key-store"]
        self.assertTrue(path.startswith(mount["mountPath"] + "/"), (path, mount))
        self.assertIs(mount["readOnly"], True)
        (volume,) = [v for v in pod["volumes"] if v["name"] == "sni-key-store"]
        self.assertEqual(volume["secret"]["secretName"], "kgateway-tls")

    def test_the_node_accepts_the_settings(self) -> None:
        """The rendered settings load in a node (with a real key store at the path)."""
        directory = Path(self.mktemp())
        directory.mkdir()
        authority = Authority()
        store = write_pem_key_store(
            directory / "gateway.pem",
            authority.issue("gw", ("*.kafka.example.com", "kafka.example.com")),
            authority,
        )
        environ = {
            name: str(entry["value"]) for name, entry in self.env.items() if "value" in entry
        }
        environ["GATEWAY_SSL_KEY_STORE_PATH"] = str(store)
        environ["GATEWAY_ADMIN_API_USERS"] = '[{"username": "a", "password": "b"}]'
        settings = Settings.load(environ, {})
        (listener,) = settings.listeners
        self.assertEqual((listener.routing, listener.tls), ("sni", True))
        self.assertEqual(settings.host_routing.advertised_port, 443)


REQUIRED = ("kafka.bootstrapServers=broker:9092", "adminApi.existingSecret=admin")


class ChartValuesTests(TestCase):
    """The chart's other choices, and the values it refuses with a reason."""

    def test_defaults_render_valid_manifests(self) -> None:
        for version in kubernetes_versions():
            for manifest in render(None, *REQUIRED, kube_version=version):
                kubernetes_validate.validate(manifest, version, strict=True)

    def test_rack_per_zone_pins_one_statefulset_per_zone(self) -> None:
        manifests = render(
            None,
            *REQUIRED,
            "rack.mode=perZone",
            "rack.zones[0].zone=eu-west-1a",
            "rack.zones[0].rack=a",
            "rack.zones[1].zone=eu-west-1b",
            "rack.zones[1].replicas=2",
        )
        statefulsets = of_kind(manifests, "StatefulSet")
        self.assertEqual(
            [s["metadata"]["name"] for s in statefulsets],
            ["gw-kgateway-a", "gw-kgateway-eu-west-1b"],
        )
        self.assertEqual([s["spec"]["replicas"] for s in statefulsets], [1, 2])
        for statefulset, zone, rack in zip(
            statefulsets, ["eu-west-1a", "eu-west-1b"], ["a", "eu-west-1b"], strict=True
        ):
            pod = statefulset["spec"]["template"]["spec"]
            terms = pod["affinity"]["nodeAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]
            (term,) = terms["nodeSelectorTerms"]
            self.assertEqual(
                term["matchExpressions"],
                [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]}],
            )
            self.assertEqual(
                env_of(gateway_container(statefulset))["GATEWAY_RACK_ID"]["value"], rack
            )
            self.assertNotIn("initContainers", pod)
            # One headless Service governs them all, so every pod keeps its own DNS name.
            self.assertEqual(statefulset["spec"]["serviceName"], "gw-kgateway-headless")
        self.assertEqual(of_kind(manifests, "ClusterRole"), [])
        for version in kubernetes_versions():
            for manifest in manifests:
                kubernetes_validate.validate(manifest, version, strict=True)

    def test_rack_from_the_pods_own_zone_label(self) -> None:
        (statefulset,) = of_kind(render(None, *REQUIRED, "rack.mode=podLabel"), "StatefulSet")
        rack = env_of(gateway_container(statefulset))["GATEWAY_RACK_ID"]
        self.assertEqual(
            rack["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.labels['topology.kubernetes.io/zone']",
        )

    def test_no_rack(self) -> None:
        manifests = render(None, *REQUIRED, "rack.mode=none", "env.GATEWAY_RACK_ID=fixed")
        (statefulset,) = of_kind(manifests, "StatefulSet")
        self.assertEqual(
            env_of(gateway_container(statefulset))["GATEWAY_RACK_ID"]["value"], "fixed"
        )
        self.assertNotIn("initContainers", statefulset["spec"]["template"]["spec"])

    def test_grace_period_grows_with_the_drain(self) -> None:
        manifests = render(
            None,
            *REQUIRED,
            "shutdown.delayBetweenBrokersMs=5000",
            "kafka.brokers=6",
            "shutdown.preStopSleepSeconds=5",
        )
        (statefulset,) = of_kind(manifests, "StatefulSet")
        self.assertEqual(
            statefulset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 5 + 30 + 30
        )
        self.assertEqual(env_of(gateway_container(statefulset))["GATEWAY_PORT_COUNT"]["value"], "8")

    def test_admin_api_over_https(self) -> None:
        (statefulset,) = of_kind(
            render(None, *REQUIRED, "adminApi.tlsSecret=gw-tls"), "StatefulSet"
        )
        container = gateway_container(statefulset)
        env = env_of(container)
        self.assertEqual(env["GATEWAY_HTTP_TLS_KEY"]["value"], "/etc/kgateway/tls/tls.key")
        self.assertEqual(container["readinessProbe"]["httpGet"]["scheme"], "HTTPS")

    def assertRefused(self, *sets: str, because: str) -> None:
        with self.assertRaises(RenderError) as caught:
            render(None, *sets)
        self.assertIn(because, str(caught.exception))

    def test_refusals_name_the_value_and_the_fix(self) -> None:
        self.assertRefused(*REQUIRED, "layout=sni", because="sni.advertisedHost is required")
        self.assertRefused(
            *REQUIRED,
            "layout=sni",
            "sni.advertisedHost=k.example.com",
            because="sni.keyStore.secretName is required",
        )
        self.assertRefused(
            *REQUIRED,
            "layout=sni",
            "sni.advertisedHost=k.example.com",
            "sni.keyStore.secretName=tls",
            "ports.count=4",
            because="ports.count=4 with layout=sni",
        )
        self.assertRefused(
            *REQUIRED,
            "layout=sni",
            "sni.advertisedHost=k.example.com",
            "sni.keyStore.secretName=tls",
            "env.GATEWAY_ROUTING_MECHANISM=port",
            because="set layout instead",
        )
        self.assertRefused(*REQUIRED, "layout=other", because="'internal', 'external', 'sni'")
        self.assertRefused(
            "adminApi.existingSecret=a", because="kafka.bootstrapServers is required"
        )
        self.assertRefused(
            "kafka.bootstrapServers=b:1", because="adminApi.existingSecret or adminApi.users"
        )
        self.assertRefused(
            *REQUIRED, "env.GATEWAY_PORT_START=7000", because="set ports.start instead"
        )
        self.assertRefused(*REQUIRED, "env.GATEWAY_RACK_ID=a", because="rack (or rack.mode=none)")
        self.assertRefused(*REQUIRED, "env.LD_PRELOAD=x", because="does not match pattern")
        self.assertRefused(
            *REQUIRED, "shutdown.terminationGracePeriodSeconds=10", because="give 33 or more"
        )
        self.assertRefused(
            *REQUIRED, "layout=external", because="external.advertisedHost is required"
        )
        self.assertRefused(
            *REQUIRED, "rack.mode=perZone", because="rack.mode=perZone needs rack.zones"
        )
        self.assertRefused(
            *REQUIRED, "metrics.serviceMonitor.enabled=true", because="basicAuth.secretName"
        )

    def test_validation_is_strict(self) -> None:
        """The validator refuses a misplaced field, so a pass above means something."""
        (statefulset,) = of_kind(render(None, *REQUIRED), "StatefulSet")
        statefulset["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(statefulset, kubernetes_versions()[-1], strict=True)

    def test_help_parsing_finds_every_setting(self) -> None:
        """The --help parse is what the drift check rests on: it must see wrapped names too."""
        from kgateway.config import SETTINGS

        self.assertEqual(known_settings(), {setting.env for setting in SETTINGS})
