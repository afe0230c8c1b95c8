#!/usr/bin/env python3
"""The checks of scripts/check-deploy (docs/deploy.md §6), which installs the tools first.

    check_deploy.py static     compose, Dockerfile, Kubernetes, Prometheus, Grafana, .env.example
    check_deploy.py packages   the cargo packages whose binaries docker-compose.yml runs
    check_deploy.py smoke      the compose smoke test (the binaries must be built)

Every check prints one line saying what it proved; the first failure stops the run with the
reason. Binaries and metrics that belong to services still being written (contact sync, the
provider API) are accepted as pending only while their crate declares no binary, so these checks
turn strict on their own the day the crate lands.
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request

import jsonschema
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COMPOSE = os.path.join(ROOT, "docker-compose.yml")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))

# Binaries of services being written: the crate that will declare each. Accepted while missing
# only as long as that crate declares no [[bin]] at all.
PENDING_BINARIES = {"daikai-contact-sync": "crates/contact-sync", "daikai-api": "crates/api"}
# Metrics the dashboard and alerts use before their service exports them, and the crate that
# will (the names agreed for contact sync's sync runs).
PENDING_METRICS = {
    "daikai_sync_runs_in_progress": "crates/contact-sync",
    "daikai_sync_run_failures_total": "crates/contact-sync",
    "daikai_sync_last_success_timestamp_seconds": "crates/contact-sync",
}
# Services of the compose file that are third-party images, not daikai binaries: the smoke test
# stands this machine's Postgres and a scratch RabbitMQ node in for the first two and does not
# run the monitoring pair.
THIRD_PARTY = {"postgres", "rabbitmq", "prometheus", "grafana"}
# The scratch RabbitMQ node of the smoke test, on ports nothing else here uses.
SCRATCH_NODE = "daikai-check-deploy@localhost"
SCRATCH_AMQP, SCRATCH_MGMT, SCRATCH_PROM, SCRATCH_DIST = 5679, 15679, 15699, 25679


class Failed(Exception):
    pass


def ok(what):
    print(f"check-deploy: ok: {what}", flush=True)


def note(what):
    print(f"check-deploy: {what}", flush=True)


def run(cmd, **kw):
    kw.setdefault("cwd", ROOT)
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        raise Failed(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


# --- the workspace ---------------------------------------------------------------------------


def crate_binaries():
    """{binary name: crate dir} for every [[bin]] the workspace members declare."""
    found = {}
    for manifest in sorted(glob.glob(os.path.join(ROOT, "crates", "*", "Cargo.toml"))):
        with open(manifest, "rb") as f:
            data = tomllib.load(f)
        crate = os.path.relpath(os.path.dirname(manifest), ROOT)
        for b in data.get("bin", []):
            found[b["name"]] = (crate, data["package"]["name"])
        if not data.get("bin") and os.path.exists(os.path.join(os.path.dirname(manifest), "src", "main.rs")):
            found[data["package"]["name"]] = (crate, data["package"]["name"])
    return found


def crate_has_binary(crate):
    manifest = os.path.join(ROOT, crate, "Cargo.toml")
    if not os.path.exists(manifest):
        return False
    return any(c == crate for c, _ in crate_binaries().values())


def source_strings():
    """Every string literal in the services' non-test source."""
    literals = set()
    for path in glob.glob(os.path.join(ROOT, "crates", "*", "src", "**", "*.rs"), recursive=True):
        if "/test-support/" in path or path.endswith(("testing.rs", "testkit.rs")):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read().split("#[cfg(test)]")[0]
        literals.update(re.findall(r'"([^"\\\n]*)"', text))
    return literals


# --- compose ---------------------------------------------------------------------------------


def compose_config():
    run(["docker-compose", "-f", COMPOSE, "config", "-q"])
    return json.loads(run(["docker-compose", "-f", COMPOSE, "config", "--format", "json"]))


def is_daikai(service):
    return service.get("image", "").startswith("daikai") or "build" in service


def check_compose():
    config = compose_config()
    ok("docker-compose config -q (Docker Compose v2)")
    services = config["services"]
    binaries = crate_binaries()
    completed = {
        dep
        for s in services.values()
        for dep, cond in (s.get("depends_on") or {}).items()
        if cond.get("condition") == "service_completed_successfully"
    }
    pending = []
    for name, s in services.items():
        if "container_name" in s:
            raise Failed(f"compose service {name} has a fixed container_name: it cannot scale")
        for dep, cond in (s.get("depends_on") or {}).items():
            if cond.get("condition") not in ("service_healthy", "service_completed_successfully"):
                raise Failed(f"{name} depends on {dep} without service_healthy / _completed_successfully")
            if cond.get("condition") == "service_healthy" and not services[dep].get("healthcheck"):
                raise Failed(f"{name} waits for {dep} to be healthy, and {dep} has no healthcheck")
        check = s.get("healthcheck")
        if name in completed:
            if s.get("restart") not in (None, "no"):
                raise Failed(f"one-shot service {name} must not restart")
        elif not check or check.get("disable"):
            raise Failed(f"compose service {name} has no healthcheck")
        if not is_daikai(s):
            continue
        command = s.get("command") or []
        if s.get("entrypoint"):
            raise Failed(f"{name}: the daikai image has no entrypoint to override")
        if not command:
            raise Failed(f"{name} names no command: which binary of the image?")
        binary = command[0]
        if binary not in binaries:
            crate = PENDING_BINARIES.get(binary)
            if crate is None or crate_has_binary(crate):
                raise Failed(f"{name} runs {binary}, which no crate of the workspace declares")
            pending.append(f"{name} ({binary}, {crate} has no [[bin]] yet)")
        test = (check or {}).get("test") or []
        if test[:2] == ["CMD", "daikai-healthcheck"] and not dockerfile_installs_healthcheck():
            raise Failed(f"{name}'s healthcheck uses daikai-healthcheck, which the Dockerfile does not install")
    workers = {"auth-worker", "contact-sync"}
    for name in workers:
        if services[name].get("ports"):
            raise Failed(f"{name} publishes host ports: `--scale {name}=N` would collide")
    ok(
        f"{len(services)} compose services: healthchecks on every long-running one, one-shot "
        f"{', '.join(sorted(completed))} awaited with service_completed_successfully, no "
        "container names, no host ports on the workers"
    )
    ok("every daikai service's command names a binary a workspace crate declares"
       + (f"; pending: {'; '.join(pending)}" if pending else ""))
    return config


def dockerfile_installs_healthcheck():
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        return "COPY deploy/docker/daikai-healthcheck /usr/local/bin/daikai-healthcheck" in f.read()


def check_dockerfile():
    run(["hadolint", "Dockerfile"])
    with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
        text = f.read()
    for needle, why in [
        ("--mount=type=cache", "dependency caching (BuildKit cache mounts)"),
        ("--workspace --bins", "every binary of the workspace"),
        ("USER 10001", "a non-root runtime"),
        ("ca-certificates", "CA certificates"),
    ]:
        if needle not in text:
            raise Failed(f"Dockerfile lacks {why} ({needle!r})")
    instructions = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    if "SQLX_OFFLINE" in instructions or "DATABASE_URL" in instructions:
        raise Failed("the image must build without a database")
    macros = subprocess.run(["grep", "-rlE", r"sqlx::query(_as|_scalar)?!", "crates", "--include=*.rs"],
                            cwd=ROOT, capture_output=True, text=True).stdout
    if macros.strip():
        raise Failed(f"sqlx query macros need a database or SQLX_OFFLINE data to build: {macros}")
    ok("hadolint Dockerfile; cache mounts, every workspace binary, non-root, CA certs; no "
       "sqlx query macros, so no database at build time")


# --- .env.example ----------------------------------------------------------------------------


def service_variables():
    """{variable: crates} of every environment variable a service or the CLI reads."""
    found = {}
    pattern = re.compile(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"')
    for path in glob.glob(os.path.join(ROOT, "crates", "*", "src", "**", "*.rs"), recursive=True):
        if not re.search(r"/(config|env|main|suite)\.rs$", path) or "/test-support/" in path:
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read().split("#[cfg(test)]")[0]
        for var in pattern.findall(text):
            found.setdefault(var, set()).add(os.path.relpath(path, ROOT).split(os.sep)[1])
    return found


def check_env_example():
    with open(os.path.join(ROOT, ".env.example"), encoding="utf-8") as f:
        text = f.read()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.M))
    variables = service_variables()
    missing = sorted(v for v in variables if v not in documented)
    if missing:
        raise Failed(".env.example does not document " + ", ".join(
            f"{v} (read by {'/'.join(sorted(variables[v]))})" for v in missing))
    ok(f".env.example documents all {len(variables)} variables the services and the CLI read")


# --- Kubernetes ------------------------------------------------------------------------------


def render(path):
    return [d for d in yaml.safe_load_all(run(["kubectl", "kustomize", path])) if d]


def check_kubernetes():
    schemas = {}
    for path in glob.glob(os.path.join(ROOT, "deploy", "k8s", "schemas", "*.json")):
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        schemas[schema["$id"].split("/", 1)[1]] = jsonschema.Draft202012Validator(schema)
    binaries = crate_binaries()
    for overlay in ("deploy/k8s/base", "deploy/k8s/overlays/local"):
        docs = render(overlay)
        kinds = {}
        with tempfile.TemporaryDirectory() as tmp:
            builtin = []
            for i, doc in enumerate(docs):
                kinds.setdefault(doc["kind"], []).append(doc)
                key = f"{doc['apiVersion']}/{doc['kind']}"
                if doc["apiVersion"].startswith("keda.sh/"):
                    if key not in schemas:
                        raise Failed(f"{overlay}: no schema for {key} in deploy/k8s/schemas")
                    errors = [e.message for e in schemas[key].iter_errors(doc)]
                    if errors:
                        raise Failed(f"{overlay}: {doc['kind']} {doc['metadata']['name']}: {errors}")
                    continue
                path = os.path.join(tmp, f"{i:03d}.yaml")
                with open(path, "w", encoding="utf-8") as f:
                    yaml.safe_dump(doc, f)
                builtin.append(path)
            out = run(["kubernetes-validate", "--strict", "--quiet", "-k", "1.30.0", *builtin])
            if "ERROR" in out or "WARN" in out:
                raise Failed(f"{overlay}: {out}")
        check_workloads(overlay, kinds, binaries)
        ok(f"kubectl kustomize {overlay}: {len(docs)} objects valid against Kubernetes 1.30 "
           f"(strict) and KEDA's fields ({len(kinds.get('ScaledObject', []))} ScaledObjects)")
    with open(os.path.join(ROOT, "deploy/local/suites.toml"), "rb") as a, \
            open(os.path.join(ROOT, "deploy/k8s/overlays/local/suites.toml"), "rb") as b:
        if a.read() != b.read():
            raise Failed("deploy/k8s/overlays/local/suites.toml is not a copy of deploy/local/suites.toml")


def check_workloads(overlay, kinds, binaries):
    deployments = {d["metadata"]["name"]: d for d in kinds.get("Deployment", [])}
    pdb_selects = [p["spec"]["selector"]["matchLabels"] for p in kinds.get("PodDisruptionBudget", [])]
    for d in deployments.values():
        name = d["metadata"]["name"]
        if not name.startswith("daikai-"):
            continue
        pod = d["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            raise Failed(f"{overlay}: {name} does not run as non-root")
        for c in pod["containers"]:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    raise Failed(f"{overlay}: {name}/{c['name']} has no {probe}")
            if c["readinessProbe"]["httpGet"]["path"] != "/readyz" or c["livenessProbe"]["httpGet"]["path"] != "/healthz":
                raise Failed(f"{overlay}: {name} must probe /healthz (liveness) and /readyz (readiness)")
            if not c.get("resources", {}).get("requests") or not c["resources"].get("limits"):
                raise Failed(f"{overlay}: {name}/{c['name']} has no resource requests and limits")
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem"):
                raise Failed(f"{overlay}: {name}/{c['name']}: privilege escalation or a writable root")
            check_k8s_binary(overlay, name, c["command"][0], binaries)
        labels = d["spec"]["selector"]["matchLabels"]
        if not any(all(labels.get(k) == v for k, v in sel.items()) for sel in pdb_selects):
            raise Failed(f"{overlay}: {name} has no PodDisruptionBudget")
    for job in kinds.get("Job", []):
        for c in job["spec"]["template"]["spec"]["containers"]:
            check_k8s_binary(overlay, job["metadata"]["name"], c["command"][0], binaries)
    scaled = {}
    for so in kinds.get("ScaledObject", []):
        target = so["spec"]["scaleTargetRef"]["name"]
        if target not in deployments:
            raise Failed(f"{overlay}: ScaledObject {so['metadata']['name']} scales {target}, which is not rendered")
        if "replicas" in deployments[target]["spec"]:
            raise Failed(f"{overlay}: {target} sets replicas, which KEDA owns")
        scaled[target] = [t["metadata"]["queueName"] for t in so["spec"]["triggers"] if t["type"] == "rabbitmq"]
    expected = {"daikai-auth-worker": ["wecom.auth"], "daikai-contact-sync": ["wecom.contacts"]}
    if scaled != expected:
        raise Failed(f"{overlay}: KEDA must scale each worker on its own queue: {scaled}")


def check_k8s_binary(overlay, name, binary, binaries):
    if binary in binaries:
        return
    crate = PENDING_BINARIES.get(binary)
    if crate is None or crate_has_binary(crate):
        raise Failed(f"{overlay}: {name} runs {binary}, which no crate declares")


# --- Prometheus and Grafana ------------------------------------------------------------------


def promql_of_rules():
    with open(os.path.join(ROOT, "deploy/prometheus/rules/daikai.rules.yml"), encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def promql_of_dashboards():
    exprs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "deploy/grafana/dashboards/*.json"))):
        with open(path, encoding="utf-8") as f:
            dashboard = json.load(f)
        panels = list(dashboard.get("panels", []))
        while panels:
            panel = panels.pop()
            panels.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    exprs.append((os.path.basename(path), panel.get("title", "?"), target["expr"]))
    return exprs


def grafana_to_promql(expr):
    for var, value in (("$__rate_interval", "5m"), ("$__interval", "1m"), ("$__range", "1h")):
        expr = expr.replace(var, value)
    if "$" in expr:
        raise Failed(f"dashboard query uses a variable the check does not know: {expr}")
    return expr


def metric_names(expr):
    names = set(re.findall(r"\b((?:daikai|ingress|rabbitmq)_[a-z0-9_]+)\b", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def check_prometheus():
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(ROOT, "deploy/prometheus/prometheus.yml"), encoding="utf-8") as f:
            config = yaml.safe_load(f)
        config["rule_files"] = [os.path.join(ROOT, "deploy/prometheus/rules/*.yml")]
        path = os.path.join(tmp, "prometheus.yml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        run(["promtool", "check", "config", path])
    out = run(["promtool", "check", "rules", "deploy/prometheus/rules/daikai.rules.yml"])
    ok("promtool check config deploy/prometheus/prometheus.yml (with its rule files); "
       f"promtool check rules: {out.strip().splitlines()[-1].strip()}")

    queries = promql_of_dashboards()
    if not queries:
        raise Failed("no dashboard query found in deploy/grafana/dashboards")
    with tempfile.TemporaryDirectory() as tmp:
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(e)} for i, (_, _, e) in enumerate(queries)]}]}
        path = os.path.join(tmp, "dashboard.rules.yml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(rules, f)
        run(["promtool", "check", "rules", path])
    for path in glob.glob(os.path.join(ROOT, "deploy/grafana/provisioning/*/*.yml")):
        with open(path, encoding="utf-8") as f:
            yaml.safe_load(f)
    ok(f"Grafana: dashboard JSON parses, its {len(queries)} queries pass promtool, provisioning parses")

    literals = source_strings()
    used = set()
    for expr in promql_of_rules() + [e for _, _, e in queries]:
        used |= metric_names(expr)
    pending = []
    for name in sorted(n for n in used if not n.startswith("rabbitmq_")):
        if name in literals:
            continue
        crate = PENDING_METRICS.get(name)
        if crate is None or crate_has_binary(crate):
            raise Failed(f"alerts or dashboard use {name}, which no service registers")
        pending.append(name)
    ok(f"the {len([n for n in used if not n.startswith('rabbitmq_')])} daikai metrics the alerts and "
       "the dashboard use are registered by the services"
       + (f"; pending until crates/contact-sync has a binary: {', '.join(pending)}" if pending else ""))
    return sorted(used)


def static():
    check_compose()
    check_dockerfile()
    check_env_example()
    check_kubernetes()
    check_prometheus()


# --- the compose smoke test ------------------------------------------------------------------


def packages():
    services = compose_config()["services"]
    binaries = crate_binaries()
    wanted = set()
    for s in services.values():
        if is_daikai(s) and s["command"][0] in binaries:
            wanted.add(binaries[s["command"][0]][1])
    print("\n".join(sorted(wanted)))


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Smoke:
    """Runs the daikai services of docker-compose.yml natively: the compose service names resolve
    to 127.0.0.1, the container paths of bind mounts to their sources in the repository, the
    machine's Postgres (a fresh database) and a scratch RabbitMQ node booted from
    deploy/rabbitmq stand in for the `postgres` and `rabbitmq` services."""

    def __init__(self, config):
        self.services = config["services"]
        self.tmp = tempfile.mkdtemp(prefix="daikai-check-deploy.")
        self.procs = {}
        self.database = f"daikai_compose_{os.getpid()}"
        self.admin_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        self.node_pid = None

    # The address map: compose host:port -> native host:port.
    def endpoints(self):
        pg = re.match(r"postgres(?:ql)?://(?:[^@/]*@)?([^:/]+):?(\d*)", self.admin_url)
        mapping = {("postgres", "5432"): (pg.group(1), pg.group(2) or "5432"),
                   ("rabbitmq", "5672"): ("127.0.0.1", str(SCRATCH_AMQP))}
        for name in self.services:
            if name not in THIRD_PARTY:
                mapping.setdefault((name, None), ("127.0.0.1", None))
        return mapping

    def native(self, value):
        """A compose value with service hosts, ports, database and mounts made native."""
        for (host, port), (nhost, nport) in self.endpoints().items():
            if port:
                value = re.sub(rf"(?<=[/@]){re.escape(host)}:{port}\b", f"{nhost}:{nport}", value)
            else:
                value = re.sub(rf"(?<=//){re.escape(host)}(?=[:/]|$)", nhost, value)
        value = re.sub(r"(postgres(?:ql)?://[^ ]*/)daikai\b", rf"\g<1>{self.database}", value)
        return value

    def mounts(self, service):
        return {v["target"]: v["source"] for v in service.get("volumes", []) if v.get("type") == "bind"}

    def environment(self, name):
        s = self.services[name]
        env = {k: self.native(str(v)) for k, v in (s.get("environment") or {}).items() if v is not None}
        for target, source in self.mounts(s).items():
            env = {k: v.replace(target, source) for k, v in env.items()}
        base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ") if k in os.environ}
        return {**base, **env}

    def command(self, name):
        s = self.services[name]
        argv = [self.native(a) for a in s["command"]]
        for target, source in self.mounts(s).items():
            argv = [a.replace(target, source) for a in argv]
        return [os.path.join(TARGET, "debug", argv[0])] + argv[1:]

    # --- the stand-ins ---

    def start_broker(self):
        for port in (SCRATCH_AMQP, SCRATCH_MGMT, SCRATCH_PROM, SCRATCH_DIST):
            if not port_free(port):
                raise Failed(f"port {port} (the scratch RabbitMQ node) is taken")
        if not shutil.which("rabbitmq-server"):
            raise Failed("the smoke test boots a scratch RabbitMQ node from deploy/rabbitmq and "
                         "needs rabbitmq-server (Debian package rabbitmq-server)")
        node = os.path.join(self.tmp, "rabbitmq")
        os.makedirs(os.path.join(node, "mnesia"))
        os.makedirs(os.path.join(node, "log"))
        rabbit = self.services["rabbitmq"]
        mounts = self.mounts(rabbit)
        shutil.copy(mounts["/etc/rabbitmq/definitions.json"], os.path.join(node, "definitions.json"))
        shutil.copy(mounts["/etc/rabbitmq/enabled_plugins"], os.path.join(node, "enabled_plugins"))
        with open(mounts["/etc/rabbitmq/conf.d/20-daikai.conf"], encoding="utf-8") as f:
            conf = f.read()
        replacements = [
            ("definitions.local.path = /etc/rabbitmq/definitions.json",
             f"definitions.local.path = {node}/definitions.json"),
            ("listeners.tcp.default = 5672", f"listeners.tcp.default = 127.0.0.1:{SCRATCH_AMQP}"),
            ("management.tcp.port = 15672", f"management.tcp.port = {SCRATCH_MGMT}"),
            ("prometheus.tcp.port = 15692", f"prometheus.tcp.port = {SCRATCH_PROM}"),
        ]
        for old, new in replacements:
            if old not in conf:
                raise Failed(f"deploy/rabbitmq/rabbitmq.conf no longer has `{old}`")
            conf = conf.replace(old, new)
        with open(os.path.join(node, "rabbitmq.conf"), "w", encoding="utf-8") as f:
            f.write(conf)
        with open(os.path.join(node, "env.conf"), "w", encoding="utf-8") as f:
            f.write(f"NODENAME={SCRATCH_NODE}\n")
        if os.geteuid() == 0:
            # rabbitmq-server drops to the rabbitmq user, which must own the node's folders.
            run(["chown", "-R", "rabbitmq:rabbitmq", node])
            os.chmod(self.tmp, 0o755)
        env = {**os.environ,
               "RABBITMQ_CONF_ENV_FILE": os.path.join(node, "env.conf"),
               "RABBITMQ_NODENAME": SCRATCH_NODE,
               "RABBITMQ_NODE_PORT": str(SCRATCH_AMQP),
               "RABBITMQ_DIST_PORT": str(SCRATCH_DIST),
               "RABBITMQ_CONFIG_FILE": os.path.join(node, "rabbitmq.conf"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(node, "enabled_plugins"),
               "RABBITMQ_MNESIA_BASE": os.path.join(node, "mnesia"),
               "RABBITMQ_LOG_BASE": os.path.join(node, "log")}
        log = open(os.path.join(self.tmp, "rabbitmq.out"), "w")
        proc = subprocess.Popen(["rabbitmq-server"], env=env, cwd=node, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.node_pid = proc
        self.wait(lambda: http_ok(f"http://127.0.0.1:{SCRATCH_PROM}/metrics"), 90,
                  "the scratch RabbitMQ node to serve /metrics", os.path.join(node, "log"))
        self.wait(lambda: "wecom.auth" in self.rabbitmqctl("list_queues", "name"), 30,
                  "definitions.json to be imported at boot", os.path.join(node, "log"))
        ok("deploy/rabbitmq: a scratch RabbitMQ node booted with rabbitmq.conf, enabled_plugins and "
           "definitions.json (imported at boot)")

    def rabbitmqctl(self, *args):
        return run(["rabbitmqctl", "-q", "-n", SCRATCH_NODE, *args[:1], "--no-table-headers", *args[1:]])

    def broker_topology(self):
        """The broker's exchanges, queues (with arguments) and bindings, comparable as text."""
        return {
            "exchanges": sorted(l for l in self.rabbitmqctl("list_exchanges", "name", "type", "durable", "arguments")
                                .splitlines() if l.startswith("wecom.")),
            "queues": sorted(self.rabbitmqctl("list_queues", "name", "type", "durable", "arguments", "policy").splitlines()),
            "bindings": sorted(self.rabbitmqctl("list_bindings", "source_name", "destination_name", "routing_key")
                               .splitlines()),
        }

    def stop_broker(self):
        if self.node_pid is None:
            return
        subprocess.run(["rabbitmqctl", "-q", "-n", SCRATCH_NODE, "stop"], capture_output=True, timeout=60)
        try:
            self.node_pid.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.node_pid.pid, signal.SIGKILL)

    def psql(self, url, sql):
        return run(["psql", url, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql])

    def create_database(self):
        self.psql(self.admin_url, f"create database {self.database}")
        ok(f"a fresh database {self.database} on this machine's Postgres stands in for the postgres service")

    def drop_database(self):
        subprocess.run(["psql", self.admin_url, "-X", "-q", "-c", f"drop database if exists {self.database} with (force)"],
                       capture_output=True)

    # --- the services ---

    def order(self, names):
        done, ordered = set(), []

        def visit(name):
            if name in done:
                return
            done.add(name)
            for dep in self.services[name].get("depends_on") or {}:
                visit(dep)
            ordered.append(name)

        for name in names:
            visit(name)
        return ordered

    def start(self, name):
        argv = self.command(name)
        log = open(os.path.join(self.tmp, f"{name}.log"), "w")
        self.procs[name] = (subprocess.Popen(argv, env=self.environment(name), cwd=ROOT, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True), log)

    def healthy(self, name):
        test = self.services[name]["healthcheck"]["test"]
        if test[:2] != ["CMD", "daikai-healthcheck"]:
            raise Failed(f"{name}: the smoke test knows only daikai-healthcheck checks, not {test}")
        args = [self.native(a) for a in test[2:]]
        result = subprocess.run([os.path.join(ROOT, "deploy/docker/daikai-healthcheck"), *args],
                                capture_output=True, timeout=15)
        return result.returncode == 0

    def wait(self, condition, seconds, what, log=None):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, (proc, _) in self.procs.items():
                if proc.poll() is not None and name not in self.finished:
                    raise Failed(f"{name} exited with {proc.returncode} while waiting for {what}:\n{self.tail(name)}")
            if condition():
                return
            time.sleep(0.5)
        raise Failed(f"timed out after {seconds} s waiting for {what}" + (f" (logs: {log})" if log else ""))

    def tail(self, name, lines=30):
        path = os.path.join(self.tmp, f"{name}.log")
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def run_services(self):
        binaries = crate_binaries()
        runnable, skipped = [], []
        for name, s in self.services.items():
            if name in THIRD_PARTY or not is_daikai(s):
                continue
            if s["command"][0] in binaries:
                runnable.append(name)
            else:
                skipped.append(name)
        for name in self.order(runnable):
            if name in THIRD_PARTY or name in skipped:
                continue
            for dep, cond in (self.services[name].get("depends_on") or {}).items():
                if dep in skipped or dep in THIRD_PARTY:
                    continue
                if cond["condition"] == "service_completed_successfully":
                    proc, _ = self.procs[dep]
                    if proc.wait(timeout=120) != 0:
                        raise Failed(f"{dep} exited with {proc.returncode}:\n{self.tail(dep)}")
            for port in sorted(self.published_ports(name)):
                if not port_free(port):
                    raise Failed(f"port {port} of {name} is taken (is scripts/run running?)")
            self.start(name)
            if name in self.one_shots():
                proc, _ = self.procs[name]
                code = proc.wait(timeout=120)
                self.finished.add(name)
                if code != 0:
                    raise Failed(f"{name} exited with {code}:\n{self.tail(name)}")
                ok(f"{name}: `{' '.join(self.services[name]['command'])}` completed")
            else:
                self.wait(lambda: self.healthy(name), 90, f"{name}'s healthcheck")
                ok(f"{name}: `{' '.join(self.services[name]['command'])}` healthy "
                   f"({' '.join(self.services[name]['healthcheck']['test'][1:])})")
        for name in skipped:
            note(f"pending: {name} ({self.services[name]['command'][0]} is not built by the workspace yet)")
        return runnable

    def one_shots(self):
        return {dep for s in self.services.values() for dep, c in (s.get("depends_on") or {}).items()
                if c.get("condition") == "service_completed_successfully"}

    def published_ports(self, name):
        ports = set()
        for value in (self.services[name].get("environment") or {}).values():
            m = re.fullmatch(r"0\.0\.0\.0:(\d+)", str(value))
            if m:
                ports.add(int(m.group(1)))
        return ports

    def stop_services(self):
        for name in reversed(list(self.procs)):
            proc, log = self.procs[name]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, (proc, log) in self.procs.items():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()

    # --- what the stack must show ---

    def check_demo(self, runnable):
        env = self.environment("auth-worker")
        url = env["DATABASE_URL"]
        cli = os.path.join(TARGET, "debug", "daikai")

        def active():
            out = subprocess.run([cli, "tenants", "list", "--status", "active"], env={**env}, capture_output=True,
                                 text=True).stdout
            return "wwdemocorp" in out

        self.wait(active, 60, "the demo tenant wwdemocorp to be active")
        ok("the demo corp authorized itself: `daikai tenants list --status active` shows wwdemocorp")
        if "contact-sync" in runnable:
            seen = ["nothing"]

            def mirrored():
                seen[0] = self.psql(url, "select count(*) from directory_users u join tenants t on t.id = u.tenant_id "
                                         "where t.corp_id = 'wwdemocorp' and u.deleted_at is null").strip()
                return seen[0] == "1000"
            try:
                self.wait(mirrored, 120, "contact sync to mirror the demo corp's 1,000 members")
            except Failed as e:
                raise Failed(f"{e}; directory_users holds {seen[0]} of them") from None
            ok("contact sync mirrored the demo corp's directory: 1,000 members in directory_users")
        else:
            note("pending: the demo corp's directory (contact-sync is not built yet)")

    def check_metrics(self, runnable, used):
        exported = set()
        for name in runnable:
            if name in self.one_shots():
                continue
            for value in (self.services[name].get("environment") or {}).values():
                m = re.fullmatch(r"0\.0\.0\.0:(\d+)", str(value))
                if m and name != "wecom-sim":
                    text = http_get(f"http://127.0.0.1:{m.group(1)}/metrics")
                    names = {re.sub(r"_(bucket|sum|count)$", "", l.split()[2]) for l in text.splitlines()
                             if l.startswith("# TYPE ")}
                    exported |= names
        broker = http_get(f"http://127.0.0.1:{SCRATCH_PROM}/metrics")
        broker_names = {l.split()[2] for l in broker.splitlines() if l.startswith("# TYPE ")}
        missing = [n for n in used if n.startswith("rabbitmq_") and n not in broker_names]
        if missing:
            raise Failed(f"alerts or dashboard use RabbitMQ metrics the broker does not serve: {missing}")
        seen = [n for n in used if n in exported]
        unseen = [n for n in used if not n.startswith("rabbitmq_") and n not in exported]
        ok(f"scraped /metrics: {len(seen)} of the metrics the alerts and dashboard use are exported now"
           f" (the others appear with their first event: {', '.join(unseen) or 'none'}); every RabbitMQ"
           " metric they use is served by the broker with deploy/rabbitmq's configuration")

    def run(self, used):
        self.finished = set()
        try:
            self.start_broker()
            before = self.broker_topology()
            self.create_database()
            runnable = self.run_services()
            self.check_demo(runnable)
            after = self.broker_topology()
            if before != after:
                raise Failed("the services declared a topology other than deploy/rabbitmq/definitions.json:\n"
                             f"definitions: {json.dumps(before, indent=1)}\nservices: {json.dumps(after, indent=1)}")
            ok(f"the services declared exactly the topology of definitions.json ({len(after['queues'])} quorum "
               f"queues, {len(after['bindings'])} bindings): no new name, no other argument")
            self.check_metrics(runnable, used)
        except Failed:
            for name in self.procs:
                print(f"--- {name} (last lines) ---\n{self.tail(name)}", file=sys.stderr)
            raise
        finally:
            self.stop_services()
            self.stop_broker()
            self.drop_database()
            shutil.rmtree(self.tmp, ignore_errors=True)


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status == 200
    except OSError:
        return False


def http_get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def smoke():
    config = compose_config()
    used = set()
    for expr in promql_of_rules() + [e for _, _, e in promql_of_dashboards()]:
        used |= metric_names(expr)
    Smoke(config).run(sorted(used))
    ok("compose smoke test: every built service of docker-compose.yml ran with compose's environment")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        if mode == "static":
            static()
        elif mode == "packages":
            packages()
        elif mode == "smoke":
            smoke()
        else:
            sys.exit(__doc__)
    except Failed as e:
        print(f"check-deploy: FAILED: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
