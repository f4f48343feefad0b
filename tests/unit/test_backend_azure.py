"""The Azure backend against tests/support/azure_fake.py: Entra and Resource Manager on loopback over
TLS, answering as Microsoft documents. Nothing leaves 127.0.0.1: a guard refuses to resolve or
connect to anything else, and every test checks that nothing tried."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from controller.backends.azure import AzureBackend
from controller.backends.azure.catalog import Catalog, offerings
from controller.backends.azure.images import BootImages
from controller.backends.azure.pricing import Pricing
from controller.backends.azure.sdk import connect
from controller.backends.config import AzureBackendConfig, AzureImages
from controller.backends.model import (
    TAG_CONTROLLER,
    TAG_FLEET,
    BackendConfigError,
    BackendError,
    BootImage,
    CapacityError,
    CloudInstance,
    InstanceType,
    LaunchSpec,
    Offering,
)
from tests.support.azure_fake import AzureFake
from tests.support.canonical_images import AZURE_VERSIONS

GIB = 1024**3
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
GEN2 = "Canonical:ubuntu-24_04-lts:server:latest"
GEN1 = "Canonical:ubuntu-24_04-lts:server-gen1:latest"
ARM64 = "Canonical:ubuntu-24_04-lts:server-arm64:latest"
USER_DATA = "#cloud-config\nruncmd:\n  - [echo, hello from the test]\n"


# ---- no traffic off loopback


@pytest.fixture(scope="module")
def blocked() -> Iterator[list[str]]:
    """Refuses name lookups and connections to anything but loopback for the whole module; lists tries."""
    tries: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK:
            tries.append(f"resolve {host}")
            raise OSError(f"test guard: no lookups off loopback ({host})")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            tries.append(f"connect {address}")
            raise OSError(f"test guard: no connections off loopback ({address})")
        return real_connect(self, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        mp.setattr(socket.socket, "connect", connect)
        yield tries


@pytest.fixture(scope="module")
def fake(blocked: list[str]) -> Iterator[AzureFake]:
    with AzureFake() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(fake: AzureFake, blocked: list[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Nothing from the environment may steer the SDK elsewhere: proxies, Entra regions (IMDS probes),
    # authority hosts, DefaultAzureCredential's variables, CA bundles that would replace ca_bundle.
    for name in (
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
        "AZURE_AUTHORITY_HOST", "AZURE_REGIONAL_AUTHORITY_NAME", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME", "IDENTITY_ENDPOINT", "MSI_ENDPOINT",
        "MSAL_FORCE_REGION", "REGION_NAME", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    fake.reset()
    yield
    assert blocked == [], f"traffic tried to leave loopback: {blocked}"


def make_config(fake: AzureFake, **over: Any) -> AzureBackendConfig:
    fields: dict[str, Any] = {
        "type": "azure",
        "subscription_id": fake.subscription_id,
        "tenant_id": fake.tenant_id,
        "resource_group": "dstack",
        "creds": {
            "type": "client",
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "authority_host": fake.url,
        },
        "base_url": fake.url,
        "prices_url": fake.prices_url,
        "ca_bundle": fake.ca_file,
    }
    fields.update(over)
    return AzureBackendConfig.model_validate(fields)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend(fake: AzureFake, clock: Clock) -> Iterator[AzureBackend]:
    azure = AzureBackend(make_config(fake), clock=clock)
    yield azure
    azure.close()


def offering(
    backend: AzureBackend, name: str, region: str = "westeurope", zone: str = "", spot: bool = False
) -> Offering:
    found = [o for o in backend.offerings(region) if o.instance_type.name == name and o.zone == zone and o.spot == spot]
    assert len(found) == 1, f"{name} {region}/{zone or '-'} spot={spot}: {found}"
    return found[0]


def launch(
    backend: AzureBackend, name: str, size: str, zone: str = "", spot: bool = False, controller: str = "ctl-1"
) -> CloudInstance:
    off = offering(backend, size, zone=zone, spot=spot)
    spec = LaunchSpec(
        name=name,
        offering=off,
        image=backend.boot_image(off.instance_type, off.region),
        user_data=USER_DATA,
        tags={TAG_CONTROLLER: controller, TAG_FLEET: "fleet-a"},
        disk_gb=64,
    )
    return backend.launch(spec)


def vm_put_body(fake: AzureFake, name: str) -> dict[str, Any]:
    puts = fake.calls("PUT", rf"/providers/Microsoft\.Compute/virtualMachines/{name}$")
    assert puts, f"no PUT of VM {name}"
    body: dict[str, Any] = puts[0][3]
    return body


# ---- regions


def test_regions_are_the_subscriptions_physical_locations_cached_for_the_ttl(
    fake: AzureFake, backend: AzureBackend, clock: Clock
) -> None:
    assert backend.regions() == ["westeurope", "eastus2"]  # the logical "europe" is left out
    assert backend.regions() == ["westeurope", "eastus2"]
    assert len(fake.calls("GET", r"/locations$")) == 1
    clock.now += 3601
    backend.regions()
    assert len(fake.calls("GET", r"/locations$")) == 2
    (_, _, query, _) = fake.calls("GET", r"/locations$")[0]
    assert query["api-version"]


def test_configured_regions_narrow_the_discovered_ones(fake: AzureFake) -> None:
    assert AzureBackend(make_config(fake, regions=["EastUS2"])).regions() == ["eastus2"]


def test_an_unknown_configured_region_names_the_known_ones(fake: AzureFake) -> None:
    backend = AzureBackend(make_config(fake, regions=["westeurope", "mars-north"]))
    with pytest.raises(BackendConfigError) as err:
        backend.regions()
    text = str(err.value)
    assert "mars-north" in text and fake.subscription_id in text
    assert text.endswith("it has: eastus2, westeurope")  # not the logical "europe"


# ---- offerings


def test_dsv6_is_offered_in_three_zones_on_demand_and_spot_with_retail_prices(backend: AzureBackend) -> None:
    offers = [o for o in backend.offerings("westeurope") if o.instance_type.name == "Standard_D2s_v6"]
    assert sorted((o.zone, o.spot) for o in offers) == [(z, s) for z in ("1", "2", "3") for s in (False, True)]
    # Linux consumption prices: not the Windows meter (0.188), not DevTest (0.05).
    assert {o.price for o in offers if not o.spot} == {0.096}
    assert {o.price for o in offers if o.spot} == {0.0192}
    itype = offers[0].instance_type
    assert itype == InstanceType(
        backend="azure",
        name="Standard_D2s_v6",
        arch="amd64",
        raw_arch="x64",
        vcpus=2,
        memory_bytes=8 * GIB,
        spot=True,
        hyperv_generations=("V2",),
        disk_controllers=("NVMe",),
        family="standardDSv6Family",
    )
    assert offers[0].key == "azure/westeurope/1/Standard_D2s_v6/on-demand"


def test_restricted_zones_and_locations_are_dropped(backend: AzureBackend) -> None:
    west = backend.offerings("westeurope")
    assert sorted({o.zone for o in west if o.instance_type.name == "Standard_D4s_v5"}) == ["1", "2"]
    assert not [o for o in west if o.instance_type.name == "Standard_L8s_v3"]  # NotAvailableForSubscription
    east = [o for o in backend.offerings("eastus2") if o.instance_type.name == "Standard_L8s_v3"]
    assert len(east) == 6
    assert east[0].instance_type.local_nvme_bytes == 1831424 * 1024**2
    assert {o.price for o in east if not o.spot} == {0.624}
    assert {o.price for o in east if o.spot} == {None}  # no spot meter in the price list
    assert backend.describe(["Standard_L8s_v3"], "westeurope") == {"Standard_L8s_v3": None}


def test_b_series_is_burstable_and_on_demand_only(backend: AzureBackend) -> None:
    offers = [o for o in backend.offerings("westeurope") if o.instance_type.name == "Standard_B2s"]
    assert offers and all(not o.spot for o in offers)
    itype = offers[0].instance_type
    assert itype.burstable and not itype.spot and itype.family == "standardBSFamily"
    assert {o.price for o in offers} == {0.0456}
    assert not backend.describe(["Standard_D2s_v6"])["Standard_D2s_v6"].burstable  # type: ignore[union-attr]


def test_gpu_count_and_low_priority_meters(backend: AzureBackend) -> None:
    gpu = backend.describe(["Standard_NC4as_T4_v3"])["Standard_NC4as_T4_v3"]
    assert gpu is not None and len(gpu.gpus) == 1
    assert gpu.gpus[0].name == "Standard_NC4as_T4_v3" and gpu.vcpus == 4 and gpu.memory_bytes == 28 * GIB
    # A4 v2 has a "Low Priority" meter (0.0382) besides its Spot one (0.0401): Spot wins.
    assert offering(backend, "Standard_A4_v2", zone="1", spot=True).price == 0.0401


def test_prices_come_from_the_retail_api_page_by_page(fake: AzureFake, backend: AzureBackend) -> None:
    backend.offerings("westeurope")
    pages = fake.calls("GET", r"^/api/retail/prices$")
    assert len(pages) == 4  # 16 westeurope consumption items (of 18: no DevTest, no Reservation), 4 a page
    assert pages[0][2]["$filter"] == (
        "serviceName eq 'Virtual Machines' and armRegionName eq 'westeurope' and priceType eq 'Consumption'"
    )
    assert [p[2].get("$skip") for p in pages] == [None, "4", "8", "12"]


def test_offerings_survive_a_failing_price_api(fake: AzureFake, backend: AzureBackend) -> None:
    fake.fail_prices = 500
    offers = backend.offerings("westeurope")
    assert offers and {o.price for o in offers} == {None}


def test_sizes_and_prices_are_cached_for_the_ttl(fake: AzureFake, backend: AzureBackend, clock: Clock) -> None:
    backend.offerings("westeurope")
    backend.offerings("westeurope")
    backend.describe(["Standard_D2s_v6"], "westeurope")
    skus = fake.calls("GET", r"/providers/Microsoft\.Compute/skus$")
    assert len(skus) == 2  # one listing, two pages (nextLink followed)
    assert all(q["$filter"] == "location eq 'westeurope'" for (_, _, q, _) in skus)
    assert len(fake.calls("GET", r"^/api/retail/prices$")) == 4
    clock.now += 3601
    backend.offerings("westeurope")
    assert len(fake.calls("GET", r"/providers/Microsoft\.Compute/skus$")) == 4
    assert len(fake.calls("GET", r"^/api/retail/prices$")) == 8


def test_describe_knows_the_listed_sizes_only(fake: AzureFake, backend: AzureBackend) -> None:
    found = backend.describe(["Standard_E2s_v6", "standard_d2ps_v6", "Standard_Nope", "Premium_LRS"], "eastus2")
    assert found["Standard_E2s_v6"] is not None and found["Standard_E2s_v6"].memory_bytes == 16 * GIB
    arm = found["standard_d2ps_v6"]
    assert arm is not None and arm.arch == "arm64" and arm.raw_arch == "Arm64"
    assert arm.disk_controllers == ("SCSI", "NVMe")
    assert found["Standard_Nope"] is None
    assert found["Premium_LRS"] is None  # a disk SKU, not a VM size
    # Without a region: the first region.
    assert backend.describe(["Standard_A4_v2"])["Standard_A4_v2"] is not None
    assert all("location eq" in q["$filter"] for (_, _, q, _) in fake.calls("GET", r"/skus$"))


def test_a_size_of_unknown_architecture_is_unsupported_and_not_offered(fake: AzureFake, backend: AzureBackend) -> None:
    odd = json.loads(json.dumps(next(s for s in fake.skus if s["name"] == "Standard_D2s_v6")))
    odd["name"] = "Standard_D2x_v6"
    odd["capabilities"] = [c for c in odd["capabilities"] if c["name"] != "CpuArchitectureType"]
    fake.skus.append(odd)
    itype = backend.describe(["Standard_D2x_v6"], "westeurope")["Standard_D2x_v6"]
    assert itype is not None and itype.arch == "" and "architecture" in itype.unsupported
    assert not [o for o in backend.offerings("westeurope") if o.instance_type.name == "Standard_D2x_v6"]
    with pytest.raises(BackendError, match="cannot boot"):
        backend.boot_image(itype, "westeurope")


# ---- boot images


@pytest.mark.parametrize(
    ("size", "urn", "generation", "controller"),
    [
        ("Standard_D2s_v6", GEN2, "V2", "NVMe"),
        ("Standard_E2s_v6", GEN2, "V2", "NVMe"),
        ("Standard_A4_v2", GEN1, "V1", "SCSI"),
        ("Standard_D2ps_v6", ARM64, "V2", "SCSI"),
        ("Standard_D2s_v3", GEN2, "V2", "SCSI"),
        ("Standard_B2s", GEN2, "V2", "SCSI"),
    ],
)
def test_boot_image_follows_generation_arch_and_disk_controller(
    backend: AzureBackend, size: str, urn: str, generation: str, controller: str
) -> None:
    itype = backend.describe([size], "westeurope")[size]
    assert itype is not None
    image = backend.boot_image(itype, "westeurope")
    assert (image.image, image.description, image.generation, image.disk_controller) == (
        urn,
        urn,
        generation,
        controller,
    )


def test_an_arm64_size_without_gen2_has_no_image(backend: AzureBackend) -> None:
    itype = InstanceType("azure", "Standard_X", "arm64", "Arm64", 2, 8 * GIB, hyperv_generations=("V1",))
    with pytest.raises(BackendError):
        backend.boot_image(itype, "westeurope")


def test_the_images_api_is_asked_once_per_region_and_urn(fake: AzureFake, backend: AzureBackend) -> None:
    d2s, e2s = backend.describe(["Standard_D2s_v6", "Standard_E2s_v6"], "westeurope").values()
    assert d2s is not None and e2s is not None
    backend.boot_image(d2s, "westeurope")
    backend.boot_image(e2s, "westeurope")  # the same URN: cached
    versions = fake.calls(
        "GET", r"/publishers/Canonical/artifacttypes/vmimage/offers/ubuntu-24_04-lts/skus/server/versions$"
    )
    exact = fake.calls("GET", r"/skus/server/versions/[^/]+$")
    assert len(versions) == 1 and len(exact) == 1
    # `latest` is the highest published version, compared as numbers.
    assert exact[0][1].endswith("/versions/" + AZURE_VERSIONS[-1])


@pytest.mark.parametrize(
    ("images", "size", "sentence"),
    [
        # The jammy offer's SKU naming (22_04-lts-gen2) carried over: ubuntu-24_04-lts has no such SKU.
        (
            {"gen2_amd64": "Canonical:ubuntu-24_04-lts:server-gen2:latest"},
            "Standard_D2s_v6",
            "image Canonical:ubuntu-24_04-lts:server-gen2:latest (images.gen2_amd64) is not published in westeurope",
        ),
        (
            {"gen2_amd64": "Canonical:ubuntu-24_04-lts:server:24.04.209901010"},
            "Standard_D2s_v6",
            "image Canonical:ubuntu-24_04-lts:server:24.04.209901010 (images.gen2_amd64) is not published",
        ),
        (
            {"gen2_arm64": "Canonical:ubuntu-24_04-lts:server:latest"},
            "Standard_D2ps_v6",
            "(images.gen2_arm64) is amd64, Standard_D2ps_v6 is arm64",
        ),
        (
            {"gen2_amd64": "Canonical:ubuntu-24_04-lts:server-gen1:latest"},
            "Standard_D2s_v3",
            "(images.gen2_amd64) is a Gen1 image where Gen2 is needed",
        ),
    ],
)
def test_an_image_the_api_does_not_describe_as_needed_is_refused_before_anything_is_created(
    fake: AzureFake, clock: Clock, images: dict[str, str], size: str, sentence: str
) -> None:
    backend = AzureBackend(make_config(fake, images=images), clock=clock)
    try:
        itype = backend.describe([size], "westeurope")[size]
        assert itype is not None
        with pytest.raises(BackendError) as err:
            backend.boot_image(itype, "westeurope")
        assert sentence in str(err.value)
        assert type(err.value) is BackendError and str(err.value).startswith("azure westeurope: ")
    finally:
        backend.close()
    assert not fake.calls("PUT", r".")


def test_a_pinned_version_canonical_published_boots(fake: AzureFake, clock: Clock) -> None:
    urn = f"Canonical:ubuntu-24_04-lts:server:{AZURE_VERSIONS[0]}"
    backend = AzureBackend(make_config(fake, images={"gen2_amd64": urn}), clock=clock)
    try:
        instance = launch(backend, "dstack-fleet-a-0100", "Standard_D2s_v6", zone="2")
        ref = fake.vms[instance.name.lower()]["properties"]["storageProfile"]["imageReference"]
        assert (ref["version"], ref["exactVersion"]) == (AZURE_VERSIONS[0], AZURE_VERSIONS[0])
    finally:
        backend.close()


def test_arm_refuses_a_vm_put_naming_an_image_it_does_not_publish(fake: AzureFake, backend: AzureBackend) -> None:
    """The fake's PUT answers as ARM does (404 PlatformImageNotFound, target imageReference) for a URN
    outside Canonical's list, so a default that skipped the lookup would still fail here."""
    off = offering(backend, "Standard_D2s_v6", zone="2")
    wrong = BootImage("Canonical:ubuntu-24_04-lts:server-gen2:latest", "", "V2", "NVMe")
    with pytest.raises(
        BackendError,
        match=r"PlatformImageNotFound: The platform image 'Canonical:ubuntu-24_04-lts:server-gen2:latest' is not",
    ):
        backend.launch(LaunchSpec("dstack-fleet-a-0101", off, wrong, USER_DATA, {}))
    assert fake.vms == {} and fake.nics == {}


@pytest.mark.parametrize("urn", ["Canonical:ubuntu-24_04-lts:server", "Canonical::server:latest", "ubuntu2404"])
def test_a_urn_that_is_not_four_parts_is_refused_when_read(fake: AzureFake, urn: str) -> None:
    with pytest.raises(ValueError, match="is not a URN publisher:offer:sku:version"):
        make_config(fake, images={"gen2_amd64": urn})


# ---- launch


def test_launch_dsv6_in_zone_2(fake: AzureFake, backend: AzureBackend) -> None:
    instance = launch(backend, "dstack-fleet-a-0001", "Standard_D2s_v6", zone="2")

    body = vm_put_body(fake, "dstack-fleet-a-0001")
    props = body["properties"]
    assert body["location"] == "westeurope"
    assert body["zones"] == ["2"]
    assert body["tags"] == {TAG_CONTROLLER: "ctl-1", TAG_FLEET: "fleet-a"}
    assert props["hardwareProfile"] == {"vmSize": "Standard_D2s_v6"}
    storage = props["storageProfile"]
    assert storage["imageReference"] == {
        "publisher": "Canonical",
        "offer": "ubuntu-24_04-lts",
        "sku": "server",
        "version": "latest",
    }
    assert storage["diskControllerType"] == "NVMe"
    assert storage["osDisk"] == {
        "createOption": "FromImage",
        "deleteOption": "Delete",
        "diskSizeGB": 64,
        "managedDisk": {"storageAccountType": "Premium_LRS"},
    }
    os_profile = props["osProfile"]
    assert base64.b64decode(os_profile["customData"]).decode() == USER_DATA
    assert os_profile["adminUsername"] == "dstack"
    linux = os_profile["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    (key,) = linux["ssh"]["publicKeys"]
    assert key["path"] == "/home/dstack/.ssh/authorized_keys" and key["keyData"].startswith("ssh-ed25519 ")
    assert "priority" not in props and "billingProfile" not in props

    # The NIC it created, in the region's VNet's default subnet, without a public IP.
    (nic_put,) = fake.calls("PUT", r"/networkInterfaces/dstack-fleet-a-0001-nic$")
    nic_id = fake.nics["dstack-fleet-a-0001-nic"]["id"]
    assert props["networkProfile"] == {
        "networkInterfaces": [{"id": nic_id, "properties": {"primary": True, "deleteOption": "Delete"}}]
    }
    ip_config = nic_put[3]["properties"]["ipConfigurations"][0]["properties"]
    assert "publicIPAddress" not in ip_config
    assert ip_config["subnet"]["id"] == fake.vnets["dstack-hybrid-westeurope"]["properties"]["subnets"][0]["id"]
    assert nic_put[3]["properties"]["enableAcceleratedNetworking"] is True
    (vnet_put,) = fake.calls("PUT", r"/virtualNetworks/dstack-hybrid-westeurope$")
    subnet = vnet_put[3]["properties"]["subnets"][0]
    assert subnet["name"] == "default" and subnet["properties"]["defaultOutboundAccess"] is True

    # What came back: the VM's vmId (what IMDS reports), after the create operation finished.
    vm = fake.vms["dstack-fleet-a-0001"]
    assert instance.instance_id == vm["properties"]["vmId"]
    assert instance.name == "dstack-fleet-a-0001"
    assert (instance.region, instance.zone, instance.instance_type) == ("westeurope", "2", "Standard_D2s_v6")
    assert instance.state == "running" and not instance.spot and instance.launched_at
    assert fake.calls("GET", r"/locations/westeurope/operations/")  # the LRO was polled


def test_launch_gen1_size_gets_the_gen1_image_and_scsi(fake: AzureFake, backend: AzureBackend) -> None:
    instance = launch(backend, "dstack-fleet-a-0002", "Standard_A4_v2", zone="1")
    body = vm_put_body(fake, "dstack-fleet-a-0002")
    storage = body["properties"]["storageProfile"]
    assert storage["imageReference"]["sku"] == "server-gen1"
    assert "diskControllerType" not in storage
    # Av2 takes no Premium storage; ARM would refuse Premium_LRS.
    assert storage["osDisk"]["managedDisk"] == {"storageAccountType": "StandardSSD_LRS"}
    assert body["properties"]["networkProfile"]["networkInterfaces"][0]["id"].endswith("/dstack-fleet-a-0002-nic")
    assert instance.zone == "1" and instance.state == "running"


def test_a_size_without_zones_is_offered_and_launched_regionally(fake: AzureFake, backend: AzureBackend) -> None:
    for sku in fake.skus:
        if sku["name"] == "Standard_D2s_v3":
            for info in sku["locationInfo"]:
                info["zones"] = []
    offers = [o for o in backend.offerings("westeurope") if o.instance_type.name == "Standard_D2s_v3"]
    assert sorted((o.zone, o.spot) for o in offers) == [("", False), ("", True)]
    instance = launch(backend, "dstack-fleet-a-0009", "Standard_D2s_v3")
    body = vm_put_body(fake, "dstack-fleet-a-0009")
    assert "zones" not in body and "zones" not in fake.vms["dstack-fleet-a-0009"]
    assert body["properties"]["storageProfile"]["imageReference"]["sku"] == "server"
    assert "diskControllerType" not in body["properties"]["storageProfile"]
    assert instance.zone == "" and instance.state == "running"


def test_spot_launch_asks_for_spot_with_delete_eviction_and_no_price_cap(
    fake: AzureFake, backend: AzureBackend
) -> None:
    instance = launch(backend, "dstack-fleet-a-0003", "Standard_D2ps_v6", zone="1", spot=True)
    props = vm_put_body(fake, "dstack-fleet-a-0003")["properties"]
    assert props["priority"] == "Spot"
    assert props["evictionPolicy"] == "Delete"
    assert props["billingProfile"] == {"maxPrice": -1}
    assert props["storageProfile"]["imageReference"]["sku"] == "server-arm64"
    assert "diskControllerType" not in props["storageProfile"]
    assert instance.spot


def test_the_virtual_network_is_ensured_once_per_region(fake: AzureFake, backend: AzureBackend) -> None:
    launch(backend, "dstack-a", "Standard_D2s_v6", zone="1")
    launch(backend, "dstack-b", "Standard_D2s_v6", zone="3")
    assert len(fake.calls("GET", r"/virtualNetworks/dstack-hybrid-westeurope$")) == 1
    assert len(fake.calls("PUT", r"/virtualNetworks/dstack-hybrid-westeurope$")) == 1
    # A new process finds it and leaves it as it is.
    launch(AzureBackend(make_config(fake)), "dstack-c", "Standard_D2s_v6", zone="2")
    assert len(fake.calls("GET", r"/virtualNetworks/dstack-hybrid-westeurope$")) == 2
    assert len(fake.calls("PUT", r"/virtualNetworks/dstack-hybrid-westeurope$")) == 1


@pytest.mark.parametrize(
    ("code", "status"), [("ZonalAllocationFailed", 409), ("OperationNotAllowed", 409), ("SkuNotAvailable", 409)]
)
def test_a_capacity_refusal_is_a_capacity_error_and_the_nic_is_deleted(
    fake: AzureFake, backend: AzureBackend, code: str, status: int
) -> None:
    fake.fail_next_vm_put = (code, status)
    with pytest.raises(CapacityError) as err:
        launch(backend, "dstack-fleet-a-0004", "Standard_D2s_v6", zone="2")
    assert str(err.value).startswith(f"azure westeurope: creating VM dstack-fleet-a-0004 failed: {code}: ")
    assert "\n" not in str(err.value)
    assert fake.calls("DELETE", r"/networkInterfaces/dstack-fleet-a-0004-nic$")
    assert fake.nics == {} and fake.vms == {}


def test_an_allocation_failure_reported_by_the_operation_deletes_the_failed_vm(
    fake: AzureFake, backend: AzureBackend
) -> None:
    fake.fail_next_vm_async = "AllocationFailed"
    with pytest.raises(CapacityError, match="AllocationFailed"):
        launch(backend, "dstack-fleet-a-0005", "Standard_D2s_v6", zone="2")
    assert fake.calls("DELETE", r"/virtualMachines/dstack-fleet-a-0005$")
    assert fake.vms == {} and fake.nics == {}


def test_other_refusals_are_backend_errors(fake: AzureFake, backend: AzureBackend) -> None:
    off = offering(backend, "Standard_D2s_v6", zone="2")
    spec = LaunchSpec("dstack-fleet-a-0006", off, backend.boot_image(off.instance_type, off.region), USER_DATA, {})
    fake.images.clear()  # the marketplace image is withdrawn between the check and the launch
    with pytest.raises(BackendError) as err:
        backend.launch(spec)
    assert not isinstance(err.value, CapacityError)
    assert "PlatformImageNotFound" in str(err.value)
    assert fake.nics == {}


# ---- instances and terminate


def test_instances_are_the_vms_tagged_with_the_controller(fake: AzureFake, backend: AzureBackend) -> None:
    a = launch(backend, "dstack-mine-1", "Standard_D2s_v6", zone="1")
    b = launch(backend, "dstack-mine-2", "Standard_E2s_v6", zone="3", spot=True)
    launch(backend, "dstack-other", "Standard_D2s_v6", zone="1", controller="someone-else")
    found = {i.name: i for i in backend.instances("ctl-1")}
    assert set(found) == {"dstack-mine-1", "dstack-mine-2"}
    assert found["dstack-mine-1"] == a
    mine2 = found["dstack-mine-2"]
    assert (mine2.instance_id, mine2.zone, mine2.spot, mine2.instance_type) == (
        b.instance_id,
        "3",
        True,
        "Standard_E2s_v6",
    )
    assert mine2.state == "running" and mine2.tags[TAG_FLEET] == "fleet-a"
    fake.vms["dstack-mine-1"]["properties"]["provisioningState"] = "Deleting"
    assert {i.name: i.state for i in backend.instances("ctl-1")}["dstack-mine-1"] == "deleting"


def test_terminate_deletes_the_vm_and_its_nic_and_tolerates_gone(fake: AzureFake, backend: AzureBackend) -> None:
    instance = launch(backend, "dstack-fleet-a-0007", "Standard_D2s_v6", zone="2")
    backend.terminate(instance)
    assert fake.calls("DELETE", r"/virtualMachines/dstack-fleet-a-0007$")
    assert fake.vms == {} and fake.nics == {}  # the NIC went with it (deleteOption Delete)
    assert backend.instances("ctl-1") == []
    backend.terminate(instance)  # already gone: fine


# ---- disks


def test_disks_are_created_attached_at_the_lowest_free_lun_and_detached(fake: AzureFake, backend: AzureBackend) -> None:
    vm = launch(backend, "dstack-fleet-a-0008", "Standard_D2s_v6", zone="2")
    tags = {TAG_CONTROLLER: "ctl-1"}
    first = backend.create_volume("data-1", "westeurope", "2", 10 * GIB + 1, tags)
    (put,) = fake.calls("PUT", r"/disks/data-1$")
    assert put[3] == {
        "location": "westeurope",
        "tags": tags,
        "sku": {"name": "Premium_LRS"},
        "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 11},
        "zones": ["2"],
    }
    assert first.volume_id == fake.disks["data-1"]["id"]
    assert (first.zone, first.size_bytes, first.state, first.attached_to) == ("2", 11 * GIB, "available", ())

    attached = backend.attach_volume(first, vm)
    assert (attached.lun, attached.device_serial, attached.state, attached.attached_to) == (
        0,
        "",
        "in-use",
        ("dstack-fleet-a-0008",),
    )
    assert fake.disks["data-1"]["properties"]["diskState"] == "Attached"
    seen = backend.get_volume("westeurope", first.volume_id)
    assert seen is not None and seen.state == "in-use" and seen.attached_to == ("dstack-fleet-a-0008",)

    second = backend.create_volume("data-2", "westeurope", "2", 4 * GIB, tags)
    assert backend.attach_volume(second, vm).lun == 1
    puts_before = len(fake.calls("PUT", r"/virtualMachines/dstack-fleet-a-0008$"))
    assert backend.attach_volume(first, vm).lun == 0  # already attached: same LUN, no PUT
    assert len(fake.calls("PUT", r"/virtualMachines/dstack-fleet-a-0008$")) == puts_before
    data_disks = fake.vms["dstack-fleet-a-0008"]["properties"]["storageProfile"]["dataDisks"]
    assert [(d["lun"], d["name"], d["createOption"]) for d in data_disks] == [
        (0, "data-1", "Attach"),
        (1, "data-2", "Attach"),
    ]

    backend.detach_volume(first, vm)
    data_disks = fake.vms["dstack-fleet-a-0008"]["properties"]["storageProfile"]["dataDisks"]
    assert [d["name"] for d in data_disks] == ["data-2"]
    assert fake.disks["data-1"]["properties"]["diskState"] == "Unattached"
    backend.detach_volume(first, vm)  # not attached: nothing to do
    third = backend.create_volume("data-3", "westeurope", "2", GIB, tags)
    assert backend.attach_volume(third, vm).lun == 0  # the lowest free LUN again

    by_name = backend.get_volume("westeurope", "data-2")  # a bare name is looked up in the resource group
    assert by_name is not None and by_name.volume_id == second.volume_id
    assert backend.get_volume("westeurope", "no-such-disk") is None


# ---- auth and errors


def test_the_backend_authenticates_with_the_client_secret_and_sends_the_bearer(
    fake: AzureFake, backend: AzureBackend
) -> None:
    backend.regions()
    backend.offerings("westeurope")
    entra = [r for r in fake.requests if not r[1].startswith(("/subscriptions/", "/api/retail/"))]
    assert [(m, p) for (m, p, _, _) in entra] == [
        ("GET", f"/{fake.tenant_id}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{fake.tenant_id}/oauth2/v2.0/token"),
    ]  # no instance discovery, no other host
    (form,) = fake.token_requests
    assert form["grant_type"] == "client_credentials" and form["client_id"] == fake.client_id
    assert form["scope"] == f"{fake.url}/.default"  # the audience is the configured ARM endpoint
    assert len(fake.tokens) == 1
    assert fake.arm_authorization and set(fake.arm_authorization) == {f"Bearer {fake.tokens[0]}"}


def test_a_wrong_client_secret_is_a_config_error(fake: AzureFake) -> None:
    creds = {"type": "client", "client_id": fake.client_id, "client_secret": "wrong", "authority_host": fake.url}
    backend = AzureBackend(make_config(fake, creds=creds))
    with pytest.raises(BackendConfigError, match="AADSTS7000215"):
        backend.regions()
    assert fake.arm_authorization == []  # no ARM call went out without a token


def test_resource_manager_refusals_become_backend_errors(fake: AzureFake) -> None:
    with pytest.raises(BackendConfigError, match="ResourceGroupNotFound"):
        AzureBackend(make_config(fake, resource_group="nope")).instances("ctl-1")
    other = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(BackendConfigError, match="SubscriptionNotFound"):
        AzureBackend(make_config(fake, subscription_id=other)).regions()


def test_the_fake_refuses_arm_calls_without_a_bearer(fake: AzureFake) -> None:
    context = ssl.create_default_context(cafile=fake.ca_file)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    url = f"{fake.url}/subscriptions/{fake.subscription_id}/locations?api-version=2022-12-01"
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(url, timeout=10)
    assert err.value.code == 401
    assert json.loads(err.value.read())["error"]["code"] == "AuthenticationFailed"


# ---- each part alone: built around the clients it is handed, no facade


def test_pricing_alone_reads_the_retail_api_and_never_resource_manager(fake: AzureFake, clock: Clock) -> None:
    fake.prices.reverse()  # the API promises no order: the Windows and DevTest meters come first
    pricing = Pricing(fake.prices_url, fake.ca_file, clock, 3600.0)
    prices = pricing.region_prices("westeurope")
    assert prices["standard_d2s_v6"] == (0.096, 0.0192)  # Linux consumption: not Windows, not DevTest
    assert prices["standard_b2s"] == (0.0456, None)  # no spot meter
    assert fake.tokens == [] and list(fake.arm_requests()) == []  # public API: no credential, no ARM


def test_catalog_alone_lists_sizes_through_the_client_it_is_handed(fake: AzureFake, clock: Clock) -> None:
    clients = connect(make_config(fake))
    try:
        catalog = Catalog(clients.compute, fake.subscription_id, ["westeurope"], clock, 3600.0)
        assert catalog.regions() == ["westeurope"]
        sizes = catalog.sizes("westeurope")
        assert sizes["standard_d2s_v6"].zones == ("1", "2", "3")
        assert catalog.capabilities("westeurope", "Standard_D2s_v6")["vCPUs"] == "2"
        # Without a price map every offering is unpriced (ranked by size), and no price was asked.
        assert {o.price for o in offerings(sizes, {}, "westeurope")} == {None}
        assert fake.calls("GET", r"^/api/retail/prices$") == []
    finally:
        clients.close()


def test_boot_images_alone_resolve_latest_through_the_images_operations(fake: AzureFake, clock: Clock) -> None:
    clients = connect(make_config(fake))
    try:
        images = BootImages(clients.compute.virtual_machine_images, AzureImages(), clock, 3600.0)
        found = images.published("westeurope", GEN2)
        assert found is not None and found.version == AZURE_VERSIONS[-1]
        assert (found.generation, found.arch, found.disk_controllers) == ("V2", "amd64", ("SCSI", "NVMe"))
        assert images.published("westeurope", "Canonical:ubuntu-24_04-lts:no-such-sku:latest") is None
    finally:
        clients.close()
