"""The AWS backend against moto's EC2 API on loopback (tests/support/moto_server.py).

moto serves EC2 from AWS's own data (DescribeInstanceTypes, per-zone offerings, regions), so what
is asserted about sizes here is what the real API says. moto has no Price List API: on-demand
prices are injected at the HTTP layer (botocore's before-send event), as are capacity refusals,
which moto never gives."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from controller.backends.aws import AWSBackend
from controller.backends.aws.errors import CAPACITY_CODES, backend_error
from controller.backends.aws.pricing import on_demand_prices
from controller.backends.config import AWSBackendConfig
from controller.backends.model import (
    TAG_CONTROLLER,
    TAG_FLEET,
    TAG_LAUNCH,
    BackendConfigError,
    BackendError,
    BootImage,
    CapacityError,
    CloudInstance,
    LaunchSpec,
    Offering,
)
from controller.placement.model import GpuInfo
from tests.support.canonical_images import CANONICAL_OWNER, NEWEST_NOBLE_SERVER
from tests.support.moto_server import MotoServer

GiB = 2**30
REGION = "eu-west-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_config(server: MotoServer, regions: list[str] | None = None, **extra: Any) -> AWSBackendConfig:
    return AWSBackendConfig.model_validate(
        {
            "type": "aws",
            "regions": [REGION, "us-east-1"] if regions is None else regions,
            "endpoint_url": server.url,
            "creds": {"type": "access_key", "access_key": "testing", "secret_key": "testing"},
            **extra,
        }
    )


class Calls:
    """The API operations a backend makes, counted at botocore's before-call event."""

    def __init__(self, backend: AWSBackend) -> None:
        self.names: list[str] = []
        # Clients copy the session's handlers when made: register before the backend's first call.
        backend.session.events.register("before-call", self._seen)

    def _seen(self, model: Any, **kwargs: Any) -> None:
        self.names.append(model.name)

    def count(self, name: str) -> int:
        return self.names.count(name)


def inject(backend: AWSBackend, event: str, respond: Callable[[Any], tuple[int, bytes]]) -> list[Any]:
    """Answers `event` (e.g. before-send.ec2.RunInstances) with respond(request) instead of the
    server; returns the list the requests are appended to. Register before the first call."""
    requests: list[Any] = []

    class Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **kwargs: Any) -> Iterator[bytes]:
            yield self.body

    def handler(request: Any, **kwargs: Any) -> AWSResponse:
        requests.append(request)
        status, body = respond(request)
        return AWSResponse(request.url, status, {}, Raw(body))

    backend.session.events.register(event, handler)
    return requests


def ec2_error(code: str, message: str) -> tuple[int, bytes]:
    body = (
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    )
    return 400, body.encode()


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    """The session's moto server with every resource forgotten."""
    moto_server.reset()
    return moto_server


@pytest.fixture(scope="module")
def sizes(moto_server: MotoServer) -> AWSBackend:
    """One backend for the tests that only read sizes and offerings (moto's static data): its
    cache saves each test the seconds DescribeInstanceTypes takes for ~1400 types."""
    return AWSBackend(make_config(moto_server))


@pytest.fixture(scope="module")
def eu_offerings(sizes: AWSBackend) -> list[Offering]:
    return sizes.offerings(REGION)


def by_name(offerings: list[Offering], name: str) -> list[Offering]:
    return [o for o in offerings if o.instance_type.name == name]


# -- regions ------------------------------------------------------------------------------------


def test_regions_are_the_apis_list_narrowed_by_the_config(moto: MotoServer) -> None:
    api = sorted(r["RegionName"] for r in moto.client("ec2", "us-east-1").describe_regions()["Regions"])
    assert len(api) > 10 and REGION in api

    assert AWSBackend(make_config(moto, regions=[])).regions() == api
    # The config's order is kept: the first region is describe()'s default.
    assert AWSBackend(make_config(moto, regions=["us-east-1", REGION])).regions() == ["us-east-1", REGION]


def test_the_configured_keys_and_endpoint_are_what_the_clients_use(moto: MotoServer) -> None:
    config = make_config(moto, creds={"type": "access_key", "access_key": "AKIACONFIGKEY", "secret_key": "s"})
    backend = AWSBackend(config)
    sent: list[Any] = []
    backend.session.events.register("before-send", lambda request, **kwargs: sent.append(request))
    backend.regions()
    backend.describe(["t3.micro"], region=REGION)
    assert len(sent) == 2
    assert {r.url.split("?")[0].rstrip("/") for r in sent} == {moto.url}
    assert all("Credential=AKIACONFIGKEY/" in r.headers["Authorization"].decode() for r in sent)


def test_regions_are_cached_for_the_ttl(moto: MotoServer) -> None:
    clock = Clock()
    backend = AWSBackend(make_config(moto), clock=clock, cache_ttl=60)
    calls = Calls(backend)
    assert backend.regions() == [REGION, "us-east-1"]
    backend.regions()
    assert calls.count("DescribeRegions") == 1
    clock.now += 61
    backend.regions()
    assert calls.count("DescribeRegions") == 2


def test_an_unknown_configured_region_names_it_and_lists_the_discovered_ones(moto: MotoServer) -> None:
    backend = AWSBackend(make_config(moto, regions=[REGION, "xx-nowhere-1"]))
    with pytest.raises(BackendConfigError) as err:
        backend.regions()
    text = str(err.value)
    assert "xx-nowhere-1" in text
    assert "eu-west-1, " in text and "us-east-1" in text and "ap-northeast-1" in text
    with pytest.raises(BackendConfigError):
        backend.instances("ctl")


# -- sizes and offerings -------------------------------------------------------------------------


def test_an_arm64_type_is_offered_in_each_zone_on_demand_and_spot(eu_offerings: list[Offering]) -> None:
    m7g = by_name(eu_offerings, "m7g.large")
    assert {(o.zone, o.spot) for o in m7g} == {
        (zone, spot) for zone in ("eu-west-1a", "eu-west-1b", "eu-west-1c") for spot in (False, True)
    }
    itype = m7g[0].instance_type
    assert (itype.backend, itype.arch, itype.raw_arch, itype.family) == ("aws", "arm64", "arm64", "m7g")
    assert (itype.vcpus, itype.memory_bytes) == (2, 8 * GiB)
    assert (itype.burstable, itype.gpus, itype.local_nvme_bytes, itype.unsupported) == (False, (), 0, "")
    assert all(o.region == REGION for o in eu_offerings)
    assert len({o.key for o in eu_offerings}) == len(eu_offerings)


def test_zones_come_from_the_per_zone_offerings(eu_offerings: list[Offering]) -> None:
    # AWS (and moto's copy of its data) sells h1 in eu-west-1a and c, not b.
    assert {o.zone for o in by_name(eu_offerings, "h1.2xlarge")} == {"eu-west-1a", "eu-west-1c"}


def test_sizes_as_the_api_describes_them(eu_offerings: list[Offering]) -> None:
    t3 = by_name(eu_offerings, "t3.micro")[0].instance_type
    assert (t3.arch, t3.raw_arch, t3.burstable, t3.vcpus, t3.memory_bytes) == ("amd64", "x86_64", True, 2, GiB)

    g5 = by_name(eu_offerings, "g5.xlarge")[0].instance_type
    assert g5.gpus == (GpuInfo(vendor="nvidia", name="A10G", memory_bytes=22888 * 2**20),)
    assert g5.local_nvme_bytes == 250 * 10**9

    assert by_name(eu_offerings, "m6id.large")[0].instance_type.local_nvme_bytes == 118 * 10**9
    assert by_name(eu_offerings, "i4i.large")[0].instance_type.local_nvme_bytes == 468 * 10**9

    p4 = by_name(eu_offerings, "p4d.24xlarge")
    if p4:  # eight A100s, when moto's data sells it there
        assert [g.vendor for g in p4[0].instance_type.gpus] == ["nvidia"] * 8


def test_a_mac_type_is_listed_unsupported_and_on_demand_only(eu_offerings: list[Offering]) -> None:
    mac = by_name(eu_offerings, "mac1.metal")
    assert mac and not any(o.spot for o in mac)
    itype = mac[0].instance_type
    assert (itype.arch, itype.raw_arch, itype.spot) == ("", "x86_64_mac", False)
    assert "x86_64_mac" in itype.unsupported and "arm64" in itype.unsupported


def test_spot_prices_come_from_the_history_and_a_missing_price_list_api_leaves_on_demand_unknown(
    eu_offerings: list[Offering],
) -> None:
    # moto answers DescribeSpotPriceHistory with 0.00001 everywhere and has no Price List API.
    m7g = by_name(eu_offerings, "m7g.large")
    assert {o.price for o in m7g if o.spot} == {0.00001}
    assert {o.price for o in m7g if not o.spot} == {None}


def test_offerings_are_cached_and_a_failed_price_source_is_asked_again_sooner(moto: MotoServer) -> None:
    clock = Clock()
    backend = AWSBackend(make_config(moto), clock=clock, cache_ttl=3600)
    calls = Calls(backend)
    first = backend.offerings(REGION)
    # Bounded: the sizes, the zones, one spot history sweep and the Price List API (moto: one page
    # each), however many types there are.
    assert calls.count("DescribeInstanceTypes") == 1
    assert calls.count("DescribeInstanceTypeOfferings") == 1
    assert calls.count("DescribeSpotPriceHistory") == 1
    assert 1 <= calls.count("GetProducts") <= 2  # moto has no Price List API: one retry of its 500
    made = len(calls.names)
    assert backend.offerings(REGION) == first
    assert len(calls.names) == made

    clock.now += 301  # the Price List API failed: asked again after 5 minutes, nothing else is
    before = calls.count("GetProducts")
    assert backend.offerings(REGION) == first
    assert calls.count("GetProducts") > before
    assert calls.names.count("DescribeInstanceTypes") == calls.count("DescribeSpotPriceHistory") == 1

    clock.now += 3600  # the hour is up: everything is asked again
    backend.offerings(REGION)
    assert calls.count("DescribeInstanceTypes") == calls.count("DescribeSpotPriceHistory") == 2


def price_document(instance_type: str, usd: str, region: str = REGION) -> str:
    return json.dumps(
        {
            "product": {
                "productFamily": "Compute Instance",
                "attributes": {"instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux"},
                "sku": f"SKU{instance_type}",
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    f"SKU{instance_type}.JRTCKXETXF": {
                        "priceDimensions": {
                            f"SKU{instance_type}.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": "Hrs",
                                "pricePerUnit": {"USD": usd},
                                "description": f"${usd} per On Demand Linux {instance_type} Instance Hour",
                            }
                        },
                        "termAttributes": {},
                    }
                }
            },
        }
    )


def test_on_demand_prices_come_from_the_price_list_api(moto: MotoServer) -> None:
    creds = {"type": "access_key", "access_key": "AKIACONFIGKEY", "secret_key": "s"}
    backend = AWSBackend(make_config(moto, pricing_region="us-east-1", creds=creds))
    pages = [
        {"PriceList": [price_document("m7g.large", "0.0816"), price_document("t3.micro", "0.0114")], "NextToken": "p2"},
        {"PriceList": [price_document("g5.xlarge", "1.1230000000")], "FormatVersion": "aws_v1"},
    ]
    requests = inject(
        backend,
        "before-send.pricing.GetProducts",
        lambda request: (200, json.dumps(pages[0] if b"NextToken" not in request.body else pages[1]).encode()),
    )
    offerings = backend.offerings(REGION)
    assert {o.price for o in by_name(offerings, "m7g.large") if not o.spot} == {0.0816}
    assert {o.price for o in by_name(offerings, "g5.xlarge") if not o.spot} == {1.123}
    assert {o.price for o in by_name(offerings, "m7g.large") if o.spot} == {0.00001}
    assert {o.price for o in by_name(offerings, "c5.large")} == {None, 0.00001}  # on-demand unknown, spot known

    assert len(requests) == 2  # both pages, nothing per type
    assert requests[0].url.startswith(moto.url)
    assert "Credential=AKIACONFIGKEY/" in requests[0].headers["Authorization"].decode()
    assert "/us-east-1/pricing/aws4_request" in requests[0].headers["Authorization"].decode()
    sent = json.loads(requests[0].body)
    assert sent["ServiceCode"] == "AmazonEC2"
    assert {f["Field"]: f["Value"] for f in sent["Filters"]} == {
        "regionCode": REGION,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }


def test_on_demand_price_parsing_keeps_usd_per_type_and_skips_what_it_cannot_read() -> None:
    prices = on_demand_prices(
        [
            price_document("m7g.large", "0.0816"),
            price_document("m7g.large", "0.0900"),  # a second product for a type: the cheaper wins
            price_document("t3.nano", "0.0000000000"),  # zero: no price
            price_document("x1.huge", "n/a"),
            json.dumps({"product": {"attributes": {}}, "terms": {}}),
            json.dumps(["not", "a", "product"]),
        ]
    )
    assert prices == {"m7g.large": 0.0816}


def test_describe_returns_none_for_unknown_names(moto: MotoServer) -> None:
    backend = AWSBackend(make_config(moto))
    calls = Calls(backend)
    found = backend.describe(["m7g.large", "nope.huge", "t3.micro"])
    assert list(found) == ["m7g.large", "nope.huge", "t3.micro"]
    m7g, t3 = found["m7g.large"], found["t3.micro"]
    assert m7g is not None and (m7g.arch, m7g.vcpus, m7g.memory_bytes) == ("arm64", 2, 8 * GiB)
    assert t3 is not None and t3.burstable
    assert found["nope.huge"] is None
    # The batch fails on the unknown name, then each name is asked alone.
    assert calls.count("DescribeInstanceTypes") == 4

    assert backend.describe(["m7g.large"], region="us-east-1")["m7g.large"] == m7g


# -- images -------------------------------------------------------------------------------------


def at(day: int) -> dt.datetime:
    return dt.datetime(2025, 1, day, 12, 0, tzinfo=dt.timezone.utc)


def test_the_default_filter_finds_canonicals_newest_server_image_per_architecture(
    moto: MotoServer, sizes: AWSBackend
) -> None:
    """Canonical's images as it publishes them (amd64 in the name, x86_64 in the API), with its
    newer pro, minimal, daily and EKS images beside them: the newest plain server image wins."""
    ids = moto.register_canonical_images(REGION)
    m7g, t3 = sizes.describe(["m7g.large", "t3.micro"], region=REGION).values()
    assert m7g is not None and t3 is not None
    backend = AWSBackend(make_config(moto))
    calls = Calls(backend)

    amd64 = backend.boot_image(t3, REGION)
    arm64 = backend.boot_image(m7g, REGION)

    assert amd64 == BootImage(image=ids[NEWEST_NOBLE_SERVER["amd64"]], description=NEWEST_NOBLE_SERVER["amd64"])
    assert arm64 == BootImage(image=ids[NEWEST_NOBLE_SERVER["arm64"]], description=NEWEST_NOBLE_SERVER["arm64"])
    described = moto.client("ec2", REGION).describe_images(ImageIds=[amd64.image, arm64.image])["Images"]
    assert {(i["OwnerId"], i["Architecture"]) for i in described} == {
        (CANONICAL_OWNER, "x86_64"),
        (CANONICAL_OWNER, "arm64"),
    }
    assert calls.count("DescribeImages") == 2
    # Cached per region and architecture.
    assert backend.boot_image(t3, REGION) == amd64
    assert calls.count("DescribeImages") == 2


def test_the_api_architecture_filter_is_applied_whatever_the_name_says(moto: MotoServer, sizes: AWSBackend) -> None:
    """A pattern without an architecture word, and a name that claims amd64 on an arm64 image:
    the instance type's architecture decides through the API's filter, not through the name."""
    moto.register_image(REGION, "team-base-amd64-2025-01-01", "x86_64", at(1))
    x86_new = moto.register_image(REGION, "team-base-amd64-2025-01-03", "x86_64", at(3))
    moto.register_image(REGION, "team-base-arm64-2025-01-05", "arm64", at(5))
    mislabelled = moto.register_image(REGION, "team-base-amd64-2025-01-09", "arm64", at(9))
    moto.register_image(REGION, "team-base-pending", "arm64", at(10), state="pending")
    moto.register_image(REGION, "team-base-amd64-2025-01-11", "x86_64", at(11), owner=CANONICAL_OWNER)
    m7g, t3 = sizes.describe(["m7g.large", "t3.micro"], region=REGION).values()
    assert m7g is not None and t3 is not None
    backend = AWSBackend(make_config(moto, image={"owners": ["self"], "name": "team-base-*"}))
    assert backend.boot_image(t3, REGION) == BootImage(image=x86_new, description="team-base-amd64-2025-01-03")
    # The newest arm64 image by the API's word, whatever its name claims.
    assert backend.boot_image(m7g, REGION) == BootImage(image=mislabelled, description="team-base-amd64-2025-01-09")


def test_api_arch_in_a_pattern_is_the_apis_word_as_amazon_linux_names_use_it(
    moto: MotoServer, sizes: AWSBackend
) -> None:
    """Amazon Linux puts x86_64 in its names (these are names moto ships from AWS's own listing,
    owner 137112412989): `{api_arch}` says so, where `{arch}` would say amd64."""
    amazon = "137112412989"
    x86 = moto.register_image(REGION, "al2023-ami-2023.12.20260930.0-kernel-6.1-x86_64", "x86_64", at(2), owner=amazon)
    arm = moto.register_image(REGION, "al2023-ami-2023.12.20260930.0-kernel-6.1-arm64", "arm64", at(2), owner=amazon)
    moto.register_image(
        REGION, "al2023-ami-minimal-2023.12.20260930.0-kernel-6.1-x86_64", "x86_64", at(3), owner=amazon
    )
    m7g, t3 = sizes.describe(["m7g.large", "t3.micro"], region=REGION).values()
    assert m7g is not None and t3 is not None
    image = {"owners": [amazon], "name": "al2023-ami-2023.*-kernel-6.1-{api_arch}"}
    backend = AWSBackend(make_config(moto, image=image))
    assert backend.boot_image(t3, REGION).image == x86
    assert backend.boot_image(m7g, REGION).image == arm
    wrong_word = AWSBackend(make_config(moto, image={**image, "name": "al2023-ami-2023.*-kernel-6.1-{arch}"}))
    with pytest.raises(BackendError, match=re.escape("name al2023-ami-2023.*-kernel-6.1-amd64 architecture x86_64")):
        wrong_word.boot_image(t3, REGION)


def test_no_matching_image_is_an_error_naming_the_filter(moto: MotoServer, sizes: AWSBackend) -> None:
    moto.register_image(REGION, NEWEST_NOBLE_SERVER["amd64"], "x86_64", at(1), owner=CANONICAL_OWNER)
    # Canonical's name on an image of another account: the owner filter leaves it out.
    moto.register_image(REGION, NEWEST_NOBLE_SERVER["arm64"], "arm64", at(1))
    m7g, mac = sizes.describe(["m7g.large", "mac1.metal"], region=REGION).values()
    assert m7g is not None and mac is not None
    backend = AWSBackend(make_config(moto))
    with pytest.raises(BackendError) as err:
        backend.boot_image(m7g, REGION)
    assert str(err.value) == (
        "aws eu-west-1: no image matches owners [099720109477] name "
        "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-* architecture arm64"
    )
    with pytest.raises(BackendError, match="x86_64_mac"):
        backend.boot_image(mac, REGION)


@pytest.mark.parametrize(
    ("image", "sentence"),
    [
        ({"name": "ubuntu-noble-24.04-{architecture}-server-*"}, "it may carry {arch} or {api_arch} only"),
        ({"name": "  "}, "the image name pattern must not be empty"),
        ({"owners": []}, "owners must name at least one account"),
        ({"owners": ["099720109477", "099720109477"]}, 'owner "099720109477" is listed twice'),
    ],
)
def test_a_filter_that_cannot_work_is_refused_when_read(moto: MotoServer, image: dict[str, Any], sentence: str) -> None:
    with pytest.raises(ValueError, match=re.escape(sentence)):
        make_config(moto, image=image)


# -- launching ----------------------------------------------------------------------------------

USER_DATA = "#cloud-config\nwrite_files:\n  - path: /etc/dstack/join\n    content: 'tok\u00e9n: \"x\"'\n"


def launch_spec(
    backend: AWSBackend,
    moto: MotoServer,
    type_name: str,
    zone: str,
    spot: bool = False,
    controller: str = "ctl-a",
    launch: str = "l1",
) -> LaunchSpec:
    region = zone[:-1]
    itype = backend.describe([type_name], region=region)[type_name]
    assert itype is not None
    moto.register_image(region, NEWEST_NOBLE_SERVER[itype.arch], itype.raw_arch, at(1), owner=CANONICAL_OWNER)
    image = backend.boot_image(itype, region)
    return LaunchSpec(
        name=f"dstack-fleet1-{launch}",
        offering=Offering(itype, region, zone, spot=spot),
        image=image,
        user_data=USER_DATA,
        tags={TAG_CONTROLLER: controller, TAG_FLEET: "fleet1", TAG_LAUNCH: launch},
        disk_gb=30,
    )


def describe_instance(moto: MotoServer, region: str, instance_id: str) -> dict[str, Any]:
    reservations = moto.client("ec2", region).describe_instances(InstanceIds=[instance_id])["Reservations"]
    instance: dict[str, Any] = reservations[0]["Instances"][0]
    return instance


def test_launch_lands_in_the_zones_tagged_subnet_with_tags_user_data_and_disk(moto: MotoServer) -> None:
    tagged_b = moto.tag_subnet(REGION, "eu-west-1b", "dstack-hybrid", "172.31.128.0/24")
    # Bigger (more free addresses) but in another zone: never chosen for eu-west-1b.
    moto.tag_subnet(REGION, "eu-west-1a", "dstack-hybrid", "172.31.132.0/22")
    backend = AWSBackend(make_config(moto))
    spec = launch_spec(backend, moto, "m7g.large", "eu-west-1b")

    launched = backend.launch(spec)

    assert isinstance(launched, CloudInstance)
    assert (launched.backend, launched.region, launched.zone) == ("aws", REGION, "eu-west-1b")
    assert (launched.instance_type, launched.spot, launched.name) == ("m7g.large", False, launched.instance_id)
    assert launched.instance_id.startswith("i-") and launched.state == "pending"
    assert launched.launched_at is not None and abs(launched.launched_at - dt.datetime.now().timestamp()) < 300
    assert launched.tags == {**spec.tags, "Name": "dstack-fleet1-l1"}

    described = describe_instance(moto, REGION, launched.instance_id)
    assert described["SubnetId"] == tagged_b
    assert described["ImageId"] == spec.image.image
    assert {t["Key"]: t["Value"] for t in described["Tags"]} == launched.tags
    assert "InstanceLifecycle" not in described
    ec2 = moto.client("ec2", REGION)
    encoded = ec2.describe_instance_attribute(InstanceId=launched.instance_id, Attribute="userData")["UserData"][
        "Value"
    ]
    assert base64.b64decode(encoded).decode() == USER_DATA

    (root,) = described["BlockDeviceMappings"]
    assert root["DeviceName"] == "/dev/sda1"
    volume = ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
    assert (volume["Size"], volume["VolumeType"], volume["AvailabilityZone"]) == (30, "gp3", "eu-west-1b")


def test_launch_without_a_tagged_subnet_uses_the_zones_default_subnet(moto: MotoServer) -> None:
    backend = AWSBackend(make_config(moto))
    spec = launch_spec(backend, moto, "t3.micro", "eu-west-1c")
    launched = backend.launch(spec)
    default = moto.client("ec2", REGION).describe_subnets(
        Filters=[
            {"Name": "availability-zone", "Values": ["eu-west-1c"]},
            {"Name": "default-for-az", "Values": ["true"]},
        ]
    )["Subnets"][0]["SubnetId"]
    assert launched.zone == "eu-west-1c"
    assert describe_instance(moto, REGION, launched.instance_id)["SubnetId"] == default


def test_launch_in_a_zone_without_a_subnet_names_the_zone(moto: MotoServer) -> None:
    ec2 = moto.client("ec2", REGION)
    for subnet in ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": ["eu-west-1c"]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    backend = AWSBackend(make_config(moto))
    spec = launch_spec(backend, moto, "t3.micro", "eu-west-1c")
    with pytest.raises(BackendError, match=r"^aws eu-west-1: no subnet in eu-west-1c: tag one with dstack-hybrid"):
        backend.launch(spec)


def test_a_spot_launch_buys_spot(moto: MotoServer) -> None:
    backend = AWSBackend(make_config(moto))
    launched = backend.launch(launch_spec(backend, moto, "m7g.large", "eu-west-1a", spot=True))
    assert launched.spot
    assert describe_instance(moto, REGION, launched.instance_id)["InstanceLifecycle"] == "spot"
    (found,) = backend.instances("ctl-a")
    assert found.spot and found.instance_id == launched.instance_id


def test_instances_are_found_by_controller_tag_in_every_region_until_terminated(moto: MotoServer) -> None:
    backend = AWSBackend(make_config(moto))
    mine_eu = backend.launch(launch_spec(backend, moto, "m7g.large", "eu-west-1b", launch="l1"))
    mine_us = backend.launch(launch_spec(backend, moto, "t3.micro", "us-east-1a", launch="l2"))
    other = backend.launch(launch_spec(backend, moto, "t3.micro", "eu-west-1a", controller="ctl-b", launch="l3"))
    image_id = describe_instance(moto, REGION, mine_eu.instance_id)["ImageId"]  # RunInstances checks the id
    untagged = moto.client("ec2", REGION).run_instances(ImageId=image_id, MinCount=1, MaxCount=1)
    assert untagged["Instances"][0]["InstanceId"] not in (mine_eu.instance_id, other.instance_id)

    found = {i.instance_id: i for i in backend.instances("ctl-a")}
    assert set(found) == {mine_eu.instance_id, mine_us.instance_id}
    assert found[mine_us.instance_id].region == "us-east-1" and found[mine_us.instance_id].zone == "us-east-1a"
    assert found[mine_eu.instance_id].tags[TAG_LAUNCH] == "l1"
    assert found[mine_eu.instance_id].state in ("pending", "running")
    assert [i.instance_id for i in backend.instances("ctl-b")] == [other.instance_id]

    backend.terminate(mine_eu)
    assert {i.instance_id for i in backend.instances("ctl-a")} == {mine_us.instance_id}
    backend.terminate(mine_eu)  # already terminated
    backend.terminate(CloudInstance("aws", REGION, "eu-west-1a", "i-0123456789abcdef0", "t3.micro", "running"))
    assert {i.instance_id for i in backend.instances("ctl-a")} == {mine_us.instance_id}


def test_a_type_the_region_does_not_sell_is_a_backend_error_not_capacity(moto: MotoServer) -> None:
    backend = AWSBackend(make_config(moto))
    spec = launch_spec(backend, moto, "t3.micro", "eu-west-1a")
    c8gb = backend.describe(["c8gb.large"], region=REGION)["c8gb.large"]  # described, but not sold in eu-west-1
    assert c8gb is not None
    unsold = LaunchSpec(spec.name, Offering(c8gb, REGION, "eu-west-1a", False), spec.image, spec.user_data, spec.tags)
    with pytest.raises(BackendError) as err:
        backend.launch(unsold)
    assert type(err.value) is BackendError
    assert str(err.value).startswith("aws eu-west-1: RunInstances failed: ")
    assert "c8gb.large" in str(err.value) and "(InvalidInstanceType" in str(err.value)


def test_a_capacity_refusal_from_run_instances_is_a_capacity_error(moto: MotoServer) -> None:
    backend = AWSBackend(make_config(moto))
    message = "We currently do not have sufficient m7g.large capacity in the Availability Zone you requested."
    requests = inject(
        backend, "before-send.ec2.RunInstances", lambda request: ec2_error("InsufficientInstanceCapacity", message)
    )
    spec = launch_spec(backend, moto, "m7g.large", "eu-west-1b", spot=True)
    with pytest.raises(CapacityError) as err:
        backend.launch(spec)
    assert str(err.value) == f"aws eu-west-1: RunInstances failed: {message} (InsufficientInstanceCapacity)"
    assert len(requests) == 1  # not retried
    sent = requests[0].body.decode() if isinstance(requests[0].body, bytes) else requests[0].body
    assert "InstanceMarketOptions.MarketType=spot" in sent
    assert "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior=terminate" in sent
    assert "InstanceMarketOptions.SpotOptions.SpotInstanceType=one-time" in sent
    assert re.search(r"(^|&)ClientToken=[0-9a-f]{64}(&|$)", sent)  # moto ignores it; AWS makes retries idempotent
    assert backend.instances("ctl-a") == []


@pytest.mark.parametrize("code", sorted(CAPACITY_CODES))
def test_capacity_and_quota_codes_map_to_capacity_error(code: str) -> None:
    exc = ClientError({"Error": {"Code": code, "Message": "no"}}, "RunInstances")
    error = backend_error(REGION, "RunInstances", exc)
    assert isinstance(error, CapacityError)
    assert str(error) == f"aws eu-west-1: RunInstances failed: no ({code})"


def test_other_errors_map_to_backend_and_config_errors() -> None:
    def mapped(code: str, operation: str = "RunInstances") -> BackendError:
        return backend_error(REGION, operation, ClientError({"Error": {"Code": code, "Message": "m"}}, operation))

    assert type(mapped("InvalidParameterValue")) is BackendError
    assert type(mapped("InsufficientInstanceCapacity", "DescribeInstances")) is BackendError
    assert type(mapped("AuthFailure", "DescribeInstanceTypes")) is BackendConfigError
    assert type(mapped("UnauthorizedOperation")) is BackendConfigError
    assert str(mapped("AuthFailure", "DescribeRegions")) == "aws eu-west-1: DescribeRegions failed: m (AuthFailure)"
    assert type(backend_error(REGION, "DescribeRegions", NoCredentialsError())) is BackendConfigError
    unreachable = backend_error(REGION, "DescribeRegions", EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert type(unreachable) is BackendError
    assert str(unreachable).startswith("aws eu-west-1: DescribeRegions failed: Could not connect")


def test_sdk_errors_never_escape(moto: MotoServer) -> None:
    backend = AWSBackend(make_config(moto))
    inject(backend, "before-send.ec2.DescribeRegions", lambda request: (200, b"<not-xml"))
    with pytest.raises(BackendError, match=r"^aws us-east-1: DescribeRegions failed: Unable to parse response"):
        backend.regions()

    t3 = backend.describe(["t3.micro"], region=REGION)["t3.micro"]
    assert t3 is not None
    unknown_image = LaunchSpec("n", Offering(t3, REGION, "eu-west-1a", False), BootImage("ami-0bad", ""), "", {})
    with pytest.raises(BackendError, match=r"^aws eu-west-1: DescribeImages failed: .*\(InvalidAMIID.NotFound\)$"):
        backend.launch(unknown_image)


# -- volumes ------------------------------------------------------------------------------------


def test_detach_refused_as_incorrect_state_is_fine_only_when_not_attached_there(moto: MotoServer) -> None:
    backend = AWSBackend(make_config(moto))
    inject(backend, "before-send.ec2.DetachVolume", lambda request: ec2_error("IncorrectState", "busy"))
    instance = backend.launch(launch_spec(backend, moto, "t3.micro", "eu-west-1a"))
    volume = backend.create_volume("v", REGION, "eu-west-1a", GiB, {})
    backend.detach_volume(volume, instance)  # available: attached nowhere
    moto.client("ec2", REGION).attach_volume(
        VolumeId=volume.volume_id, InstanceId=instance.instance_id, Device="/dev/sdh"
    )
    with pytest.raises(BackendError, match=r"DetachVolume failed: busy \(IncorrectState\)"):
        backend.detach_volume(volume, instance)


def test_volumes_are_created_attached_idempotently_and_detached(moto: MotoServer) -> None:
    backend = AWSBackend(make_config(moto))
    calls = Calls(backend)
    instance = backend.launch(launch_spec(backend, moto, "m7g.large", "eu-west-1b"))

    volume = backend.create_volume("data", REGION, "eu-west-1b", 10 * GiB + 1, {TAG_FLEET: "fleet1"})
    assert (volume.backend, volume.region, volume.zone) == ("aws", REGION, "eu-west-1b")
    assert volume.size_bytes == 11 * GiB  # rounded up to whole GiB
    assert volume.state == "available" and volume.attached_to == ()
    assert volume.volume_id.startswith("vol-")
    assert volume.device_serial == "vol" + volume.volume_id[4:] and "-" not in volume.device_serial
    described = moto.client("ec2", REGION).describe_volumes(VolumeIds=[volume.volume_id])["Volumes"][0]
    assert described["VolumeType"] == "gp3"
    assert {t["Key"]: t["Value"] for t in described["Tags"]} == {TAG_FLEET: "fleet1", "Name": "data"}

    assert backend.get_volume(REGION, volume.volume_id) == volume
    assert backend.get_volume(REGION, "vol-0123456789abcdef0") is None

    attached = backend.attach_volume(volume, instance)
    assert attached.attached_to == (instance.instance_id,) and attached.state == "in-use"
    assert attached.device_serial == volume.device_serial
    again = backend.attach_volume(attached, instance)
    assert again.attached_to == (instance.instance_id,)
    assert calls.count("AttachVolume") == 1
    (attachment,) = moto.client("ec2", REGION).describe_volumes(VolumeIds=[volume.volume_id])["Volumes"][0][
        "Attachments"
    ]
    assert (attachment["InstanceId"], attachment["Device"]) == (instance.instance_id, "/dev/sdf")

    second = backend.create_volume("data2", REGION, "eu-west-1b", GiB, {})
    backend.attach_volume(second, instance)
    (attachment,) = moto.client("ec2", REGION).describe_volumes(VolumeIds=[second.volume_id])["Volumes"][0][
        "Attachments"
    ]
    assert attachment["Device"] == "/dev/sdg"  # sdf is taken

    backend.detach_volume(attached, instance)
    detached = backend.get_volume(REGION, volume.volume_id)
    assert detached is not None and detached.attached_to == () and detached.state == "available"
    backend.detach_volume(attached, instance)  # already detached
