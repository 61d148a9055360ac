"""Cross-checks of deploy/ against itself and against lethe's code.

Run by deploy/validate with the validators' virtualenv (PyYAML,
dockerfile-parse, crossplane and docker-compose installed). The schema
validators proper (Compose spec, Kubernetes OpenAPI, hadolint) run from
deploy/validate; this file checks what no schema knows: that the Dockerfile,
the compose file, the nginx config and the Kubernetes manifests agree with
each other and with the settings, routes and commands lethe really has.

Usage: python validate_checks.py REPO_ROOT
Prints one line per check; exits 1 if any failed.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import crossplane
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

failures: list[str] = []


def check(desc: str, ok: bool, detail: str = "") -> bool:
    if ok:
        print(f"  ok    {desc}")
    else:
        print(f"  FAIL  {desc}" + (f": {detail}" if detail else ""))
        failures.append(desc)
    return ok


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


# --------------------------------------------------------------------------
# What lethe's code says


def code_settings() -> dict[str, str]:
    """SETTINGS in src/config.rs: name -> default."""
    text = (ROOT / "src/config.rs").read_text()
    m = re.search(r"pub const SETTINGS[^=]*=\s*&\[(.*?)\n\];", text, re.S)
    if not m:
        return {}
    return dict(re.findall(r'\(\s*"(LETHE_[A-Z0-9_]+)",\s*"([^"]*)"', m.group(1)))


def code_shutdown_grace() -> int | None:
    text = (ROOT / "src/config.rs").read_text()
    m = re.search(r"SHUTDOWN_GRACE: Duration = Duration::from_secs\((\d+)\)", text)
    return int(m.group(1)) if m else None


def code_routes() -> set[str]:
    """The health routes in lethe's route table (src/http/routes.rs)."""
    text = (ROOT / "src/http/routes.rs").read_text()
    return set(re.findall(r'\[Api\] "(/[a-z]+z)" => \{ GET ', text))


def code_commands() -> set[str]:
    """Subcommands of `lethe` (clap derives kebab-case names)."""
    text = (ROOT / "src/cli.rs").read_text()
    m = re.search(r"pub enum Command \{(.*?)\n\}", text, re.S)
    if not m:
        return set()
    names = set()
    for attrs, variant in re.findall(r"((?:#\[[^\n]*\]\s*)*)([A-Z][A-Za-z]*)\s*[,({]", m.group(1)):
        explicit = re.search(r'name = "([a-z-]+)"', attrs)
        names.add(explicit.group(1) if explicit else re.sub(r"(?<!^)([A-Z])", r"-\1", variant).lower())
    return names


SETTINGS = code_settings()

# The rules of src/config.rs for the values deploy/ sets, so that a value
# lethe would refuse at start-up is caught here.


def _port_of_bind(v: str) -> int | None:
    m = re.fullmatch(r"(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):(\d{1,5})", v)
    return int(m.group(1)) if m and int(m.group(1)) < 65536 else None


def _is_http_url(v: str) -> bool:
    u = urlsplit(v)
    return u.scheme in ("http", "https") and bool(u.hostname)


def _is_smtp_url(v: str) -> bool:
    u = urlsplit(v)
    return u.scheme in ("smtp", "smtps") and bool(u.hostname)


def _is_db_url(v: str) -> bool:
    if v.startswith("sqlite://"):
        return len(v) > len("sqlite://")
    u = urlsplit(v)
    return u.scheme in ("postgres", "postgresql") and bool(u.hostname)


def _int_in(lo: int, hi: int):
    return lambda v: v.isdigit() and lo <= int(v) <= hi


def secret_key_ok(v: str) -> bool:
    v = v.strip()
    try:
        if len(v) >= 64 and all(c in "0123456789abcdefABCDEF" for c in v):
            raw = bytes.fromhex(v)
        else:
            try:
                raw = base64.b64decode(v, validate=True)
            except binascii.Error:
                raw = base64.urlsafe_b64decode(v + "=" * (-len(v) % 4))
    except (ValueError, binascii.Error):
        return False
    return len(raw) >= 32


RULES = {
    "LETHE_BIND": lambda v: _port_of_bind(v) is not None,
    "LETHE_DATABASE_URL": _is_db_url,
    "LETHE_PUBLIC_URL": _is_http_url,
    "LETHE_SMTP_URL": _is_smtp_url,
    "LETHE_ADMIN_TOKEN": lambda v: len(v) >= 16,
    "LETHE_SECRET_KEY": secret_key_ok,
    "LETHE_DB_POOL_SIZE": _int_in(1, 1000),
    "LETHE_HTTP_WORKERS": _int_in(1, 256),
    "LETHE_SQLITE_SYNCHRONOUS": lambda v: v.lower() in ("full", "normal"),
    "LETHE_LOG_FORMAT": lambda v: v in ("text", "json"),
}


def check_values(where: str, env: dict[str, str]) -> None:
    bad = [
        f"{k}={v!r}"
        for k, v in sorted(env.items())
        if k in RULES and not RULES[k](str(v))
    ]
    check(f"{where}: values pass lethe's start-up rules", not bad, ", ".join(bad))


# --------------------------------------------------------------------------
# 1. Every LETHE_* name in deploy/ is a real setting


def check_setting_names() -> None:
    print("cross-checks: settings (src/config.rs SETTINGS)")
    if not check("SETTINGS list found in src/config.rs", len(SETTINGS) >= 5, f"found {len(SETTINGS)}"):
        return
    files = [p for p in sorted(DEPLOY.rglob("*")) if p.is_file()] + [ROOT / ".dockerignore"]
    unknown: dict[str, set[str]] = {}
    used: set[str] = set()
    for p in files:
        if not p.exists():
            continue
        try:
            text = p.read_text()
        except UnicodeDecodeError:
            continue
        for name in re.findall(r"\bLETHE_[A-Z][A-Z0-9_]*", text):
            used.add(name)
            if name not in SETTINGS:
                unknown.setdefault(name, set()).add(rel(p))
    check(
        f"all {len(used)} LETHE_* names used in deploy/ exist in SETTINGS ({len(SETTINGS)} settings)",
        not unknown,
        "; ".join(f"{n} in {', '.join(sorted(f))}" for n, f in sorted(unknown.items())),
    )


# --------------------------------------------------------------------------
# 2. Dockerfile and .dockerignore


class Dockerfile:
    def __init__(self, path: Path):
        dfp = DockerfileParser(path=str(path))
        self.stages: list[dict] = []
        for ins in dfp.structure:
            if ins["instruction"] == "FROM":
                parts = ins["value"].split()
                parts = [p for p in parts if not p.startswith("--")]
                name = parts[2] if len(parts) >= 3 and parts[1].lower() == "as" else None
                self.stages.append({"image": parts[0], "name": name, "ins": []})
            elif self.stages:
                self.stages[-1]["ins"].append(ins)
            # ARG before the first FROM is allowed and ignored here.

    def all(self, stage: dict, instruction: str) -> list[str]:
        return [i["value"] for i in stage["ins"] if i["instruction"] == instruction]

    def env(self, stage: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for v in self.all(stage, "ENV"):
            for m in re.finditer(r'(\w+)=("[^"]*"|\S+)', v):
                env[m.group(1)] = m.group(2).strip('"')
        return env


def apt_packages(runs: list[str]) -> set[str]:
    pkgs: set[str] = set()
    for r in runs:
        for m in re.finditer(r"apt-get install ([^&;|]*)", r):
            pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
    return pkgs


def check_dockerfile() -> dict:
    print("cross-checks: deploy/Dockerfile")
    path = DEPLOY / "Dockerfile"
    facts: dict = {}
    if not check("deploy/Dockerfile exists", path.is_file()):
        return facts
    df = Dockerfile(path)
    check("multi-stage: a builder stage and a runtime stage", len(df.stages) >= 2, f"{len(df.stages)} stage(s)")
    if len(df.stages) < 2:
        return facts
    builder, final = df.stages[0], df.stages[-1]
    check(
        "builder is rust:1-bookworm, runtime debian:bookworm-slim (same Debian: the linked libpq/libsqlite match)",
        builder["image"] == "rust:1-bookworm" and final["image"] == "debian:bookworm-slim",
        f"{builder['image']} / {final['image']}",
    )
    runs_b = " ".join(df.all(builder, "RUN"))
    check(
        "builder runs `cargo build --release --locked`",
        bool(re.search(r"cargo build\b(?=[^&;]*--release)(?=[^&;]*--locked)", runs_b)),
    )
    check(
        "builder caches cargo's registry and target folder (RUN --mount=type=cache)",
        "type=cache,target=/usr/local/cargo/registry" in runs_b and re.search(r"type=cache,target=\S*/target\b", runs_b) is not None,
    )
    want_b, want_r = {"libpq-dev", "libsqlite3-dev", "pkg-config"}, {"libpq5", "libsqlite3-0", "ca-certificates"}
    got_b, got_r = apt_packages(df.all(builder, "RUN")), apt_packages(df.all(final, "RUN"))
    check("builder installs libpq-dev libsqlite3-dev pkg-config", want_b <= got_b, f"got {sorted(got_b)}")
    check(
        "runtime installs only libpq5 libsqlite3-0 ca-certificates (--no-install-recommends)",
        got_r == want_r and all("--no-install-recommends" in r for r in df.all(final, "RUN") if "apt-get install" in r),
        f"got {sorted(got_r)}",
    )
    adds = [v for s in df.stages for v in df.all(s, "ADD")]
    check(
        "no ADD of a URL or git repository (COPY only)",
        not any(re.search(r"(https?|git)://|git@", a) for a in adds),
        "; ".join(adds),
    )
    copies = df.all(final, "COPY")
    check(
        "runtime copies the binary from the builder stage",
        any(re.search(rf"--from={re.escape(builder['name'] or '0')}\b.*\blethe\b", c) for c in copies),
    )
    users = df.all(final, "USER")
    uid = users[-1].split(":")[0] if users else None
    check(
        "runtime's last USER is a numeric non-root uid",
        uid is not None and uid.isdigit() and int(uid) != 0,
        f"USER {users[-1] if users else '(none)'}",
    )
    facts["uid"] = int(uid) if uid and uid.isdigit() else None
    env = df.env(final)
    facts["env"] = env
    check(
        "runtime ENV sets LETHE_BIND, LETHE_DATABASE_URL, LETHE_OUTBOX_DIR",
        {"LETHE_BIND", "LETHE_DATABASE_URL", "LETHE_OUTBOX_DIR"} <= env.keys(),
        f"got {sorted(env)}",
    )
    check_values("Dockerfile ENV", env)
    bind_port = _port_of_bind(env.get("LETHE_BIND", ""))
    facts["port"] = bind_port
    exposed = {int(p.split("/")[0]) for v in df.all(final, "EXPOSE") for p in v.split()}
    check("EXPOSE matches LETHE_BIND's port", bind_port in exposed, f"EXPOSE {sorted(exposed)}, bind port {bind_port}")
    volumes = " ".join(df.all(final, "VOLUME"))
    check("VOLUME /data declared", "/data" in volumes, volumes)
    db = env.get("LETHE_DATABASE_URL", "")
    check(
        "SQLite database and outbox folder live on the /data volume",
        db.startswith("sqlite:///data/") and env.get("LETHE_OUTBOX_DIR", "").startswith("/data/"),
        f"{db}, {env.get('LETHE_OUTBOX_DIR')}",
    )
    ep = [json.loads(v) for v in df.all(final, "ENTRYPOINT")]
    cmd = [json.loads(v) for v in df.all(final, "CMD")]
    check('ENTRYPOINT ["lethe"] in exec form', ep[-1:] == [["lethe"]], str(ep))
    commands = code_commands()
    check(
        f"CMD is a lethe subcommand ({', '.join(sorted(commands))})",
        bool(cmd) and bool(cmd[-1]) and cmd[-1][0] in commands,
        str(cmd),
    )
    hc = " ".join(df.all(final, "HEALTHCHECK"))
    routes = code_routes()
    hc_paths = set(re.findall(r"GET (/\S+) HTTP", hc))
    check(
        "HEALTHCHECK asks a health route lethe serves",
        bool(hc_paths) and hc_paths <= routes,
        f"asks {sorted(hc_paths)}, lethe serves {sorted(routes)}",
    )
    # The check runs `bash -c SCRIPT` in exec form: lint SCRIPT as bash.
    m = re.search(r"CMD\s+(\[.*\])\s*$", hc, re.S)
    argv = json.loads(m.group(1)) if m else []
    shellcheck = Path(sys.executable).parent / "shellcheck"
    if len(argv) == 3 and argv[:2] == ["bash", "-c"] and shellcheck.exists():
        lint = subprocess.run(
            [str(shellcheck), "-s", "bash", "-"], input=argv[2], capture_output=True, text=True
        )
        check("HEALTHCHECK's bash script passes shellcheck", lint.returncode == 0, lint.stdout.strip())
    else:
        check("HEALTHCHECK is `bash -c SCRIPT` in exec form (bash is in Debian slim; curl is not)", len(argv) == 3 and argv[:2] == ["bash", "-c"], str(argv))
    facts["healthcheck"] = argv
    return facts


def check_dockerignore() -> None:
    print("cross-checks: .dockerignore")
    path = ROOT / ".dockerignore"
    if not check(".dockerignore exists at the repository root", path.is_file()):
        return
    pats = [
        l.strip().lstrip("/") for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")
    ]
    for p in ("target", ".git"):
        check(f"excludes {p}", p in pats, f"patterns {pats}")
    check(
        "excludes SQLite files, key files and the outbox folder",
        any(p.endswith("*.db") for p in pats) and any(p.endswith("*.key") for p in pats) and any(p.endswith("outbox") for p in pats),
        f"patterns {pats}",
    )
    needed = ["Cargo.toml", "Cargo.lock", "src", "migrations"]
    dropped = [n for n in needed if any(fnmatch.fnmatch(n, p) for p in pats if not p.startswith("!"))]
    check("keeps what the build needs (Cargo.toml, Cargo.lock, src, migrations)", not dropped, f"excluded: {dropped}")


# --------------------------------------------------------------------------
# 3. compose.yaml (+ nginx.conf)


def compose_binary() -> str | None:
    local = Path(sys.executable).parent / "docker-compose"
    return str(local) if local.exists() else shutil.which("docker-compose")


def nginx_upstreams(path: Path) -> tuple[dict, list[str]]:
    """crossplane's parse (directive names and contexts checked) and the
    upstream servers."""
    payload = crossplane.parse(str(path), check_ctx=True, check_args=True, strict=True, single=True)
    servers: list[str] = []

    def walk(block):
        for d in block:
            if d["directive"] == "upstream":
                servers.extend(c["args"][0] for c in d.get("block", []) if c["directive"] == "server")
            walk(d.get("block", []))

    for cfg in payload["config"]:
        walk(cfg.get("parsed", []))
    return payload, servers


def nginx_listen_ports(payload: dict) -> set[int]:
    ports: set[int] = set()

    def walk(block):
        for d in block:
            if d["directive"] == "listen":
                m = re.search(r"(\d+)$", d["args"][0])
                if m:
                    ports.add(int(m.group(1)))
            walk(d.get("block", []))

    for cfg in payload["config"]:
        walk(cfg.get("parsed", []))
    return ports


def check_compose(df_facts: dict) -> None:
    print("cross-checks: deploy/compose.yaml")
    path = DEPLOY / "compose.yaml"
    if not check("deploy/compose.yaml exists", path.is_file()):
        return
    binary = compose_binary()
    if not check("docker-compose available for the resolved model", binary is not None):
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETHE_")}
    env.update(
        LETHE_SECRET_KEY=base64.b64encode(b"k" * 32).decode(),
        LETHE_ADMIN_TOKEN="validate-admin-token-0123456789",
    )
    with tempfile.TemporaryDirectory(prefix="lethe-validate-") as docker_config:
        # The caller's ~/.docker (contexts, credentials) is not consulted.
        env["DOCKER_CONFIG"] = docker_config
        out = subprocess.run(
            [binary, "--env-file", os.devnull, "-f", str(path), "config", "--format", "json"],
            capture_output=True,
            text=True,
            env=env,
        )
    if not check("docker-compose resolves the model", out.returncode == 0, out.stderr.strip()):
        return
    model = json.loads(out.stdout)
    raw = yaml.safe_load(path.read_text())
    services = model.get("services", {})

    built = {
        n: s
        for n, s in services.items()
        if s.get("build") and Path(s["build"]["context"], s["build"].get("dockerfile", "Dockerfile")).resolve()
        == (DEPLOY / "Dockerfile").resolve()
    }
    check(
        "lethe-1 and lethe-2 are built from deploy/Dockerfile with the repository as context",
        {"lethe-1", "lethe-2"} <= built.keys()
        and all(Path(s["build"]["context"]).resolve() == ROOT for s in built.values()),
        f"built from deploy/Dockerfile: {sorted(built)}",
    )
    for name, svc in sorted(built.items()):
        e = svc.get("environment") or {}
        check_values(f"{name} environment", {k: v for k, v in e.items() if k not in ("LETHE_SECRET_KEY", "LETHE_ADMIN_TOKEN")})
        db = urlsplit(e.get("LETHE_DATABASE_URL", ""))
        check(
            f"{name}: PostgreSQL on a compose service",
            db.scheme.startswith("postgres") and db.hostname in services,
            e.get("LETHE_DATABASE_URL", "(unset)"),
        )
        smtp = urlsplit(e.get("LETHE_SMTP_URL", ""))
        check(f"{name}: SMTP to a compose service", smtp.hostname in services, e.get("LETHE_SMTP_URL", "(unset)"))
        raw_env = ((raw.get("services", {}).get(name) or {}).get("environment")) or {}
        for var in ("LETHE_SECRET_KEY", "LETHE_ADMIN_TOKEN"):
            v = raw_env.get(var, "")
            check(
                f"{name}: {var} comes from the environment and is required (${{{var}:?...}})",
                isinstance(v, str) and v.startswith("${" + var + ":?"),
                repr(v),
            )
        deps = svc.get("depends_on") or {}
        pg = db.hostname
        check(
            f"{name}: waits for {pg} to be healthy",
            (deps.get(pg) or {}).get("condition") == "service_healthy",
            json.dumps(deps),
        )
        if pg in services:
            pe = services[pg].get("environment") or {}
            check(
                f"{name}: database URL's user, password and database match {pg}'s",
                (db.username, db.password, db.path.lstrip("/"))
                == (pe.get("POSTGRES_USER"), pe.get("POSTGRES_PASSWORD"), pe.get("POSTGRES_DB")),
            )
        if smtp.hostname in services:
            check(f"{name}: SMTP port {smtp.port} is maildev's SMTP port 1025", smtp.port == 1025)

    pgs = services.get("postgres") or {}
    check(
        "postgres: image postgres:15 with a pg_isready healthcheck and a named volume",
        pgs.get("image") == "postgres:15"
        and "pg_isready" in " ".join(pgs.get("healthcheck", {}).get("test", []))
        and any(v.get("type") == "volume" for v in pgs.get("volumes", [])),
    )

    # `condition: service_healthy` waits forever on a service without a
    # health check: its own, or the HEALTHCHECK of the image it builds.
    for name, svc in sorted(services.items()):
        for dep, how in sorted((svc.get("depends_on") or {}).items()):
            if how.get("condition") != "service_healthy":
                continue
            target = services.get(dep) or {}
            has = bool(target.get("healthcheck", {}).get("test")) or (
                dep in built and bool(df_facts.get("healthcheck"))
            )
            check(f"{name} waits for {dep} to be healthy: {dep} has a health check", has)

    # Load balancer: nginx's upstreams are the replicas, on lethe's port.
    lb = services.get("lb")
    if lb:
        conf = next(
            (Path(v["source"]) for v in lb.get("volumes", []) if v.get("target") == "/etc/nginx/nginx.conf"),
            None,
        )
        if check("lb mounts deploy/nginx.conf", conf is not None and conf.is_file(), str(conf)):
            payload, servers = nginx_upstreams(conf)
            errors = [f"line {e.get('line')}: {e['error']}" for e in payload.get("errors", [])]
            check("nginx.conf parses (crossplane, strict: known directives, in their contexts, with valid arguments)", payload["status"] == "ok", "; ".join(errors))
            port = df_facts.get("port")
            want = {f"{n}:{port}" for n in built}
            check(
                "nginx upstream servers are the lethe replicas on LETHE_BIND's port",
                set(servers) == want,
                f"upstream {sorted(servers)}, replicas {sorted(want)}",
            )
            targets = {int(p["target"]) for p in lb.get("ports", [])}
            check("lb publishes the port nginx listens on", targets <= nginx_listen_ports(payload) and bool(targets))
            public = [urlsplit((s.get("environment") or {}).get("LETHE_PUBLIC_URL", "")) for s in built.values()]
            published = {int(p["published"]) for p in lb.get("ports", []) if p.get("published")}
            check(
                "LETHE_PUBLIC_URL points at the load balancer's published port",
                all((u.port or 80) in published for u in public),
                f"published {sorted(published)}",
            )
    maildev = services.get("maildev")
    check("maildev mail catcher present", maildev is not None and "maildev" in maildev.get("image", ""))


# --------------------------------------------------------------------------
# 4. Kubernetes manifests


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def check_k8s(df_facts: dict) -> None:
    print("cross-checks: deploy/k8s")
    kpath = K8S / "kustomization.yaml"
    if not check("kustomization.yaml exists", kpath.is_file()):
        return
    kust = yaml.safe_load(kpath.read_text())
    resources = kust.get("resources", [])
    present = sorted(p.name for p in K8S.glob("*.yaml") if p.name not in ("kustomization.yaml",))
    missing = [r for r in resources if not (K8S / r).is_file()]
    check("every kustomization resource exists", not missing, f"missing {missing}")
    check("secret.example.yaml is not a kustomization resource", "secret.example.yaml" not in resources)
    unlisted = [p for p in present if p not in resources and p != "secret.example.yaml"]
    check("every manifest is listed in kustomization.yaml", not unlisted, f"unlisted {unlisted}")

    objs: dict[tuple[str, str], dict] = {}
    for p in present:
        for d in load_docs(K8S / p):
            objs[(d.get("kind"), d.get("metadata", {}).get("name"))] = d
    by_kind: dict[str, list[dict]] = {}
    for (kind, _), d in objs.items():
        by_kind.setdefault(kind, []).append(d)

    ns = by_kind.get("Namespace", [])
    if ns:
        check("kustomization's namespace is namespace.yaml's", kust.get("namespace") == ns[0]["metadata"]["name"])

    deps = by_kind.get("Deployment", [])
    if not check("one Deployment", len(deps) == 1, f"{len(deps)}"):
        return
    dep = deps[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})

    def selects(sel: dict) -> bool:
        return bool(sel) and all(labels.get(k) == v for k, v in sel.items())

    replicas = spec.get("replicas", 1)
    check("replicas >= 2", isinstance(replicas, int) and replicas >= 2, str(replicas))
    replicas = replicas if isinstance(replicas, int) else 1
    check("selector matches the pod template's labels", selects(spec["selector"].get("matchLabels", {})))
    containers = pod.get("containers", [])
    c = next((c for c in containers if c["name"] == "lethe"), None)
    if not check("container 'lethe'", c is not None):
        return
    if kust.get("images"):
        check(
            "kustomization's image entry names the container's image",
            any(i.get("name") == c["image"].split(":")[0] for i in kust["images"]),
            f"{c['image']} vs {kust['images']}",
        )
    if c.get("args"):
        check("args start with a lethe subcommand", c["args"][0] in code_commands(), str(c["args"]))

    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    psc = pod.get("securityContext", {})
    csc = c.get("securityContext", {})
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    check(
        "runs as non-root with the image's uid",
        (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True) and uid == df_facts.get("uid") and uid != 0,
        f"runAsUser {uid}, image uid {df_facts.get('uid')}",
    )
    check(
        "read-only root filesystem, no privilege escalation, all capabilities dropped",
        csc.get("readOnlyRootFilesystem") is True
        and csc.get("allowPrivilegeEscalation") is False
        and "ALL" in csc.get("capabilities", {}).get("drop", []),
    )
    mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
    check("writable /tmp mounted (emptyDir)", "/tmp" in mounts)
    res = c.get("resources", {})
    check(
        "cpu and memory requests and limits set",
        all(k in res.get(t, {}) for t in ("requests", "limits") for k in ("cpu", "memory")),
    )

    routes = code_routes()

    def probe(name: str, path: str) -> None:
        pr = c.get(name) or {}
        get = pr.get("httpGet") or {}
        port = get.get("port")
        port_ok = port in ports if isinstance(port, str) else port in ports.values()
        check(
            f"{name}: GET {path} on the container's port",
            get.get("path") == path and path in routes and port_ok,
            json.dumps(get),
        )

    probe("livenessProbe", "/healthz")
    probe("readinessProbe", "/readyz")

    # Configuration: configmap + secret via envFrom.
    cms = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    secrets = {d["metadata"]["name"]: d for d in load_docs(K8S / "secret.example.yaml")} if (K8S / "secret.example.yaml").is_file() else {}
    cm_refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
    sec_refs = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
    check("envFrom names a ConfigMap of the kustomization", bool(cm_refs) and all(n in cms for n in cm_refs), str(cm_refs))
    check("envFrom names the Secret of secret.example.yaml", bool(sec_refs) and all(n in secrets for n in sec_refs), str(sec_refs))
    cm_data: dict[str, str] = {}
    for n in cm_refs:
        cm_data.update(cms.get(n, {}).get("data", {}) or {})
    env_inline = {e["name"]: e.get("value", "") for e in c.get("env", []) if "value" in e}
    secret_names = {"LETHE_DATABASE_URL", "LETHE_SECRET_KEY", "LETHE_ADMIN_TOKEN", "LETHE_SMTP_URL"}
    leaked = sorted(secret_names & (cm_data.keys() | env_inline.keys()))
    check("no secret setting in the ConfigMap or inline env", not leaked, f"{leaked}")
    check_values("ConfigMap", {**cm_data, **env_inline})
    bind_port = _port_of_bind(cm_data.get("LETHE_BIND", (df_facts.get("env") or {}).get("LETHE_BIND", "")))
    check("containerPort is LETHE_BIND's port", bind_port in ports.values(), f"bind {bind_port}, ports {ports}")
    check(
        "LETHE_PUBLIC_URL is https (TLS ends at the ingress)",
        urlsplit(cm_data.get("LETHE_PUBLIC_URL", "")).scheme == "https",
        cm_data.get("LETHE_PUBLIC_URL", "(unset)"),
    )
    for name, sec in secrets.items():
        data = dict(sec.get("stringData") or {})
        for k, v in (sec.get("data") or {}).items():
            data[k] = base64.b64decode(v).decode()
        check(
            f"secret.example.yaml holds {', '.join(sorted(secret_names))}",
            secret_names <= data.keys(),
            f"has {sorted(data)}",
        )
        check(
            "secret.example.yaml's values are marked REPLACE_ME",
            all("REPLACE_ME" in v for v in data.values()),
        )
        check(
            "lethe would refuse the example's placeholder secret key and admin token",
            not secret_key_ok(data.get("LETHE_SECRET_KEY", "")) and len(data.get("LETHE_ADMIN_TOKEN", "x" * 16)) < 16,
        )
        check(
            "the example's database is PostgreSQL (replicas share it; SQLite would not)",
            urlsplit(data.get("LETHE_DATABASE_URL", "")).scheme.startswith("postgres"),
        )

    # Shutdown: preStop pause + lethe's drain fit in the grace period.
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre = ((c.get("lifecycle") or {}).get("preStop") or {})
    cmd = (pre.get("exec") or {}).get("command") or []
    pause = int(cmd[1]) if len(cmd) == 2 and cmd[0].endswith("sleep") and cmd[1].isdigit() else (pre.get("sleep") or {}).get("seconds", 0)
    drain = code_shutdown_grace()
    check(
        f"terminationGracePeriodSeconds {grace} > preStop pause {pause}s + lethe's drain {drain}s (src/config.rs SHUTDOWN_GRACE)",
        drain is not None and grace > pause + drain,
    )

    svcs = by_kind.get("Service", [])
    for s in svcs:
        sp = s["spec"]
        check(f"Service {s['metadata']['name']} selects the pods", selects(sp.get("selector", {})))
        for p in sp.get("ports", []):
            t = p.get("targetPort", p["port"])
            check(
                f"Service port {p['port']} -> {t} is a container port",
                (t in ports) if isinstance(t, str) else (t in ports.values()),
            )
    check("a ClusterIP Service on port 80", any(s["spec"].get("type", "ClusterIP") == "ClusterIP" and any(p["port"] == 80 for p in s["spec"]["ports"]) for s in svcs))
    pdbs = by_kind.get("PodDisruptionBudget", [])
    for p in pdbs:
        ma = p["spec"].get("minAvailable")
        check(f"PodDisruptionBudget {p['metadata']['name']} selects the pods", selects(p["spec"].get("selector", {}).get("matchLabels", {})))
        check(
            "PodDisruptionBudget leaves room for one eviction (minAvailable < replicas)",
            isinstance(ma, int) and 1 <= ma < replicas,
            f"minAvailable {ma}",
        )
    check("a PodDisruptionBudget", bool(pdbs))


def section(fn, *args):
    """Run one group of checks; a file too malformed to check is a failure
    of that group (the schema validators say what is wrong with it)."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        check(f"{fn.__name__} could run to the end", False, f"{type(e).__name__}: {e}")
        return {}


def main() -> int:
    section(check_setting_names)
    facts = section(check_dockerfile) or {}
    section(check_dockerignore)
    section(check_compose, facts)
    section(check_k8s, facts)
    if failures:
        print(f"{len(failures)} cross-check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
