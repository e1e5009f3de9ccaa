"""Static checks of the deployment files (nothing is built or run: no Docker engine here).

docker-compose.yml against the Compose specification schema, infra/k8s/ against the
Kubernetes schemas (and assembled by kustomize), the Dockerfiles with hadolint, and
`nginx -t` on the edge config as rendered for compose and for Kubernetes; plus the
properties that matter when they run (non-root, probes on real routes, secrets only
from the environment, HPAs on real Deployments, shutdown budgets that add up).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from sanic import Sanic

from api.config import AppConfig
from db.crypto import throwaway_keys
from edge.render import CONTAINER_PORT, CONTAINER_STATIC, STATIC_DIR, container_config, render

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "infra" / "k8s"
API_DOCKERFILE = ROOT / "infra" / "Dockerfile"
EDGE_DOCKERFILE = ROOT / "infra" / "edge.Dockerfile"
DOCKERFILES = (API_DOCKERFILE, EDGE_DOCKERFILE)
# The oldest Kubernetes minor still commonly supported by managed offerings, and a
# current one: the manifests must be valid on both.
K8S_VERSIONS = ("1.30.0", "1.33.0")
# open-source nginx gained `server ... resolve` in 1.27.3.
NGINX_RESOLVE_SINCE = (1, 27, 3)
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|DATABASE_URL|REDIS_URL", re.IGNORECASE)
# Hosts the rendered configs name and `nginx -t` must resolve (the compose/k8s service).
UPSTREAM_HOSTS = ("api",)


def run(*cmd: str | Path, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def manifests() -> list[dict[str, Any]]:
    return [doc for path in manifest_files() for doc in load_yaml_docs(path)]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] == kind}


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in manifests():
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("Deployment", "Job"):
            yield name, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield name, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


@pytest.fixture(scope="module")
def app_routes() -> Iterator[set[str]]:
    """Paths the real app factory registers (no server is started)."""
    from api.server import create_app

    config = AppConfig(
        {
            "DATABASE_URL": "postgresql://unused@127.0.0.1/unused",
            "JWT_SECRET": "x" * 40,
            **{k.removeprefix("CONECTADES_"): v for k, v in throwaway_keys().items()},
        }
    )
    app = create_app(config)
    try:
        yield {"/" + route.path for route in app.router.routes}
    finally:
        Sanic.unregister_app(app)


# ---------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose_spec_check(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One check-jsonschema run over the real file and a broken one (it reports
    per file), so the validator is shown to reject what it should."""
    bad = tmp_path_factory.mktemp("compose") / "docker-compose.yml"
    bad.write_text("services:\n  api:\n    image: x\n    ports: 80\n    scale_me: yes\n")
    result = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE, bad)
    assert result.returncode != 0, "the broken file must fail"
    return bad, result.stdout + result.stderr


def test_compose_file_matches_compose_spec(compose_spec_check: tuple[Path, str]) -> None:
    _, output = compose_spec_check
    assert str(COMPOSE) not in output, output


def test_compose_spec_check_rejects_a_broken_file(compose_spec_check: tuple[Path, str]) -> None:
    bad, output = compose_spec_check
    assert f"{bad}::$.services.api.ports" in output, output


def test_compose_secrets_are_required_variables(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    refs = re.findall(r"\$\{([A-Z0-9_]+)([^}]*)\}", text)
    secret_refs = {(name, rest) for name, rest in refs if SECRET_NAME.search(name)}
    names = {name for name, _ in secret_refs}
    assert {"POSTGRES_PASSWORD", "CONECTADES_API_DB_PASSWORD", "CONECTADES_JWT_SECRET"} <= names
    for name, rest in secret_refs:
        assert rest.startswith(":?") and len(rest) > 2, f"${{{name}}} needs :?message"
    # No literal credential: every secret-named variable's value comes from ${...}.
    for svc_name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(key) and "REDIS_URL" not in key:
                assert "${" in str(value), f"{svc_name}.{key} is a literal secret"


def test_compose_api_is_scalable_behind_the_edge(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api = services["api"]
    assert "container_name" not in api
    assert "ports" not in api, "a fixed host port prevents --scale api=N"
    deps = api["depends_on"]
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert deps["postgres"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"
    assert services["edge"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert any(p.endswith(f":{CONTAINER_PORT}") and "80" in p for p in services["edge"]["ports"])
    # Whatever a service waits on as healthy must define a healthcheck.
    for svc in services.values():
        for dep, cond in (svc.get("depends_on") or {}).items():
            if cond["condition"] == "service_healthy":
                assert "test" in services[dep].get("healthcheck", {}), dep


def test_compose_migrate_runs_the_cli_as_owner_and_creates_the_api_role(
    compose: dict[str, Any],
) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["conectades", "db", "migrate"]
    env = migrate["environment"]
    assert "CONECTADES_ADMIN_DATABASE_URL" in env
    assert (
        env["CONECTADES_DATABASE_URL"]
        == compose["services"]["api"]["environment"]["CONECTADES_DATABASE_URL"]
    )
    assert migrate["image"] == compose["services"]["api"]["image"]
    # The API never receives the owner's credentials.
    assert "CONECTADES_ADMIN_DATABASE_URL" not in compose["services"]["api"]["environment"]
    from admin.commands.db import db_app

    assert "migrate" in {c.name for c in db_app.registered_commands}


def test_compose_redis_is_an_lru_cache_capped_at_2gb(compose: dict[str, Any]) -> None:
    cmd = compose["services"]["redis"]["command"]
    assert cmd[cmd.index("--maxmemory") + 1] == "2gb"
    assert cmd[cmd.index("--maxmemory-policy") + 1] == "allkeys-lru"


def test_compose_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["postgres"]["volumes"]
    named = [v.split(":")[0] for v in volumes if not v.startswith((".", "/"))]
    assert named and all(n in compose["volumes"] for n in named)


def test_compose_stop_grace_covers_the_api_drain(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    drain = float(api["environment"]["CONECTADES_GRACEFUL_SHUTDOWN_TIMEOUT"])
    assert float(api["stop_grace_period"].rstrip("s")) > drain


# ---------------------------------------------------------------- settings


def deploy_settings(compose: dict[str, Any]) -> dict[str, str]:
    """Every CONECTADES_* setting the compose file and the ConfigMap give the API."""
    settings = {
        k: str(v)
        for k, v in compose["services"]["api"]["environment"].items()
        if k.startswith("CONECTADES_")
    }
    settings.update(by_kind("ConfigMap")["conectades-config"]["data"])
    return {k: v for k, v in settings.items() if k.startswith("CONECTADES_")}


def test_deploy_settings_are_keys_the_app_reads(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = deploy_settings(compose)
    assert "CONECTADES_GRACEFUL_SHUTDOWN_TIMEOUT" in settings
    # Sanic loads ANY prefixed variable, so the known keys are taken without them.
    for key in list(os.environ):
        if key.startswith("CONECTADES_"):
            monkeypatch.delenv(key)
    known = set(AppConfig().keys())
    for key in settings:
        assert key.removeprefix("CONECTADES_") in known, f"{key} is not a setting the app reads"
    plain = {k: v for k, v in settings.items() if "${" not in v}
    for key, value in plain.items():
        monkeypatch.setenv(key, value)
    config = AppConfig()
    for key, value in plain.items():
        got = config[key.removeprefix("CONECTADES_")]
        assert str(got) == value or float(got) == float(value), key


# ---------------------------------------------------------------- kubernetes


def test_k8s_manifests_match_kubernetes_schemas() -> None:
    """Each file on its own (the secret example too), on the oldest version."""
    files = manifest_files()
    assert len(files) >= 10
    for path in files:
        for doc in load_yaml_docs(path):
            kubernetes_validate.validate(doc, K8S_VERSIONS[0], strict=True)


def test_k8s_schema_check_rejects_a_broken_manifest() -> None:
    doc = by_kind("Deployment")["api"]
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest_except_the_secret_example() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in manifest_files()}
    assert listed == present - {"secret.example.yaml"}
    assert kustomization["namespace"] == by_kind("Namespace")["conectades"]["metadata"]["name"]


def test_kustomize_build_assembles_valid_objects() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    result = run(kubectl, "kustomize", K8S)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("Deployment") == 3 and "Job" in kinds and "Secret" not in kinds
    for doc in docs:  # as applied, on the newer version
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "conectades", doc["metadata"]["name"]


def test_hpas_target_deployments_with_cpu_requests() -> None:
    deployments = by_kind("Deployment")
    hpas = by_kind("HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == {"api", "edge"}
    for hpa in hpas.values():
        ref = hpa["spec"]["scaleTargetRef"]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert ref["kind"] == "Deployment" and ref["apiVersion"] == "apps/v1"
        target = deployments[ref["name"]]
        # The HPA owns the replica count; a fixed one would fight it on every apply.
        assert "replicas" not in target["spec"]
        assert hpa["spec"]["minReplicas"] >= 2
        assert any(m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
        for c in target["spec"]["template"]["spec"]["containers"]:
            assert c["resources"]["requests"]["cpu"], "CPU utilisation needs a request"


def test_services_and_pdbs_select_the_deployment_pods() -> None:
    deployments = by_kind("Deployment")
    selectors = [(f"Service/{n}", s["spec"]["selector"]) for n, s in by_kind("Service").items()]
    selectors += [
        (f"PodDisruptionBudget/{n}", p["spec"]["selector"]["matchLabels"])
        for n, p in by_kind("PodDisruptionBudget").items()
    ]
    # The worker serves nothing: no Service, no PDB (any number may stop at once).
    served = [name for name in deployments if name != "worker"]
    assert sorted(name.split("/")[1] for name, _ in selectors) == sorted(2 * served)
    for name, selector in selectors:
        pod_labels = deployments[name.split("/")[1]]["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items(), name
    for name, svc in by_kind("Service").items():
        ports = deployments[name]["spec"]["template"]["spec"]["containers"][0]["ports"]
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in {p["name"] for p in ports}


def test_pods_run_non_root_read_only_with_resources() -> None:
    specs = dict(pod_specs())
    assert set(specs) == {
        "Deployment/api",
        "Deployment/edge",
        "Deployment/worker",
        "Job/conectades-migrate",
        "CronJob/conectades-prune",
        "CronJob/conectades-rotate-contact-keys",
    }
    for name, spec in specs.items():
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), name
            assert not c["image"].endswith(":latest"), name


def test_worker_runs_the_cli_worker_with_the_api_role_and_a_grace_that_covers_its_drain() -> None:
    spec = by_kind("Deployment")["worker"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["command"] == ["conectades", "worker"]
    assert container["image"] == api_container()["image"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CONECTADES_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == (
        "CONECTADES_DATABASE_URL"
    )
    # Public destinations only in production: no allow-list in the shipped manifests.
    assert "CONECTADES_WEBHOOK_ALLOWED_HOSTS" not in env
    assert (
        "CONECTADES_WEBHOOK_ALLOWED_HOSTS" not in by_kind("ConfigMap")["conectades-config"]["data"]
    )
    drain = float(env["CONECTADES_WORKER_SHUTDOWN_TIMEOUT"]["value"])
    assert spec["terminationGracePeriodSeconds"] > drain


def test_compose_worker_runs_the_cli_worker_with_the_api_role(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["command"] == ["conectades", "worker"]
    assert (
        worker["environment"]["CONECTADES_DATABASE_URL"]
        == (compose["services"]["api"]["environment"]["CONECTADES_DATABASE_URL"])
    )
    assert "CONECTADES_WEBHOOK_ALLOWED_HOSTS" not in worker["environment"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    drain = float(worker["environment"]["CONECTADES_WORKER_SHUTDOWN_TIMEOUT"])
    assert float(worker["stop_grace_period"].rstrip("s")) > drain


def api_container() -> dict[str, Any]:
    container: dict[str, Any] = by_kind("Deployment")["api"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def test_api_probes_use_the_app_health_routes(app_routes: set[str]) -> None:
    c = api_container()
    assert c["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    probes = [c[p]["httpGet"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in probes:
        assert probe["path"] in app_routes, probe["path"]
        assert ports[probe["port"]] == 8000
    # The compose healthcheck and the image HEALTHCHECK hit real routes too.
    compose_url = re.search(
        r"http://[^/]+(/[a-z/]+)",
        str(yaml.safe_load(COMPOSE.read_text())["services"]["api"]["healthcheck"]["test"]),
    )
    assert compose_url and compose_url[1] in app_routes
    image_url = re.search(r"/health[a-z/]*", final_stage(API_DOCKERFILE)["HEALTHCHECK"][0])
    assert image_url and image_url[0] in app_routes


def test_edge_probes_hit_a_file_the_edge_serves() -> None:
    spec = by_kind("Deployment")["edge"]["spec"]["template"]["spec"]
    c = spec["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = c[probe]["httpGet"]["path"]
        assert path.startswith("/static/")
        assert (STATIC_DIR / path.removeprefix("/static/")).is_file(), path
    assert c["ports"][0]["containerPort"] == CONTAINER_PORT
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    cfg = container_config("k8s")
    assert {str(cfg.cache_path), str(cfg.prefix)} <= mounts, "microcache and state on emptyDir"
    assert c["args"] == ["-c", "/etc/edge/k8s.conf"]
    assert "--target k8s --out /out/k8s.conf" in EDGE_DOCKERFILE.read_text()


def test_edge_microcache_is_in_memory_within_the_containers_limit() -> None:
    """As the local stack keeps it (infra/nginx.py): on a disk, the cache's file writes
    and renames took ~40 % of nginx's CPU. A memory-backed emptyDir counts against
    the container's memory limit, so the limit holds the volume's bound and more."""
    spec = by_kind("Deployment")["edge"]["spec"]["template"]["spec"]
    c = spec["containers"][0]
    cache = str(container_config("k8s").cache_path)
    name = next(m["name"] for m in c["volumeMounts"] if m["mountPath"] == cache)
    volume = next(v["emptyDir"] for v in spec["volumes"] if v["name"] == name)
    assert volume["medium"] == "Memory"
    mib = {"Mi": 1, "Gi": 1024}
    size = int(volume["sizeLimit"][:-2]) * mib[volume["sizeLimit"][-2:]]
    limit = c["resources"]["limits"]["memory"]
    assert size >= 256 and int(limit[:-2]) * mib[limit[-2:]] >= size + 256
    compose = yaml.safe_load(COMPOSE.read_text())["services"]["edge"]
    assert cache in compose["tmpfs"]


def test_api_shutdown_budget_adds_up() -> None:
    spec = by_kind("Deployment")["api"]["spec"]["template"]["spec"]
    c = spec["containers"][0]
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and int(pre_stop[1]) >= 5
    drain = float(
        by_kind("ConfigMap")["conectades-config"]["data"]["CONECTADES_GRACEFUL_SHUTDOWN_TIMEOUT"]
    )
    assert spec["terminationGracePeriodSeconds"] > int(pre_stop[1]) + drain


def test_no_credentials_in_applied_manifests() -> None:
    config = by_kind("ConfigMap")["conectades-config"]["data"]
    for key, value in config.items():
        assert not SECRET_NAME.search(key), key
        assert not re.search(r"://[^/\s]*:[^/\s]*@", value), key
    # The only Secret is the example, kept out of kustomization; its values are
    # unusable placeholders (the API refuses a JWT secret under 32 bytes).
    secrets = [d for d in manifests() if d["kind"] == "Secret"]
    assert [s["metadata"]["name"] for s in secrets] == ["conectades-secrets"]
    for value in secrets[0]["stringData"].values():
        assert "REPLACE_ME" in value
    assert len(secrets[0]["stringData"]["CONECTADES_JWT_SECRET"]) < 32
    # Least privilege: only the migration Job and the prune and key-rotation CronJobs
    # get the owner's DSN; the donor-contact keys only what reads or writes contacts.
    env_names = {e["name"] for e in api_container()["env"]}
    assert "CONECTADES_ADMIN_DATABASE_URL" not in env_names
    owners = {
        name
        for name, spec in pod_specs()
        for c in spec["containers"]
        if any(e["name"] == "CONECTADES_ADMIN_DATABASE_URL" for e in c.get("env", []))
    }
    assert owners == {
        "Job/conectades-migrate",
        "CronJob/conectades-prune",
        "CronJob/conectades-rotate-contact-keys",
    }
    for key in ("CONECTADES_CONTACT_KEYS", "CONECTADES_CONTACT_HMAC_KEY"):
        holders = {
            name
            for name, spec in pod_specs()
            for c in spec["containers"]
            if any(e["name"] == key for e in c.get("env", []))
        }
        assert holders == {
            "Deployment/api",
            "Deployment/worker",
            "CronJob/conectades-rotate-contact-keys",
        }, key
    rotate = dict(pod_specs())["CronJob/conectades-rotate-contact-keys"]["containers"][0]
    assert rotate["command"] == ["conectades", "donor", "rotate-keys"]
    for name, spec in pod_specs():
        for c in spec["containers"]:
            for env in c.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    assert "valueFrom" in env and "value" not in env, f"{name}: {env['name']}"


# ---------------------------------------------------------------- images


def stages(path: Path) -> list[dict[str, list[str]]]:
    """Instructions per build stage (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out: list[dict[str, list[str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            out.append({})
        if out:
            out[-1].setdefault(word.upper(), []).append(rest.strip())
    return out


def final_stage(path: Path) -> dict[str, list[str]]:
    return stages(path)[-1]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(path: Path) -> None:
    result = run(
        BIN / "hadolint",
        "--config",
        ROOT / ".hadolint.yaml",
        "--failure-threshold",
        "warning",
        path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y curl\n")
    result = run(
        BIN / "hadolint", "--config", ROOT / ".hadolint.yaml", "--failure-threshold", "warning", bad
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # `latest`


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_is_multi_stage_non_root_with_healthcheck(path: Path) -> None:
    all_stages = stages(path)
    assert len(all_stages) >= 2, "multi-stage: the build tooling stays out of the image"
    final = all_stages[-1]
    user = final["USER"][-1].split(":")[0]
    assert user not in ("root", "0"), "the last USER must not be root"
    assert "HEALTHCHECK" in final
    for stage in all_stages:
        for name in stage.get("ENV", []) + stage.get("ARG", []):
            assert not SECRET_NAME.search(name), f"secret-looking build setting: {name}"


def test_api_image_runs_the_factory_and_the_migrator() -> None:
    final = final_stage(API_DOCKERFILE)
    cmd = final["CMD"][-1]
    assert "sanic api.server:create_app --factory" in cmd and "exec " in cmd
    assert "--workers" in cmd and "0.0.0.0" in cmd
    assert final["FROM"][0].startswith("${PYTHON_IMAGE}")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in API_DOCKERFILE.read_text()


def nginx_version(text: str) -> tuple[int, ...]:
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    assert match, text
    return tuple(int(g or 0) for g in match.groups())


def test_edge_image_nginx_supports_upstream_resolve() -> None:
    base = final_stage(EDGE_DOCKERFILE)["FROM"][0]
    assert base.startswith("nginx:"), base
    assert nginx_version(base.split(":")[1]) >= NGINX_RESOLVE_SINCE
    assert final_stage(EDGE_DOCKERFILE)["STOPSIGNAL"] == ["SIGQUIT"]  # graceful quit


def test_dockerignore_allows_only_what_the_images_copy() -> None:
    lines = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: everything else stays out of the build context"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    for forbidden in (".venv", "var", ".git", ".env"):
        assert forbidden not in allowed
    for path in DOCKERFILES:
        for stage in stages(path):
            for args in stage.get("COPY", []):
                if args.startswith("--from"):
                    continue
                for src in args.split()[:-1]:
                    top = src.rstrip("/").split("/")[0]
                    assert top in allowed, f"{path.name} copies {src}, excluded by .dockerignore"


def test_api_image_copies_every_packaged_folder() -> None:
    """`pip install .` in the image builds what pyproject lists: a package folder the
    Dockerfile does not copy (or .dockerignore leaves out) fails only in a container,
    at import time (cache/ and worker/ were added after the Dockerfile was written)."""
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    tops = {name.split(".")[0] for name in packages["packages"]}
    copied = {
        src.rstrip("/").split("/")[0]
        for stage in stages(API_DOCKERFILE)
        for args in stage.get("COPY", [])
        if not args.startswith("--from")
        for src in args.split()[:-1]
    }
    assert tops <= copied, f"{API_DOCKERFILE.name} does not copy {sorted(tops - copied)}"


# ---------------------------------------------------------------- nginx -t


def local_nginx_version() -> tuple[int, ...]:
    return nginx_version(run("nginx", "-v").stderr)


def can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return run("unshare", "--mount", "true").returncode == 0


def nginx_t(conf: Path, hosts: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a container config, in a private mount namespace where the
    compose/k8s service names resolve (a bind-mounted hosts file) and the
    container's writable paths exist (tmpfs over /var/lib and /var/cache), so the
    real file is checked as is and nothing on this machine changes."""
    cfg = container_config("k8s")
    script = (
        'set -e; mount --bind "$1" /etc/hosts; '
        "mount -t tmpfs tmpfs /var/lib; mount -t tmpfs tmpfs /var/cache; "
        f"mkdir -p {cfg.prefix} {cfg.cache_path}; "
        'exec nginx -t -e stderr -p "$2" -c "$3"'
    )
    return run(
        "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "nginx-t",
        hosts, conf.parent, conf,
    )  # fmt: skip


@pytest.fixture
def hosts_file(tmp_path: Path) -> Path:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {h}\n" for h in UPSTREAM_HOSTS))
    return hosts


@pytest.mark.parametrize("target", ["compose", "k8s"])
def test_nginx_t_accepts_the_container_config(
    target: str, tmp_path: Path, hosts_file: Path
) -> None:
    if not can_unshare():
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    text = render(container_config(target))
    assert str(CONTAINER_STATIC) in text and "daemon off;" in text
    assert f"listen 0.0.0.0:{CONTAINER_PORT}" in text
    servers = re.findall(r"^\s*server (\S+) .*;$", text, re.MULTILINE)
    assert servers == ["api:8000"]
    if target == "compose":
        assert "resolver 127.0.0.11 " in text and "zone api " in text
        assert text.count(" resolve;") == len(servers)
        if local_nginx_version() < NGINX_RESOLVE_SINCE:
            # This machine's nginx predates the `resolve` parameter that the image's
            # nginx (>= 1.27.3, test_edge_image_nginx_supports_upstream_resolve)
            # has: check everything else, dropping exactly that one token.
            text = text.replace(" resolve;", ";")
    conf = tmp_path / f"{target}.conf"
    conf.write_text(text)
    result = nginx_t(conf, hosts_file)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_t_fails_when_the_service_name_does_not_resolve(tmp_path: Path) -> None:
    """The k8s config names `api` and nginx resolves it at load: without the
    service's DNS (here: no hosts entry) the config is rejected."""
    if not can_unshare():
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    conf = tmp_path / "k8s.conf"
    conf.write_text(
        render(container_config("k8s", upstreams=["conectades-no-such-host.invalid:8000"]))
    )
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    result = nginx_t(conf, hosts)
    assert result.returncode != 0
    assert "host not found" in result.stderr


def test_render_cli_targets_match_container_config() -> None:
    for target in ("compose", "k8s"):
        result = run(sys.executable, "-m", "edge.render", "--target", target, "--stdout")
        assert result.returncode == 0, result.stderr
        assert result.stdout == render(container_config(target))
