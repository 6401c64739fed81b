from components.milvus import Milvus, MilvusArgs
from components.secrets import MinioCredentials
from settings import MilvusSettings
from tests.harness import containers, env_value, pod_spec, run_component, value


def _milvus(protect=True):
    return Milvus(
        "milvus",
        MilvusArgs(
            namespace="estate",
            namespace_name="estate",
            stack="test",
            settings=MilvusSettings(),
            minio_credentials=MinioCredentials("minio-credentials", "root-user", "root-password"),
            user_config_secret="milvus-user-config",
            protect=protect,
        ),
    )


def test_milvus_standalone_deployment():
    rendered, component = run_component(_milvus)
    assert value(component.service_name) == "milvus"
    deployment = rendered.find("Deployment", "milvus")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["replicas"] == 1
    (container,) = containers(deployment)
    assert container["image"] == "milvusdb/milvus:v2.6.9"
    assert container["command"] == ["milvus", "run", "standalone"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": 9091}
    assert env_value(container, "ETCD_ENDPOINTS")["value"] == "milvus-etcd:2379"
    assert env_value(container, "MINIO_ADDRESS")["value"] == "milvus-minio:9000"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "user-config")
    assert mount == {"name": "user-config", "mountPath": "/milvus/configs/user.yaml", "subPath": "user.yaml", "readOnly": True}
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert volumes["user-config"]["secret"]["secretName"] == "milvus-user-config"
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "milvus-data"
    assert rendered.registration("PersistentVolumeClaim", "milvus-data").protect is True


def test_etcd_and_minio_are_persistent_and_minio_reads_credentials_from_files():
    rendered, _ = run_component(_milvus)
    for name, path in (("milvus-etcd", "/etcd"), ("milvus-minio", "/data")):
        sts = rendered.find("StatefulSet", name)
        assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        (container,) = containers(sts)
        assert {"name": "data", "mountPath": path} in container["volumeMounts"]
        assert rendered.registration("StatefulSet", name).protect is True
    (minio,) = containers(rendered.find("StatefulSet", "milvus-minio"))
    assert {e["name"]: e["value"] for e in minio["env"]} == {"MINIO_ROOT_USER_FILE": "access_key", "MINIO_ROOT_PASSWORD_FILE": "secret_key"}
    credentials = next(v for v in pod_spec(rendered.find("StatefulSet", "milvus-minio"))["volumes"] if v["name"] == "credentials")
    assert credentials["secret"]["items"] == [{"key": "root-user", "path": "access_key"}, {"key": "root-password", "path": "secret_key"}]
    assert minio["readinessProbe"]["httpGet"] == {"path": "/minio/health/ready", "port": 9000, "scheme": "HTTP"}
    (etcd,) = containers(rendered.find("StatefulSet", "milvus-etcd"))
    assert "--advertise-client-urls=http://milvus-etcd.estate.svc.cluster.local:2379" in etcd["args"]
