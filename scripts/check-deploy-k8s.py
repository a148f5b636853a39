"""The checks of scripts/check-deploy-k8s, run by it inside its own venv
(kubernetes-validate and PyYAML): the Kubernetes manifests of a directory
against the bundled Kubernetes schemas, strictly, and against what hulykvs
needs of them (SPEC §6, §7, §14, §20). One line per check, `ok: NAME: …`,
`FAIL: NAME: …` or `skip: NAME: …`, then `kubernetes: N passed, N failed`;
exit 1 when any failed.

  check-deploy-k8s.py [--kubectl BIN] [--hulykvs BIN] [--self-test] DIR

--self-test then breaks a copy of DIR once per check, as a person editing
it might, and asserts that the check fails on it (exit 1 and its FAIL line).
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from kubernetes_validate import utils as schemas

try:
    import tomllib
except ModuleNotFoundError:  # Python before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
# The oldest Kubernetes release the manifests promise to suit, and the newest
# the validator bundles.
VERSIONS = ["1.30", schemas.major_minor(schemas.latest_version())]
IMAGE = "hardcoreeng/hulykvs"
PORT = 8094
UID = 10001
DATA_DIR = "/var/lib/hulykvs"
SECRET_VARS = {"HULY_TOKEN_SECRET", "HULY_ENCRYPTION_KEYS", "HULY_DB_CONNECTION"}
PLACEHOLDER = "REPLACE_ME"


class Failed(Exception):
    """A check's finding: what is wrong, in one line."""


def need(condition, message):
    if not condition:
        raise Failed(message)


# --- Loading --------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """YAML as the API server's decoder takes it: a key twice in one mapping is
    an error, not the last one winning silently."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class Manifests:
    """The resources of a directory's *.yaml files, and the files that did not load."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.files = {}  # file name -> [resource]
        self.errors = {}  # file name -> why it did not load
        for path in sorted(self.dir.glob("*.yaml")) + sorted(self.dir.glob("*.yml")):
            try:
                docs = [d for d in yaml.load_all(path.read_text(), Loader=StrictLoader) if d]
                need(all(isinstance(d, dict) for d in docs), "a document is not a mapping")
                self.files[path.name] = docs
            except (yaml.YAMLError, Failed) as e:
                self.errors[path.name] = " ".join(str(e).split())

    def all(self):
        return [(f, d) for f, docs in self.files.items() for d in docs]

    def of_kind(self, kind):
        return [d for _, d in self.all() if d.get("kind") == kind]

    def one(self, kind):
        found = self.of_kind(kind)
        need(len(found) == 1, f"{len(found)} {kind} resources in {self.dir}, not 1")
        return found[0]

    def named(self, kind, name):
        for d in self.of_kind(kind):
            if d.get("metadata", {}).get("name") == name:
                return d
        raise Failed(f"no {kind} named {name!r} in {self.dir}")


def pod(workload):
    return workload.get("spec", {}).get("template", {}).get("spec", {})


def containers(workload):
    return pod(workload).get("containers", [])


def env_of(container):
    """A container's plain env values by name; values from a Secret show as None."""
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def duration_seconds(text):
    """`30s`, `2m`, `1500ms`, as HULY_* durations are written."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(text))
    need(m, f"{text!r} is not a duration")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return float(m.group(1)) * scale


def port_number(container, port):
    """The number a probe or Service's port names, by number or by name."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    raise Failed(f"port {port!r} is not a port of container {container.get('name')!r}")


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def readme_variables(readme):
    """Every variable the README's tables name in their first column."""
    names = set()
    for line in readme.read_text().splitlines():
        if line.startswith("|"):
            first = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first))
    return names


def source_variables(src):
    """The variables the server side reads: each `env = "…"` of a clap
    argument in src/, less the command-line client's, the bench's and the drill's."""
    names = set()
    for path in src.rglob("*.rs"):
        if {"client", "bench", "check"} & set(path.relative_to(src).parts[:-1]):
            continue
        names.update(re.findall(r'env = "([A-Z][A-Z0-9_]*)"', path.read_text()))
    return names


def cargo_version():
    text = (ROOT / "Cargo.toml").read_text()
    return tomllib.loads(text)["package"]["version"]


# --- The checks -------------------------------------------------------------------
# Each returns the line's detail, or raises Failed.


def check_yaml(m):
    need(not m.errors, "; ".join(f"{f}: {why}" for f, why in m.errors.items()))
    need(m.files, f"no *.yaml in {m.dir}")
    return f"{len(m.files)} files parse, no key twice in a mapping"


def check_schema(name, docs):
    shown = []
    for doc in docs:
        what = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        for version in VERSIONS:
            try:
                schemas.validate(doc, version, strict=True)
            except schemas.ValidationError as e:
                path = ".".join(str(p) for p in e.path) or "(top)"
                raise Failed(f"{name}: {what}, Kubernetes {version}: {path}: {e.message}")
            except (schemas.SchemaNotFoundError, schemas.InvalidSchemaError) as e:
                raise Failed(f"{name}: {e.message}")
        shown.append(what)
    return f"{name}: {', '.join(shown)} valid against Kubernetes {' and '.join(VERSIONS)}, unknown fields refused"


def check_kustomization(m):
    k = m.one("Kustomization")
    need(
        k.get("apiVersion") == "kustomize.config.k8s.io/v1beta1",
        "apiVersion is not kustomize.config.k8s.io/v1beta1",
    )
    listed = k.get("resources", [])
    need(len(listed) == len(set(listed)), "a resource is listed twice")
    own = next(f for f, docs in m.files.items() if k in docs)
    files = set(m.files) | set(m.errors)
    files.discard(own)
    missing = sorted(files - set(listed))
    extra = sorted(set(listed) - files)
    need(not missing, f"{own} does not list {', '.join(missing)}")
    need(not extra, f"{own} lists {', '.join(extra)}, not in {m.dir}")
    return f"{own} lists every manifest: {', '.join(listed)}"


def check_render(m, kubectl):
    version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True).stdout
    shown = re.search(r"v\d+\.\d+\.\d+", version)
    run = subprocess.run([kubectl, "kustomize", str(m.dir)], capture_output=True, text=True)
    need(run.returncode == 0, f"kubectl kustomize: {' '.join(run.stderr.split())}")
    rendered = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(run.stdout) if d}
    sources = {(d["kind"], d["metadata"]["name"]) for _, d in m.all() if d.get("kind") != "Kustomization"}
    need(
        rendered == sources, f"kubectl kustomize renders {sorted(rendered)}, the files hold {sorted(sources)}"
    )
    return f"kubectl {shown.group(0) if shown else '?'} kustomize renders the {len(rendered)} resources"


def check_readme(readme, src):
    documented = readme_variables(readme)
    read = source_variables(src)
    need(read, f'no `env = "…"` argument in {src}')
    missing = sorted(read - documented)
    need(not missing, f"{readme.name}'s tables miss {', '.join(missing)}, which hulykvs reads")
    return f"{readme.name}'s tables name all {len(read)} variables serve and migrate read ({src.name}/)"


def check_env(m, readme):
    known = readme_variables(readme)
    need(known, f"no variable in the tables of {readme}")
    named = set()
    for workload in m.of_kind("Deployment") + m.of_kind("Job"):
        for c in containers(workload):
            named.update(e["name"] for e in c.get("env", []))
            for source in c.get("envFrom", []):
                ref = source.get("secretRef") or source.get("configMapRef")
                kind = "Secret" if "secretRef" in source else "ConfigMap"
                target = m.named(kind, ref["name"])
                named.update(target.get("data", {}))
                named.update(target.get("stringData", {}))
    need(named, "no environment variable in any container")
    unknown = sorted(named - known)
    need(not unknown, f"not in README.md's tables: {', '.join(unknown)}")
    return f"{len(named)} variables, each in README.md's tables: {', '.join(sorted(named))}"


def check_references(m):
    checked = 0
    for workload in m.of_kind("Deployment") + m.of_kind("Job"):
        for c in containers(workload):
            for e in c.get("env", []):
                source = e.get("valueFrom", {})
                for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    if field in source:
                        ref = source[field]
                        target = m.named(kind, ref["name"])
                        keys = set(target.get("data", {})) | set(target.get("stringData", {}))
                        # An optional key may be left out of the Secret (set only during a rotation).
                        need(
                            ref["key"] in keys or ref.get("optional") is True,
                            f"{e['name']}: {kind} {ref['name']!r} has no key {ref['key']!r}",
                        )
                        checked += 1
        for v in pod(workload).get("volumes", []):
            if "configMap" in v:
                m.named("ConfigMap", v["configMap"]["name"])
                checked += 1
            if "secret" in v:
                m.named("Secret", v["secret"]["secretName"])
                checked += 1
    need(checked, "no Secret or ConfigMap is referenced")
    return f"{checked} references to Secret and ConfigMap keys, each defined here"


def server(m):
    """The Deployment and its hulykvs container."""
    d = m.one("Deployment")
    cs = containers(d)
    need(len(cs) == 1, f"the Deployment has {len(cs)} containers, not 1")
    return d, cs[0]


def check_port(m):
    _, c = server(m)
    ports = [p for p in c.get("ports", []) if p.get("containerPort") == PORT]
    need(ports, f"the container does not expose port {PORT}")
    need(ports[0].get("name") == "http", f"port {PORT} is named {ports[0].get('name')!r}, not 'http'")
    bind = env_of(c).get("HULY_BIND_PORT")
    need(bind in (None, str(PORT)), f"HULY_BIND_PORT is {bind!r}, the port is {PORT}")
    return f"container port {PORT} named http, where serve listens"


def check_probes(m):
    _, c = server(m)
    want = {"livenessProbe": "/livez", "readinessProbe": "/readyz", "startupProbe": "/livez"}
    found = []
    for probe, path in want.items():
        if probe not in c:
            need(probe == "startupProbe", f"no {probe}")
            continue
        get = c[probe].get("httpGet")
        need(get, f"{probe} is not an HTTP GET")
        need(get.get("path") == path, f"{probe} asks {get.get('path')!r}, not {path}")
        number = port_number(c, get.get("port"))
        need(number == PORT, f"{probe} asks port {get.get('port')!r} ({number}), not {PORT}")
        found.append(f"{probe.removesuffix('Probe')} {path}")
    return f"{', '.join(found)}, on port {PORT}"


def check_service(m):
    d, c = server(m)
    s = m.one("Service")
    spec = s.get("spec", {})
    need(spec.get("type", "ClusterIP") == "ClusterIP", f"type {spec.get('type')}, not ClusterIP")
    ports = [p for p in spec.get("ports", []) if p.get("port") == PORT]
    need(ports, f"no Service port {PORT}")
    target = ports[0].get("targetPort", PORT)
    number = port_number(c, target)
    need(number == PORT, f"targetPort {target!r} ({number}) is not the container's {PORT}")
    labels = d["spec"]["template"]["metadata"].get("labels", {})
    need(labels_match(spec.get("selector"), labels), "its selector does not select the Deployment's pods")
    for job in m.of_kind("Job"):
        job_labels = job["spec"]["template"]["metadata"].get("labels", {})
        need(
            not labels_match(spec.get("selector"), job_labels),
            "its selector also selects the migrate Job's pod",
        )
    return f"ClusterIP port {PORT} → targetPort {target!r} ({PORT}), selects the Deployment's pods only"


def check_rollout(m):
    d, _ = server(m)
    spec = d["spec"]
    replicas = spec.get("replicas", 1)
    need(replicas >= 2, f"replicas: {replicas}, not 2 or more")
    strategy = spec.get("strategy", {})
    need(strategy.get("type", "RollingUpdate") == "RollingUpdate", f"strategy {strategy.get('type')}")
    rolling = strategy.get("rollingUpdate", {})
    unavailable = rolling.get("maxUnavailable", "25%")
    need(unavailable in (0, "0%"), f"maxUnavailable: {unavailable!r}: a rollout drops capacity")
    need(rolling.get("maxSurge", "25%") not in (0, "0%"), "maxSurge 0 with maxUnavailable 0 never rolls")
    return f"{replicas} replicas, a rolling update with maxUnavailable 0"


def check_pdb(m):
    d, _ = server(m)
    p = m.one("PodDisruptionBudget")
    spec = p.get("spec", {})
    labels = d["spec"]["template"]["metadata"].get("labels", {})
    need(
        labels_match(spec.get("selector", {}).get("matchLabels"), labels),
        "its selector does not select the Deployment's pods",
    )
    replicas = d["spec"].get("replicas", 1)
    if "minAvailable" in spec:
        need(isinstance(spec["minAvailable"], int), "minAvailable is not a count")
        need(
            1 <= spec["minAvailable"] < replicas,
            f"minAvailable {spec['minAvailable']} of {replicas} replicas: a drain blocks, or nothing is kept",
        )
        return f"minAvailable {spec['minAvailable']} of {replicas} replicas"
    need(
        spec.get("maxUnavailable") not in (None, 0, "0%"), "neither minAvailable nor a maxUnavailable above 0"
    )
    return f"maxUnavailable {spec['maxUnavailable']} of {replicas} replicas"


def check_security(m, kind):
    workloads = m.of_kind(kind)
    need(workloads, f"no {kind}")
    for w in workloads:
        p = pod(w).get("securityContext", {})
        for field in ("runAsUser", "runAsGroup", "fsGroup"):
            need(p.get(field) == UID, f"pod securityContext.{field} is {p.get(field)!r}, not {UID}")
        for c in containers(w) + pod(w).get("initContainers", []):
            s = c.get("securityContext", {})
            name = c.get("name")
            need(s.get("runAsNonRoot", p.get("runAsNonRoot")) is True, f"{name}: runAsNonRoot is not true")
            need(s.get("runAsUser", UID) == UID, f"{name}: runAsUser is not {UID}")
            need(s.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem is not true")
            need(s.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation is not false")
            need(not s.get("privileged"), f"{name}: privileged")
            caps = s.get("capabilities", {})
            need("ALL" in caps.get("drop", []), f"{name}: capabilities do not drop ALL")
            need(not caps.get("add"), f"{name}: adds capabilities {caps.get('add')}")
            seccomp = s.get("seccompProfile", p.get("seccompProfile", {})).get("type")
            need(seccomp == "RuntimeDefault", f"{name}: seccompProfile is {seccomp!r}, not RuntimeDefault")
    return f"uid/gid/fsGroup {UID}, runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, no capabilities, seccomp RuntimeDefault"


def writable_mounts(workload, container):
    volumes = {v["name"]: v for v in pod(workload).get("volumes", [])}
    return {
        mount["mountPath"]: volumes.get(mount["name"], {})
        for mount in container.get("volumeMounts", [])
        if not mount.get("readOnly")
    }


def check_volumes(m):
    d, c = server(m)
    mounts = writable_mounts(d, c)
    for path in (DATA_DIR, "/tmp"):
        need(path in mounts, f"nothing writable is mounted at {path} (the root filesystem is read-only)")
        need("emptyDir" in mounts[path], f"{path} is not an emptyDir")
    for job in m.of_kind("Job"):
        for jc in containers(job):
            need(
                "emptyDir" in writable_mounts(job, jc).get("/tmp", {}),
                f"the Job's {jc.get('name')} has no emptyDir at /tmp",
            )
    return f"emptyDir at {DATA_DIR} and /tmp (the Job: /tmp)"


def check_settings(m):
    _, c = server(m)
    env = env_of(c)
    require = (env.get("HULY_REQUIRE_SECRET") or "").lower()
    need(
        require in ("true", "1", "yes", "on"),
        f"HULY_REQUIRE_SECRET is {env.get('HULY_REQUIRE_SECRET')!r}, not true",
    )
    need(env.get("HULY_LOG_FORMAT") == "json", f"HULY_LOG_FORMAT is {env.get('HULY_LOG_FORMAT')!r}, not json")
    for workload in m.of_kind("Deployment") + m.of_kind("Job"):
        for wc in containers(workload):
            for e in wc.get("env", []):
                if e["name"] in SECRET_VARS:
                    need("secretKeyRef" in e.get("valueFrom", {}), f"{e['name']} is not taken from a Secret")
    for name in sorted(SECRET_VARS):
        need(name in env, f"{name} is not set")
    return f"HULY_REQUIRE_SECRET=true, HULY_LOG_FORMAT=json, {', '.join(sorted(SECRET_VARS))} from the Secret"


def check_shutdown(m):
    d, c = server(m)
    grace = pod(d).get("terminationGracePeriodSeconds", 30)
    timeout = duration_seconds(env_of(c).get("HULY_SHUTDOWN_TIMEOUT") or "30s")
    pre = c.get("lifecycle", {}).get("preStop", {})
    sleep = pre.get("sleep", {}).get("seconds", 0)
    need(
        grace > sleep + timeout,
        f"terminationGracePeriodSeconds {grace} is not above preStop {sleep}s + HULY_SHUTDOWN_TIMEOUT {timeout:g}s",
    )
    return f"terminationGracePeriodSeconds {grace} > preStop {sleep}s + HULY_SHUTDOWN_TIMEOUT {timeout:g}s"


def acl_source(m):
    """The ConfigMap and key HULY_ACL_FILE is read from."""
    d, c = server(m)
    path = env_of(c).get("HULY_ACL_FILE")
    need(path, "HULY_ACL_FILE is not set")
    volumes = {v["name"]: v for v in pod(d).get("volumes", [])}
    for mount in c.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        need(
            "subPath" not in mount,
            f"{mount['mountPath']} is mounted with subPath: an edited ConfigMap never reaches it",
        )
        source = volumes.get(mount["name"], {}).get("configMap")
        need(source, f"{mount['mountPath']} is not a ConfigMap volume")
        cm = m.named("ConfigMap", source["name"])
        relative = path[len(prefix) :]
        items = {i["path"]: i["key"] for i in source.get("items", [])}
        key = items.get(relative, relative if not items else None)
        need(key in cm.get("data", {}), f"ConfigMap {source['name']!r} has no key for {relative!r}")
        return path, source["name"], key, cm["data"][key]
    raise Failed(f"HULY_ACL_FILE={path} is under no volume mount")


def check_acl_file(m):
    path, name, key, _ = acl_source(m)
    return f"HULY_ACL_FILE={path} is key {key!r} of ConfigMap {name!r}, mounted without subPath"


def acl_rules(m):
    _, name, key, text = acl_source(m)
    try:
        policy = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise Failed(f"ConfigMap {name!r} key {key!r} is not TOML: {e}")
    extra = set(policy) - {"allow"}
    need(not extra, f"unknown tables {sorted(extra)} (only [[allow]])")
    rules = policy.get("allow")
    need(isinstance(rules, list) and rules, "no [[allow]] rule")
    for n, rule in enumerate(rules, 1):
        unknown = set(rule) - {"service", "account", "namespaces", "access"}
        need(not unknown, f"rule {n}: unknown fields {sorted(unknown)}")
        need(rule.get("service") or rule.get("account"), f"rule {n} names neither a service nor an account")
        need(
            rule.get("access") in ("read", "read-write"),
            f"rule {n}: access {rule.get('access')!r} is neither read nor read-write",
        )
        globs = rule.get("namespaces")
        need(
            isinstance(globs, list) and globs and all(isinstance(g, str) and g for g in globs),
            f"rule {n}: namespaces is not a list of non-empty globs",
        )
    return rules


def check_acl_policy(m):
    rules = acl_rules(m)
    who = sorted({r.get("service") or r.get("account") for r in rules})
    return f"TOML with {len(rules)} [[allow]] rules, each well-formed ({', '.join(who)})"


def check_acl_with_hulykvs(m, binary):
    *_, text = acl_source(m)
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "acl.toml"
        policy.write_text(text)

        def ask(args, want, code, what):
            run = subprocess.run(
                [binary, "acl", "check", "--file", str(policy), *args], capture_output=True, text=True
            )
            said = (run.stdout + run.stderr).strip().splitlines()
            need(
                run.returncode == code and run.stdout.startswith(want),
                f"{what}: acl check {' '.join(args)}: exit {run.returncode}: {said[0] if said else '(nothing)'}",
            )

        # First whether it loads at all, in hulykvs's own words.
        ask(["--service", "no-rule-names-this", "x", "read"], "denied:", 1, "a service no rule names")
        rules = acl_rules(m)
        for n, rule in enumerate(rules, 1):
            who = ["--service", rule["service"]] if rule.get("service") else []
            who += ["--account", rule["account"]] if rule.get("account") else []
            access = "write" if rule["access"] == "read-write" else "read"
            ask([*who, rule["namespaces"][0].replace("*", "x"), access], "allowed:", 0, f"rule {n}")
    return f"{binary} acl check loads it; each of the {len(rules)} rules grants its own, an unnamed service is denied"


def check_migrate_job(m):
    d, c = server(m)
    jobs = m.of_kind("Job")
    need(len(jobs) == 1, f"{len(jobs)} Jobs, not 1")
    job = jobs[0]
    spec = job["spec"]
    cs = containers(job)
    need(len(cs) == 1, f"the Job has {len(cs)} containers, not 1")
    argv = cs[0].get("command", []) + cs[0].get("args", [])
    if cs[0].get("command"):
        need(Path(argv[0]).name == "hulykvs", f"the Job runs {argv[0]!r}, not hulykvs")
        argv = argv[1:]
    need(argv[:1] == ["migrate"], f"the Job runs {argv}, not hulykvs migrate")
    need("--status" not in argv, "the Job only lists migrations (--status)")
    need("backoffLimit" in spec, "no backoffLimit")
    need("ttlSecondsAfterFinished" in spec, "no ttlSecondsAfterFinished")
    need(pod(job).get("restartPolicy") in ("Never", "OnFailure"), "restartPolicy is not Never or OnFailure")
    db = lambda container: [e for e in container.get("env", []) if e["name"].startswith("HULY_DB_")]
    need(db(cs[0]) == db(c), "the Job's HULY_DB_* settings differ from the Deployment's")
    return f"runs `hulykvs {' '.join(argv)}`, backoffLimit {spec['backoffLimit']}, ttlSecondsAfterFinished {spec['ttlSecondsAfterFinished']}, the Deployment's HULY_DB_* settings"


def check_image(m):
    want = f"{IMAGE}:v{cargo_version()}"
    for workload in m.of_kind("Deployment") + m.of_kind("Job"):
        for c in containers(workload) + pod(workload).get("initContainers", []):
            need(
                c.get("image") == want,
                f"{workload['kind']} {c.get('name')} runs {c.get('image')!r}, not {want} (Cargo.toml's version)",
            )
    return f"{want} in the Deployment and the Job"


def check_secret(m):
    s = m.one("Secret")
    need(not s.get("data"), "values in data: (base64) hide what they hold; use stringData")
    values = s.get("stringData", {})
    need(values, "no stringData")
    real = sorted(k for k, v in values.items() if PLACEHOLDER not in str(v))
    need(
        not real, f"{', '.join(real)} hold a value without {PLACEHOLDER}: a real secret must not be committed"
    )
    return f"stringData {', '.join(sorted(values))}, each a {PLACEHOLDER} placeholder"


# --- Running ------------------------------------------------------------------------


def run_checks(directory, kubectl, hulykvs, readme, src):
    m = Manifests(directory)
    checks = [("yaml", lambda: check_yaml(m))]
    for name, docs in m.files.items():
        if not any(d.get("kind") == "Kustomization" for d in docs):
            checks.append(("schema", lambda name=name, docs=docs: check_schema(name, docs)))
    checks += [
        ("kustomization", lambda: check_kustomization(m)),
        ("kustomize render", (lambda: check_render(m, kubectl)) if kubectl else "no kubectl on PATH"),
        ("readme", lambda: check_readme(readme, src)),
        ("env", lambda: check_env(m, readme)),
        ("references", lambda: check_references(m)),
        ("port", lambda: check_port(m)),
        ("probes", lambda: check_probes(m)),
        ("service", lambda: check_service(m)),
        ("rollout", lambda: check_rollout(m)),
        ("pdb", lambda: check_pdb(m)),
        ("security: Deployment", lambda: check_security(m, "Deployment")),
        ("security: Job", lambda: check_security(m, "Job")),
        ("volumes", lambda: check_volumes(m)),
        ("settings", lambda: check_settings(m)),
        ("shutdown", lambda: check_shutdown(m)),
        ("acl file", lambda: check_acl_file(m)),
        ("acl policy", lambda: check_acl_policy(m)),
        (
            "acl check",
            (
                (lambda: check_acl_with_hulykvs(m, hulykvs))
                if hulykvs
                else "no hulykvs binary at target/release or target/debug (build it to check the policy with it)"
            ),
        ),
        ("migrate job", lambda: check_migrate_job(m)),
        ("image", lambda: check_image(m)),
        ("secret", lambda: check_secret(m)),
    ]
    passed = failed = 0
    for name, check in checks:
        if isinstance(check, str):
            print(f"skip: {name}: {check}", flush=True)
            continue
        try:
            detail = check()
            print(f"ok: {name}: {detail}", flush=True)
            passed += 1
        except (Failed, KeyError, TypeError, AttributeError, IndexError) as e:
            why = str(e) if isinstance(e, Failed) else f"malformed manifest ({type(e).__name__}: {e})"
            print(f"FAIL: {name}: {why}", flush=True)
            failed += 1
    return passed, failed


# Each: the file, the text it holds, what replaces it, the check that must then
# fail, what the breakage is; and flags: "all" (every occurrence, not only the
# first), "needs hulykvs" (only that binary sees it).
# fmt: off
BREAKAGES = [
    ("deployment.yaml", "replicas: 2", "replicas: 2\n  replicas: 3", "yaml", "a key appears twice"),
    ("deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", "schema", "a field is misspelt"),
    ("service.yaml", "targetPort: http", "targetPort: http\n      nodePort: http", "schema", "a field has the wrong type"),
    ("kustomization.yaml", "  - pdb.yaml\n", "", "kustomization", "a manifest is not listed"),
    ("README.md", "| `HULY_LOG_FORMAT` |", "| HULY_LOG_FORMAT |", "readme", "a variable hulykvs reads is missing from the README"),
    ("deployment.yaml", "- name: HULY_LOG_FORMAT", "- name: HULY_LOG_FMT", "env", "a variable hulykvs does not know is set"),
    ("deployment.yaml", "key: HULY_TOKEN_SECRET", "key: HULY_TOKEN", "references", "a Secret key that does not exist is named"),
    ("deployment.yaml", "containerPort: 8094", "containerPort: 8080", "port", "the container port is not 8094"),
    ("deployment.yaml", "path: /readyz", "path: /livez", "probes", "readiness asks /livez"),
    ("deployment.yaml", "livenessProbe:\n            httpGet:\n              path: /livez", "livenessProbe:\n            httpGet:\n              path: /readyz", "probes", "liveness asks /readyz"),
    ("service.yaml", "targetPort: http", "targetPort: 8080", "service", "the Service targets another port"),
    ("service.yaml", "component: server\n  ports", "component: migrate\n  ports", "service", "the Service selects the migrate Job"),
    ("deployment.yaml", "replicas: 2", "replicas: 1", "rollout", "one replica"),
    ("deployment.yaml", "maxUnavailable: 0", "maxUnavailable: 1", "rollout", "a rollout may drop a pod first"),
    ("pdb.yaml", "minAvailable: 1", "minAvailable: 2", "pdb", "the budget blocks every drain"),
    ("deployment.yaml", "runAsNonRoot: true", "runAsNonRoot: false", "security: Deployment", "runAsNonRoot is false", "all"),
    ("deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "security: Deployment", "the root filesystem is writable"),
    ("deployment.yaml", 'drop: ["ALL"]', 'drop: ["NET_RAW"]', "security: Deployment", "capabilities are kept"),
    ("deployment.yaml", "type: RuntimeDefault", "type: Unconfined", "security: Deployment", "seccomp is off"),
    ("migrate-job.yaml", "runAsUser: 10001", "runAsUser: 0", "security: Job", "the Job runs as root"),
    ("deployment.yaml", "mountPath: /tmp", "mountPath: /scratch", "volumes", "/tmp is not writable"),
    ("deployment.yaml", "value: json", "value: text", "settings", "logs are not JSON"),
    ("deployment.yaml", 'value: "true"', 'value: "false"', "settings", "the default secret is accepted"),
    ("deployment.yaml", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30", "shutdown", "the kubelet kills before requests finish"),
    ("deployment.yaml", "value: /etc/hulykvs/acl.toml", "value: /etc/hulykvs/policy.toml", "acl file", "HULY_ACL_FILE names a file the ConfigMap lacks"),
    ("acl-policy.yaml", "[[allow]]", "[[allowed]]", "acl policy", "no [[allow]] rule", "all"),
    ("acl-policy.yaml", '"calendar:*"]', '"calendar:*"', "acl policy", "the policy is not TOML"),
    ("acl-policy.yaml", 'access = "read-write"', 'access = "write"', "acl policy", "an access is neither read nor read-write"),
    ("acl-policy.yaml", 'service = "telegram"', 'account = "telegram"', "acl check", "a rule names an account that is not a UUID", "needs hulykvs"),
    ("migrate-job.yaml", 'args: ["migrate"]', 'args: ["serve"]', "migrate job", "the Job runs serve"),
    ("migrate-job.yaml", "ttlSecondsAfterFinished: 600\n", "", "migrate job", "the Job is never cleaned up"),
    ("migrate-job.yaml", "image: hardcoreeng/hulykvs:", "image: hardcoreeng/hulykvs:old-", "image", "the Job runs another image"),
    ("secret.yaml", "REPLACE_ME_TOKEN_SECRET", "a-real-secret", "secret", "a real secret is committed"),
]
# fmt: on


def self_test(directory, hulykvs, readme, src):
    """Breaks a copy of the directory (and of README.md) once per BREAKAGES
    entry and runs this script on it: each must exit 1 with a FAIL line for
    its check."""
    passed = failed = 0
    for file, old, new, check, what, *flags in BREAKAGES:
        if "needs hulykvs" in flags and not hulykvs:
            print(f"skip: self-test: {check} when {what}: no hulykvs binary", flush=True)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "kubernetes"
            shutil.copytree(directory, copy)
            shutil.copy(readme, Path(tmp) / "README.md")
            target = Path(tmp) / file if file == "README.md" else copy / file
            text = target.read_text() if target.exists() else ""
            if old not in text:
                print(f"FAIL: self-test: {file} no longer holds {old!r} to break for {check!r}", flush=True)
                failed += 1
                continue
            target.write_text(text.replace(old, new, -1 if "all" in flags else 1))
            args = [
                sys.executable,
                __file__,
                str(copy),
                "--readme",
                str(Path(tmp) / "README.md"),
                "--src",
                str(src),
            ]
            run = subprocess.run(
                args + (["--hulykvs", hulykvs] if hulykvs else []), capture_output=True, text=True
            )
            failures = [line for line in run.stdout.splitlines() if line.startswith("FAIL: ")]
            if run.returncode == 1 and any(line.startswith(f"FAIL: {check}:") for line in failures):
                print(f"ok: self-test: {check} fails when {what} ({file})", flush=True)
                passed += 1
            else:
                found = failures or [f"no FAIL line; {run.stderr.strip()[-300:]}"]
                print(
                    f"FAIL: self-test: {check} did not fail when {what} ({file}): exit {run.returncode}, {found}",
                    flush=True,
                )
                failed += 1
    return passed, failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--kubectl", help="kubectl to render the kustomization with")
    parser.add_argument("--hulykvs", help="hulykvs binary to check the ACL policy with")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument(
        "--src", type=Path, default=ROOT / "src", help="the sources, for the variables hulykvs reads"
    )
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    passed, failed = run_checks(args.dir, args.kubectl, args.hulykvs, args.readme, args.src)
    if args.self_test:
        more = self_test(args.dir, args.hulykvs, args.readme, args.src)
        passed, failed = passed + more[0], failed + more[1]
    print(f"kubernetes: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
