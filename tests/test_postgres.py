from components.postgres import PGDATA, SECRETS_PATH, Postgres, PostgresArgs
from components.workload import SecretKeyRef
from settings import PostgresSettings, Storage
from tests.harness import containers, env_value, run_component, value


def _postgres(protect=True):
    settings = PostgresSettings(database="estate_db", user="estate_user", storage=Storage(size="25Gi", storage_class="fast"))
    return Postgres("pg", PostgresArgs("estate", "test", settings, SecretKeyRef("postgres-credentials", "password"), protect))


def test_statefulset_storage_probes_and_credentials():
    rendered, pg = run_component(_postgres)
    assert value(pg.service_name) == "postgres"
    sts = rendered.find("StatefulSet", "postgres")
    assert sts["spec"]["serviceName"] == "postgres-headless"
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "25Gi" and claim["storageClassName"] == "fast"
    (container,) = containers(sts)
    assert container["image"] == "postgres:17.6"
    assert container["readinessProbe"]["exec"]["command"] == [
        "pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "estate_user", "-d", "estate_db",
    ]
    assert container["livenessProbe"]["exec"] == container["readinessProbe"]["exec"]
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] == 600
    assert env_value(container, "PGDATA")["value"] == PGDATA
    assert env_value(container, "POSTGRES_PASSWORD_FILE")["value"] == f"{SECRETS_PATH}/password"
    assert "POSTGRES_PASSWORD" not in [e["name"] for e in container["env"]]
    volume = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "credentials")
    assert volume["secret"]["secretName"] == "postgres-credentials"
    assert rendered.registration("StatefulSet", "postgres").protect is True


def test_headless_and_client_services():
    rendered, _ = run_component(_postgres)
    headless = rendered.find("Service", "postgres-headless")["spec"]
    client = rendered.find("Service", "postgres")["spec"]
    assert headless["clusterIP"] == "None" and client["type"] == "ClusterIP"
    assert headless["ports"][0]["port"] == client["ports"][0]["port"] == 5432
    assert client["selector"] == {"app.kubernetes.io/name": "postgres", "app.kubernetes.io/instance": "test"}
