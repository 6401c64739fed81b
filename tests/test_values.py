"""The value types of the config contract at their edges: the largest valid and the smallest invalid value of every
bound, inputs that differ from a valid one only late in the string, and the exact text of each class of message.
(tools/mutation.py found these edges untested: a bound moved by one, a dropped character class, a unit's factor.)"""

import hashlib
import math

import pytest
from pydantic import TypeAdapter, ValidationError

from settings.values import (
    Bytes,
    Cpu,
    Cron,
    DnsLabel,
    Hostname,
    Image,
    Percent,
    Registry,
    Resources,
    SemVer,
    Settings,
    SqlIdentifier,
    Text,
    byte_count,
    cpu_millicores,
    make_resources,
)


def accepts(kind, value) -> bool:
    try:
        TypeAdapter(kind).validate_python(value)
        return True
    except ValidationError:
        return False


def message(kind, value) -> str:
    with pytest.raises(ValidationError) as error:
        TypeAdapter(kind).validate_python(value)
    return error.value.errors()[0]["msg"]


def errors(model, **values) -> list[str]:
    """Every message a model gives for these values (it must refuse them)."""
    with pytest.raises(ValidationError) as error:
        model(**values)
    return [e["msg"] for e in error.value.errors()]


@pytest.mark.parametrize("value,ok", [
    ("999999m", True), ("1000000m", False), ("1m", True), ("0m", False),
    ("9999", True), ("10000", False), ("0.001", True), ("0.0001", False), ("1.0001", False), ("0", False), ("0.000", False),
    ("1.5", True), ("1.", False), (".5", False), (2, True), (0.25, True), ("2k", False),
])
def test_cpu_quantities_at_their_bounds(value, ok):
    assert accepts(Cpu, value) is ok


def test_cpu_message_and_arithmetic():
    assert message(Cpu, "lots") == "Value error, 'lots' is not a CPU quantity; use millicores like '500m' or cores like '2' or '0.5'"
    assert [cpu_millicores(q) for q in ("250m", "2", "0.5", "1.25", "0.001")] == [250, 2000, 500, 1250, 1]


@pytest.mark.parametrize("value,ok", [
    ("999999999999999", True), ("1000000000000000", False), ("1", True), ("0", False), ("0Gi", False), ("0.0Mi", False),
    ("512Mi", True), ("512mi", False), ("512MiB", False), ("1.5Gi", True), ("0.5Ki", True), ("0.001k", True),
    # A fraction of a byte: Kubernetes rounds it up and warns that it is invalid.
    ("0.0001k", False), ("1.123456789Gi", False), ("1.5", False),
    ("1.1234567890Gi", False), ("1.Gi", False), (".5Gi", False), (1024, True),
])
def test_byte_quantities_at_their_bounds(value, ok):
    assert accepts(Bytes, value) is ok


def test_memory_needs_its_unit():
    """Kubernetes reads a memory quantity without a unit as bytes: a limit of 512 bytes stops every container."""
    from settings.values import Memory

    assert [accepts(Memory, v) for v in ("512Mi", "1.5Gi", "1k", "512", 1024, "0.5")] == [True, True, True, False, False, False]
    assert message(Memory, "512") == ("Value error, '512' has no unit, so it means 512 bytes; write the unit, like '512Mi' "
                                      "for 512 mebibytes")
    assert message(Memory, "402653184") == ("Value error, '402653184' has no unit, so it means 402653184 bytes; write the "
                                            "unit (the same: '384Mi')")
    assert message(Memory, "2048").endswith("(the same: '2Ki')") and message(Memory, 2147483648).endswith("(the same: '2Gi')")
    assert message(Memory, "512 Mi").startswith("Value error, '512 Mi' is not a byte quantity")


def test_every_byte_unit_has_its_exact_factor():
    units = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
    assert {unit: byte_count(f"3{unit}") for unit in units} == {unit: 3 * factor for unit, factor in units.items()}
    assert byte_count("7") == 7
    # Fractions as Kubernetes reads them: exact where they come out whole, else rounded up to the next byte.
    assert (byte_count("1.5Gi"), byte_count("0.001k"), byte_count("0.0001k"), byte_count("1.123456789Gi")) == (
        1610612736, 1, 1, 1206302542)
    with pytest.raises(ValueError):
        byte_count("7 GB")
    assert message(Bytes, "1GB").startswith("Value error, '1GB' is not a byte quantity; use a number with Ki, Mi, Gi, Ti")


def test_yaml_numbers_become_quantities_only_where_exact():
    assert TypeAdapter(Cpu).validate_python(1.5) == "1.5" and TypeAdapter(Bytes).validate_python(999999.0) == "999999"
    assert not accepts(Bytes, 1e6)  # a float this large is left a float (its text would be exponent notation), and refused
    assert not accepts(Cpu, True) and not accepts(Cpu, math.nan)


def test_requests_may_equal_limits_but_not_exceed_them():
    make_resources("500m", "512Mi", "500m", "512Mi")
    with pytest.raises(ValidationError, match="requests.cpu 501m exceeds limits.cpu 500m"):
        make_resources("501m", "512Mi", "500m", "512Mi")
    # 536870.913k is one byte more than 512Mi.
    with pytest.raises(ValidationError, match="requests.memory 536870.913k exceeds limits.memory 512Mi"):
        Resources.model_validate({"requests": {"cpu": "1", "memory": "536870.913k"}, "limits": {"cpu": "1", "memory": "512Mi"}})


@pytest.mark.parametrize("kind,valid,invalid", [
    (DnsLabel, "a" * 63, "a" * 64),
    (DnsLabel, "a-b9", "a-b-"),
    (DnsLabel, "0abc", "abC"),
    (SqlIdentifier, "a" * 63, "a" * 64),
    (SqlIdentifier, "_estate_9", "estate-9"),
    (Hostname, ("a" * 63 + ".") * 3 + "b" * 61, ("a" * 63 + ".") * 3 + "b" * 62),
    (Hostname, "api.example.com", "api.example.co-"),
    (Hostname, "a9.example.com", "api"),
    (Hostname, "a" * 63 + ".example.com", "a" * 64 + ".example.com"),
    (Hostname, "api." + "a" * 63 + ".com", "api." + "a" * 64 + ".com"),
])
def test_names_at_their_length_and_character_edges(kind, valid, invalid):
    assert accepts(kind, valid) and not accepts(kind, invalid)


@pytest.mark.parametrize("value,ok", [
    ("postgres:17", True), ("redis:7", True), ("registry.example.com:5000/team/app:1.2.3", True),
    ("registry.example.com:123456/app:1", False), ("app:" + "t" * 128, True), ("app:" + "t" * 129, False),
    ("app@sha256:" + "a" * 64, True), ("app@sha256:" + "a" * 63, False), ("app@sha256:" + "A" * 64, False),
    ("app:1.0-rc_1", True), ("app:.1", False), ("Team/app:1", False), ("team/a__b:1", True), ("te__am/app:1", False),
    ("registry:12345/app:1", True), ("app:V1.2", True), ("app:Release", True), ("app:v1A", True), ("/app:1", False), ("team//app:1", False),
    ("team/app.:1", False), ("team/.app:1", False), ("-team/app:1", False), ("team/app-:1", False), ("team.:5000/app:1", False), ("team/app", False),
    # A first component with '.' or ':', or 'localhost', is the registry's host: a DNS name with a port that exists.
    ("my_registry.example.com/app:1", False), ("localhost_x:5000/app:1", False), ("team_a/app:1", True),
    ("registry.example.com:65535/app:1", True), ("registry.example.com:65536/app:1", False), ("registry:0/app:1", False),
    ("localhost/app:1", True), ("10.0.0.5:5000/app:1", True), ("team/a_b.c:1", True),
    ("010.0.0.5:5000/app:1", False), ("mail.1/app:1", False), ("10.0.0.256/app:1", False), ("1.2.3.4.5/app:1", False),
    ("registry:1/app:1", True), ("registry:000080/app:1", False),
])
def test_image_references_at_their_edges(value, ok):
    assert accepts(Image, value) is ok


def test_image_messages_name_the_problem():
    assert message(Image, "app") == "Value error, 'app' has no tag; pin a version like 'name:1.2.3' or a digest '@sha256:…'"
    assert message(Image, "app:latest") == "Value error, 'app:latest' uses ':latest'; pin a version so every rollout is reproducible"
    assert message(Image, "App:1") == "Value error, 'App:1' is not an image reference like 'registry/name:1.2.3'"


@pytest.mark.parametrize("value,ok", [
    ("999999999.0.0", True), ("1000000000.0.0", False), ("1.2.3", True), ("01.2.3", False), ("1.2.3-rc.1", True),
    ("0.999999999.0", True), ("0.1000000000.0", False), ("0.0.999999999", True), ("0.0.1000000000", False),
    ("1.2.3-9a", True), ("1.2.3-a9.b9", True), ("1.2.3-x9", True), ("1.2.3-rc.x9y", True), ("1.2.3-Z", True), ("1.2.3-" + "a" * 57, True), ("1.2.3-" + "a" * 58, False),
    ("1.2.3+build", False), ("1.2", False),
])
def test_semantic_versions(value, ok):
    assert accepts(SemVer, value) is ok


@pytest.mark.parametrize("value,ok", [(0, True), (100, True), (-1, False), (101, False)])
def test_percent_bounds(value, ok):
    assert accepts(Percent, value) is ok


def test_semver_and_text_messages():
    assert message(SemVer, "1.2.3-" + "a" * 58) == f"Value error, '1.2.3-{'a' * 58}' is longer than 63 characters, the most a label value can hold"
    assert message(SemVer, "1.2") == "Value error, '1.2' is not a semantic version like '1.4.2' (build metadata '+…' is not allowed)"
    assert accepts(Text, "x" * 128) and not accepts(Text, "x" * 129) and not accepts(Text, "a\nb")
    assert message(Text, "a\nb") == "Value error, must be one line of at most 128 printable characters"
    assert accepts(Text, "x") and accepts(Text, "x y")
    for padded in (" x", "x ", " x "):
        assert message(Text, padded) == f"Value error, {padded!r} begins or ends with a space; the files it is written to drop it"
    for blank in ("", " ", "   "):
        assert message(Text, blank) == "Value error, must not be empty or blank; leave the key out to mean none"


@pytest.mark.parametrize("value,ok", [
    ("registry.example.com:12345/team", True), ("registry.example.com:123456/team", False), ("registry..example.com", False),
    ("team//x", False), ("/team", False), ("team/", False), ("Team", False), ("a-b_c.d/e", False), ("a-b.c.d/e_f", True),
    # A host is a DNS name: no '_' (Docker's reference grammar and DNS refuse it), a port where a path may follow.
    ("registry_host.example.com/team", False), ("registry.example.com:5000/team", True),
    ("team/x.", False), ("team/x-", False), ("team/x.y", True),
    ("registry.example.com:65535/team", True), ("registry.example.com:65536/team", False), ("registry:0/team", False),
    ("10.0.0.1:5000/team", True), ("010.0.0.1:5000/team", False), ("registry.1/team", False),
])
def test_registry_paths(value, ok):
    assert accepts(Registry, value) is ok


def test_a_schedule_that_never_runs_is_refused_by_name():
    assert message(Cron, "0 0 31 2 *") == "Value error, '0 0 31 2 *' names a day that never comes, so it would never run"
    assert message(Cron, "0 24 * * *").startswith("Value error, '0 24 * * *' is not a cron schedule Kubernetes accepts: hour 24")


def test_defaults_are_validated_like_any_value():
    class Bad(Settings):
        cpu: Cpu = "lots"

    with pytest.raises(ValidationError, match="'lots' is not a CPU quantity"):
        Bad()


def test_settings_read_camel_case_keys_and_python_names():
    class Example(Settings):
        pool_size: int = 1

    assert Example.model_validate({"poolSize": 3}).pool_size == 3 and Example(pool_size=4).pool_size == 4
    with pytest.raises(ValidationError, match="frozen"):
        Example().pool_size = 5  # read once, never changed behind the validation
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Example.model_validate({"poolsize": 3})


# One value per range of each character class, at each place a class stands: a range dropped from any of them
# refuses its value.
@pytest.mark.parametrize("kind,value", [
    *((DnsLabel, v) for v in ("a", "9", "aza", "a9a", "az", "a9")),
    *((Hostname, v) for v in ("a.b", "9.b", "aza.b", "a9a.b", "az.b", "a9.b", "b.z", "b.9z", "b.aza", "b.a9a", "b.az", "b.a9")),
    *((Image, v) for v in ("z:1", "9:1", "a.z:1", "a.9:1", "a/z:1", "a/9:1", "a/b.z:1", "a/b.9:1", "a:Z", "a:z", "a:9",
                           "a:xZ", "a:xz", "a:x9", "a@sha256:" + "f" * 64, "a@sha256:" + "0" * 64)),
    *((Registry, v) for v in ("z", "9", "a.z", "a.9a", "a/z", "a/9", "a/b.z", "a/b.9")),
    *((SqlIdentifier, v) for v in ("z", "az", "a9")),
    *((SemVer, v) for v in ("1.0.0-z", "1.0.0-Z", "1.0.0-az", "1.0.0-aZ", "1.0.0-a9",
                            "1.0.0-x.z", "1.0.0-x.Z", "1.0.0-x.az", "1.0.0-x.aZ", "1.0.0-x.a9")),
])
def test_every_range_of_every_character_class(kind, value):
    assert accepts(kind, value)


def test_a_derived_name_is_kept_a_dns_label_within_its_limit():
    from settings.values import DNS_LABEL_RE, label_within

    assert label_within("a" * 63) == "a" * 63
    assert label_within("a" * 53, 53) == "a" * 53
    # A cut that is a DNS label stays the name it always was.
    assert label_within("a" * 53 + "-" + "b" * 20) == "a" * 53 + "-" + "b" * 9
    # A cut that ends in '-': 54 characters kept, the '-' at the cut dropped, '-' and 8 hex digits of the digest.
    long = "a" * 53 + "-" + "b" * 8 + "-" + "c" * 20
    assert label_within(long) == "a" * 53 + "-" + hashlib.sha256(long.encode()).hexdigest()[:8]
    assert label_within("c" * 64) == "c" * 63 and label_within("c" * 64, 53) == "c" * 53
    cut = label_within("d" * 52 + "-" + "e" * 10, 53)
    assert len(cut) == 53 and cut.startswith("d" * 44 + "-") and DNS_LABEL_RE.fullmatch(cut)
    assert label_within("d" * 52 + "-" + "f" * 10, 53) != cut


def test_an_ip_address_is_one_address_v4_or_v6():
    from settings.values import IpAddress

    adapter = TypeAdapter(IpAddress)
    assert adapter.validate_python("169.254.20.10") == "169.254.20.10"
    assert adapter.validate_python("fd00::10") == "fd00::10"
    for bad in ("169.254.20", "169.254.20.10/32", "dns.example.com", "", "fe80::1%eth0", "::ffff:169.254.20.10"):
        with pytest.raises(ValidationError, match=f"'{bad}' is not an IP address like '169.254.20.10'"):
            adapter.validate_python(bad)


def test_an_endpoint_is_an_address_or_a_fully_qualified_name():
    from settings.values import Endpoint

    adapter = TypeAdapter(Endpoint)
    for good in ("10.1.2.3", "fd00::5", "db.eu-west.example.com", "a.b"):
        assert adapter.validate_python(good) == good
    # Four numbers that are no address are not a host name either; nor a bare label, a zone, a line break.
    for bad in ("10.1.2.300", "10.1.2", "db", "DB.example.com", "db.example.com\nx", "fe80::1%eth0", "", "-db.example.com"):
        with pytest.raises(ValidationError, match="is neither an IP address nor a fully qualified host name like 'db.example.com'"):
            adapter.validate_python(bad)


def test_a_network_is_written_as_kubernetes_reads_it():
    from settings.values import Cidr

    adapter = TypeAdapter(Cidr)
    assert [adapter.validate_python(v) for v in ("10.0.0.0/8", "10.0.0.1", "fd00::1", "2001:DB8::/32", "0.0.0.0/0")] == [
        "10.0.0.0/8", "10.0.0.1/32", "fd00::1/128", "2001:db8::/32", "0.0.0.0/0"]
    # Go's parser (and Kubernetes) refuses an IPv6 zone and an IPv4-mapped IPv6 address; Python takes both.
    for bad in ("10.0.0.1/8", "10.0.0.0/33", "10.0.0", "example.com", "10.0.0.0/8\nx", "fe80::1%eth0", "::ffff:10.0.0.1",
                "::ffff:10.0.0.0/104"):
        with pytest.raises(ValidationError, match=r"is not a network like '10\.0\.0\.1/32' \(host bits must be zero\)"):
            adapter.validate_python(bad)


@pytest.mark.parametrize("value,ok", [
    ("api.example.com", True), ("10.0.0.1", True), ("api.9z", True), ("api.example.123", False), ("010.0.0.1", False),
    ("10.0.0.256", False), ("1.2", False),
])
def test_a_host_name_ending_in_digits_is_an_ipv4_address_as_written(value, ok):
    assert accepts(Hostname, value) is ok
