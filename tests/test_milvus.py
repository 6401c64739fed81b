import json

import pulumi
import yaml

from components.milvus import Milvus, MilvusArgs
from components.object_store import IDENTITIES_KEY, PORT, S3Endpoint, identities
from components.secrets import S3Credentials, milvus_user_yaml
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
            s3_credentials=S3Credentials("milvus-s3-credentials", pulumi.Output.from_input("ak"), pulumi.Output.from_input("sk"),
                                         pulumi.Output.from_input("c0ffee")),
            user_config_secret="milvus-user-config",
            user_config_checksum="feed",
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
    assert container["image"] == "milvusdb/milvus:v2.6.24"
    assert container["command"] == ["milvus", "run", "standalone"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": 9091}
    assert env_value(container, "ETCD_ENDPOINTS")["value"] == "milvus-etcd:2379"
    # The object store comes from user.yaml alone (an env MINIO_ADDRESS would override it).
    assert "MINIO_ADDRESS" not in [e["name"] for e in container["env"]]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "user-config")
    assert mount == {"name": "user-config", "mountPath": "/milvus/configs/user.yaml", "subPath": "user.yaml", "readOnly": True}
    # A subPath mount never sees a change: the checksum rolls the pod instead.
    assert deployment["spec"]["template"]["metadata"]["annotations"]["real-estate-ai/secrets-checksum"] == "feed"
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert volumes["user-config"]["secret"]["secretName"] == "milvus-user-config"
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "milvus-data"
    assert rendered.registration("PersistentVolumeClaim", "milvus-data").protect is True


def test_etcd_and_the_object_store_are_persistent_and_run_their_binaries_by_path():
    rendered, _ = run_component(_milvus)
    for name, path in (("milvus-etcd", "/etcd"), ("milvus-s3", "/data")):
        sts = rendered.find("StatefulSet", name)
        assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        (container,) = containers(sts)
        assert {"name": "data", "mountPath": path} in container["volumeMounts"]
        assert rendered.registration("StatefulSet", name).protect is True
    store = rendered.find("StatefulSet", "milvus-s3")
    (s3,) = containers(store)
    assert s3["image"] == "chrislusf/seaweedfs:4.44"
    # The image's binary (docker/Dockerfile.go_build: /usr/bin/weed), S3 on 8333, identities from the Secret.
    assert s3["command"][:2] == ["/usr/bin/weed", "server"]
    assert f"-s3.port={PORT}" in s3["command"] and f"-s3.config=/etc/seaweedfs-s3/{IDENTITIES_KEY}" in s3["command"]
    assert s3["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": PORT, "scheme": "HTTP"}
    credentials = next(v for v in pod_spec(store)["volumes"] if v["name"] == "credentials")
    assert credentials["secret"]["secretName"] == "milvus-s3-credentials"
    assert store["spec"]["template"]["metadata"]["annotations"]["real-estate-ai/secrets-checksum"] == "c0ffee"
    (etcd,) = containers(rendered.find("StatefulSet", "milvus-etcd"))
    # etcd's image is distroless: no PATH lookup to rely on.
    assert etcd["command"] == ["/usr/local/bin/etcd"]
    assert "--advertise-client-urls=http://milvus-etcd.estate.svc.cluster.local:2379" in etcd["args"]


def test_identities_file_grants_one_admin_and_nothing_anonymous():
    document = json.loads(identities("ak", "sk"))
    (identity,) = document["identities"]
    assert identity["credentials"] == [{"accessKey": "ak", "secretKey": "sk"}]
    assert "Admin" in identity["actions"] and "anonymous" not in json.dumps(document)


def test_milvus_user_yaml_points_at_the_object_store_and_keeps_its_log_local():
    config = yaml.safe_load(milvus_user_yaml(S3Endpoint("milvus-s3.estate.svc.cluster.local", 8333, False, "milvus", "us-east-1"), "ak", "sk"))
    assert config["minio"] | {"accessKeyID": None, "secretAccessKey": None} == {
        "address": "milvus-s3.estate.svc.cluster.local", "port": 8333, "accessKeyID": None, "secretAccessKey": None,
        "useSSL": False, "bucketName": "milvus", "rootPath": "files", "cloudProvider": "aws", "useVirtualHost": False,
        "region": "us-east-1",
    }
    assert config["mq"] == {"type": "rocksmq"}


def test_an_external_store_runs_no_object_store_in_the_cluster():
    def external():
        return Milvus("milvus", MilvusArgs(
            namespace="estate", namespace_name="estate", stack="prod", settings=MilvusSettings(),
            s3_credentials=S3Credentials(None, pulumi.Output.from_input("ak"), pulumi.Output.from_input("sk"), pulumi.Output.from_input("c")),
            user_config_secret="milvus-user-config", user_config_checksum="feed", protect=True, external_store=True,
        ))

    rendered, _ = run_component(external)
    assert [o["metadata"]["name"] for o in rendered.objects if o["kind"] == "StatefulSet"] == ["milvus-etcd"]
    user = milvus_user_yaml(S3Endpoint("s3.example.com", 443, True, "bkt", "eu-central-1"), "ak", "sk")
    assert yaml.safe_load(user)["minio"] | {"accessKeyID": None, "secretAccessKey": None} == {
        "address": "s3.example.com", "port": 443, "accessKeyID": None, "secretAccessKey": None, "useSSL": True,
        "bucketName": "bkt", "rootPath": "files", "cloudProvider": "aws", "useVirtualHost": False, "region": "eu-central-1",
    }
