"""Azure on loopback: an HTTPS server answering the Microsoft Entra and Azure Resource Manager calls
the Azure backend makes, with responses shaped like Microsoft's documented ones, and the Retail
Prices API on the same port.

    with AzureFake() as fake:
        config = AzureBackendConfig(type="azure", subscription_id=fake.subscription_id, ...,
                                    base_url=fake.url, prices_url=fake.prices_url, ca_bundle=fake.ca_file,
                                    creds={"type": "client", ..., "authority_host": fake.url})

TLS with a certificate made at start (a throwaway CA in `ca_file` signs the server's, SAN 127.0.0.1
and localhost): the SDK's bearer-token policy refuses plain HTTP. Entra: the tenant's OpenID
discovery document and its token endpoint (client credentials); every ARM call must carry
`Authorization: Bearer <a token it issued>` or gets ARM's 401. Any api-version is accepted.

ARM is modelled as far as the backend needs and as the real one refuses: a VM PUT is checked against
the size's SKU (region, zones, restrictions, Hyper-V generation, architecture, disk controllers,
Premium storage, Spot), the image catalogue and the NIC it names. The catalogue is the images
Canonical publishes (tests/support/canonical_images.py), served by the Virtual Machine Images API
(a SKU's versions, one version's generation, architecture and disk controllers; 404 NotFound
"Artifact: VMImage was not found." otherwise); a PUT naming any other URN or version gets ARM's 404
PlatformImageNotFound. A VM PUT answers 201 with
provisioningState Creating and an Azure-AsyncOperation header, and the operation reports Succeeded
(or a queued failure, as allocation failures arrive) when polled. `fail_next_vm_put = (code, status)`
makes the next VM PUT fail synchronously instead (quota, SkuNotAvailable).

Every request is kept in `requests` as (method, path, query, body); `vms`, `nics`, `vnets` and `disks`
hold the resources (ARM JSON) by lower-case name; `reset()` restores the start state.
"""

from __future__ import annotations

import base64
import copy
import datetime
import ipaddress
import json
import re
import shutil
import ssl
import tempfile
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.canonical_images import AZURE_CANONICAL_IMAGES

SUBSCRIPTION_ID = "6f1c2a4e-0b7d-4c53-9a51-2d8e3f4b5a60"
TENANT_ID = "72f988bf-0000-4000-8000-2d7cd011db47"
CLIENT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CLIENT_SECRET = "fake~client~secret"
RESOURCE_GROUP = "dstack"

Json = dict[str, Any]
Answer = tuple[int, Any, dict[str, str]]  # status, JSON body (None: empty), extra headers

# ---- documented shapes: locations, resource SKUs, retail prices, the image catalogue


def _location(sub: str, name: str, display: str, group: str, lon: str, lat: str, physical: str, pair: str) -> Json:
    return {
        "id": f"/subscriptions/{sub}/locations/{name}",
        "name": name,
        "type": "Region",
        "displayName": display,
        "regionalDisplayName": f"({group}) {display}",
        "metadata": {
            "regionType": "Physical",
            "regionCategory": "Recommended",
            "geography": group,
            "geographyGroup": group,
            "longitude": lon,
            "latitude": lat,
            "physicalLocation": physical,
            "pairedRegion": [{"name": pair, "id": f"/subscriptions/{sub}/locations/{pair}"}],
        },
        "availabilityZoneMappings": [{"logicalZone": z, "physicalZone": f"{name}-az{z}"} for z in ("1", "2", "3")],
    }


def default_locations(sub: str) -> list[Json]:
    return [
        _location(sub, "westeurope", "West Europe", "Europe", "4.9", "52.3667", "Netherlands", "northeurope"),
        _location(sub, "eastus2", "East US 2", "US", "-78.3889", "36.6681", "Virginia", "centralus"),
        {  # a logical region (a geography): no VMs there, regions() must ignore it
            "id": f"/subscriptions/{sub}/locations/europe",
            "name": "europe",
            "type": "Region",
            "displayName": "Europe",
            "regionalDisplayName": "Europe",
            "metadata": {
                "regionType": "Logical",
                "regionCategory": "Other",
                "geography": "Europe",
                "geographyGroup": "Europe",
            },
        },
    ]


def _common_caps(vcpus: int, memory_gb: str, **extra: str) -> dict[str, str]:
    caps = {
        "MaxResourceVolumeMB": "0",
        "OSVhdSizeMB": "1047552",
        "vCPUs": str(vcpus),
        "MemoryPreservingMaintenanceSupported": "True",
        "HyperVGenerations": "V1,V2",
        "MemoryGB": memory_gb,
        "MaxDataDiskCount": str(min(64, vcpus * 4)),
        "CpuArchitectureType": "x64",
        "LowPriorityCapable": "True",
        "PremiumIO": "True",
        "VMDeploymentTypes": "IaaS",
        "vCPUsAvailable": str(vcpus),
        "vCPUsPerCore": "2",
        "EphemeralOSDiskSupported": "False",
        "EncryptionAtHostSupported": "True",
        "CapacityReservationSupported": "True",
        "AcceleratedNetworkingEnabled": "True",
        "RdmaEnabled": "False",
        "MaxNetworkInterfaces": "2",
    }
    caps.update(extra)
    return caps


# name -> (family, size, capabilities); the same in every region unless RESTRICTIONS says otherwise.
VM_SIZES: dict[str, tuple[str, str, dict[str, str]]] = {
    # Intel v6: Gen2 only, NVMe only (no SCSI controller).
    "Standard_D2s_v6": (
        "standardDSv6Family",
        "D2s_v6",
        _common_caps(2, "8", HyperVGenerations="V2", DiskControllerTypes="NVMe"),
    ),
    "Standard_E2s_v6": (
        "standardESv6Family",
        "E2s_v6",
        _common_caps(2, "16", HyperVGenerations="V2", DiskControllerTypes="NVMe"),
    ),
    # Cobalt 100 (Arm64): Gen2 only; both controllers, SCSI the default.
    "Standard_D2ps_v6": (
        "standardDPSv6Family",
        "D2ps_v6",
        _common_caps(2, "8", HyperVGenerations="V2", CpuArchitectureType="Arm64", DiskControllerTypes="SCSI, NVMe"),
    ),
    # Av2: Gen1 only, no DiskControllerTypes capability (SCSI), no Premium storage.
    "Standard_A4_v2": (
        "standardAv2Family",
        "A4_v2",
        _common_caps(
            4,
            "8",
            HyperVGenerations="V1",
            PremiumIO="False",
            AcceleratedNetworkingEnabled="False",
            MaxResourceVolumeMB="40960",
        ),
    ),
    "Standard_D2s_v3": (
        "standardDSv3Family",
        "D2s_v3",
        _common_caps(
            2, "8", DiskControllerTypes="SCSI", MaxResourceVolumeMB="16384", AcceleratedNetworkingEnabled="False"
        ),
    ),
    # B-series: burstable, not offered as Spot.
    "Standard_B2s": (
        "standardBSFamily",
        "B2s",
        _common_caps(
            2, "4", LowPriorityCapable="False", MaxResourceVolumeMB="8192", AcceleratedNetworkingEnabled="False"
        ),
    ),
    "Standard_NC4as_T4_v3": (
        "standardNCASv3_T4Family",
        "NC4as_T4_v3",
        _common_caps(4, "28", GPUs="1", MaxResourceVolumeMB="180224"),
    ),
    "Standard_D4s_v5": ("standardDSv5Family", "D4s_v5", _common_caps(4, "16", DiskControllerTypes="SCSI")),
    # Lsv3: local NVMe.
    "Standard_L8s_v3": (
        "standardLSv3Family",
        "L8s_v3",
        _common_caps(8, "64", MaxResourceVolumeMB="81920", NvmeDiskSizeInMiB="1831424"),
    ),
}

# (size, region) -> restrictions, as the SKU API lists them.
RESTRICTIONS: dict[tuple[str, str], list[Json]] = {
    ("Standard_D4s_v5", "westeurope"): [
        {
            "type": "Zone",
            "values": ["westeurope"],
            "restrictionInfo": {"locations": ["westeurope"], "zones": ["3"]},
            "reasonCode": "NotAvailableForSubscription",
        }
    ],
    ("Standard_L8s_v3", "westeurope"): [
        {
            "type": "Location",
            "values": ["westeurope"],
            "restrictionInfo": {"locations": ["westeurope"]},
            "reasonCode": "NotAvailableForSubscription",
        }
    ],
}


def default_skus(regions: tuple[str, ...] = ("westeurope", "eastus2")) -> list[Json]:
    skus: list[Json] = []
    for region in regions:
        for name, (family, size, caps) in VM_SIZES.items():
            skus.append(
                {
                    "resourceType": "virtualMachines",
                    "name": name,
                    "tier": "Standard",
                    "size": size,
                    "family": family,
                    "locations": [region],
                    "locationInfo": [{"location": region, "zones": ["1", "2", "3"], "zoneDetails": []}],
                    "capabilities": [{"name": k, "value": v} for k, v in caps.items()],
                    "restrictions": copy.deepcopy(RESTRICTIONS.get((name, region), [])),
                }
            )
        skus.append(  # the listing has every Microsoft.Compute resource type, not only VMs
            {
                "resourceType": "disks",
                "name": "Premium_LRS",
                "tier": "Premium",
                "size": "P1",
                "family": "PremiumSSD",
                "locations": [region],
                "locationInfo": [{"location": region, "zones": ["1", "2", "3"], "zoneDetails": []}],
                "capabilities": [{"name": "MaxSizeGiB", "value": "4"}, {"name": "MinSizeGiB", "value": "0"}],
                "restrictions": [],
            }
        )
    return skus


def _price(region: str, arm_sku: str, meter: str, product: str, price: float, **over: Any) -> Json:
    item = {
        "currencyCode": "USD",
        "tierMinimumUnits": 0.0,
        "retailPrice": price,
        "unitPrice": price,
        "armRegionName": region,
        "location": {"westeurope": "EU West", "eastus2": "US East 2"}.get(region, region),
        "effectiveStartDate": "2024-10-01T00:00:00Z",
        "meterId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{region}/{meter}/{product}")),
        "meterName": meter,
        "productId": "DZH318Z0" + format(abs(hash(product)) % 0xFFFF, "04X"),
        "skuId": "DZH318Z0BQ4H/00" + format(abs(hash(meter)) % 0xFF, "02X"),
        "productName": product,
        "skuName": meter,
        "serviceName": "Virtual Machines",
        "serviceId": "DZH313Z7MMC8",
        "serviceFamily": "Compute",
        "unitOfMeasure": "1 Hour",
        "type": "Consumption",
        "isPrimaryMeterRegion": True,
        "armSkuName": arm_sku,
    }
    item.update(over)
    return item


def default_prices() -> list[Json]:
    we, e2 = "westeurope", "eastus2"
    return [
        _price(we, "Standard_D2s_v6", "D2s v6", "Virtual Machines Dsv6 Series", 0.096),
        _price(we, "Standard_D2s_v6", "D2s v6", "Virtual Machines Dsv6 Series Windows", 0.188),
        _price(we, "Standard_D2s_v6", "D2s v6 Spot", "Virtual Machines Dsv6 Series", 0.0192),
        _price(we, "Standard_D2s_v6", "D2s v6", "Virtual Machines Dsv6 Series", 0.05, type="DevTestConsumption"),
        _price(we, "Standard_E2s_v6", "E2s v6", "Virtual Machines Esv6 Series", 0.126),
        _price(we, "Standard_E2s_v6", "E2s v6 Spot", "Virtual Machines Esv6 Series", 0.0252),
        _price(we, "Standard_D2ps_v6", "D2ps v6", "Virtual Machines Dpsv6 Series", 0.0768),
        _price(we, "Standard_D2ps_v6", "D2ps v6 Spot", "Virtual Machines Dpsv6 Series", 0.0154),
        _price(we, "Standard_A4_v2", "A4 v2", "Virtual Machines Av2 Series", 0.191),
        _price(we, "Standard_A4_v2", "A4 v2 Low Priority", "Virtual Machines Av2 Series", 0.0382),
        _price(we, "Standard_A4_v2", "A4 v2 Spot", "Virtual Machines Av2 Series", 0.0401),
        _price(we, "Standard_D2s_v3", "D2s v3", "Virtual Machines DSv3 Series", 0.115),
        _price(we, "Standard_B2s", "B2s", "Virtual Machines BS Series", 0.0456),
        _price(we, "Standard_B2s", "B2s", "Virtual Machines BS Series Windows", 0.0536),
        _price(we, "Standard_NC4as_T4_v3", "NC4as T4 v3", "Virtual Machines NCasv3_T4 Series", 0.596),
        _price(we, "Standard_NC4as_T4_v3", "NC4as T4 v3 Spot", "Virtual Machines NCasv3_T4 Series", 0.1192),
        _price(we, "Standard_D4s_v5", "D4s v5", "Virtual Machines Dsv5 Series", 0.23),
        _price(
            we,
            "Standard_D4s_v5",
            "D4s v5",
            "Virtual Machines Dsv5 Series",
            1110.0,
            type="Reservation",
            unitOfMeasure="1 Hour",
            reservationTerm="1 Year",
        ),
        _price(e2, "Standard_D2s_v6", "D2s v6", "Virtual Machines Dsv6 Series", 0.096),
        _price(e2, "Standard_D2s_v6", "D2s v6 Spot", "Virtual Machines Dsv6 Series", 0.0211),
        _price(e2, "Standard_L8s_v3", "L8s v3", "Virtual Machines Lsv3 Series", 0.624),
    ]


# (publisher, offer, sku) lower-case -> what the marketplace image is and its versions (oldest
# first): the SKUs Canonical publishes (tests/support/canonical_images.py), and no others.
IMAGES: dict[tuple[str, str, str], Json] = {
    (publisher.lower(), offer.lower(), sku.lower()): {**image, "names": (publisher, offer, sku)}
    for (publisher, offer, sku), image in AZURE_CANONICAL_IMAGES.items()
}
IMAGE_NOT_FOUND = "Artifact: VMImage was not found."  # ARM's answer for an image it does not publish


# ---- TLS


def _make_certificates(where: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server.key): a throwaway CA and the server certificate it signs."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azure-fake test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = where / "ca.pem", where / "server.pem", where / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        # The handshake happens in the request's thread, so a slow client holds up no one.
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


def _error(status: int, code: str, message: str) -> Answer:
    return status, {"error": {"code": code, "message": message}}, {}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0+00:00")


class AzureFake:
    def __init__(
        self,
        *,
        subscription_id: str = SUBSCRIPTION_ID,
        tenant_id: str = TENANT_ID,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        resource_groups: tuple[str, ...] = (RESOURCE_GROUP,),
        price_page_size: int = 4,
        sku_page_size: int = 7,
    ) -> None:
        self.subscription_id = subscription_id
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.resource_groups = {rg.lower(): rg for rg in resource_groups}
        self.price_page_size = price_page_size
        self.sku_page_size = sku_page_size
        self._lock = threading.RLock()
        self._dir = Path(tempfile.mkdtemp(prefix="azure-fake-"))
        ca_file, cert_file, key_file = _make_certificates(self._dir)
        self.ca_file = str(ca_file)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(cert_file), str(key_file))
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = fake.handle(self.command, self.path, dict(self.headers.items()), raw)
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-ms-request-id", str(uuid.uuid4()))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _handle

        self._httpd = _TLSServer(("127.0.0.1", 0), Handler)
        self._httpd.tls = tls
        self.url = f"https://127.0.0.1:{self._httpd.server_address[1]}"
        self.prices_url = f"{self.url}/api/retail/prices"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self.reset()

    # ---- lifecycle

    def start(self) -> AzureFake:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> AzureFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to the start: no resources, no requests, the default catalogue, no queued failures."""
        with self._lock:
            self.requests: list[tuple[str, str, dict[str, str], Any]] = []
            self.arm_authorization: list[str] = []  # the Authorization header of every ARM call
            self.tokens: list[str] = []  # access tokens issued
            self.token_requests: list[dict[str, str]] = []  # token POST forms, client_secret removed
            self.locations = default_locations(self.subscription_id)
            self.skus = default_skus()
            self.prices = default_prices()
            self.images = copy.deepcopy(IMAGES)
            self.vms: dict[str, Json] = {}
            self.nics: dict[str, Json] = {}
            self.vnets: dict[str, Json] = {}
            self.disks: dict[str, Json] = {}
            self.operations: dict[str, Json] = {}
            self.fail_next_vm_put: tuple[str, int] | None = None
            self.fail_next_vm_async: str | None = None  # the allocation error the next create's operation reports
            self.fail_prices: int | None = None  # an HTTP status for every Retail Prices call

    # ---- queries for tests

    def calls(self, method: str, pattern: str) -> list[tuple[str, str, dict[str, str], Any]]:
        """The recorded requests with this method whose path matches the regex (case-insensitive)."""
        with self._lock:
            return [r for r in self.requests if r[0] == method and re.search(pattern, r[1], re.I)]

    # ---- dispatch

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Answer:
        split = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(split.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        body: Any = None
        if raw:
            if "json" in content_type:
                body = json.loads(raw)
            elif "x-www-form-urlencoded" in content_type:
                body = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode(), keep_blank_values=True).items()}
            else:
                body = raw.decode(errors="replace")
        with self._lock:
            recorded = body
            if isinstance(body, dict) and "client_secret" in body:
                recorded = {k: v for k, v in body.items() if k != "client_secret"}
            self.requests.append((method, path, query, recorded))
            return self._route(method, path, query, headers, body)

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> Answer:
        m = re.fullmatch(r"/([^/]+)/v2\.0/\.well-known/openid-configuration", path)
        if m and method == "GET":
            return self._openid_configuration(m.group(1))
        m = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", path)
        if m and method == "POST":
            return self._token(m.group(1), headers, body)
        if path == "/api/retail/prices" and method == "GET":
            return self._retail_prices(query)
        if not path.lower().startswith("/subscriptions/"):
            return 404, {"error": "not_found", "error_description": f"no such endpoint: {path}"}, {}

        authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        self.arm_authorization.append(authorization)
        if not authorization.startswith("Bearer ") or authorization[len("Bearer ") :] not in self.tokens:
            status, err, _ = (
                _error(401, "InvalidAuthenticationToken", "The access token is invalid.")
                if authorization
                else _error(
                    401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
                )
            )
            challenge = f'Bearer authorization_uri="{self.url}/{self.tenant_id}", error="invalid_token"'
            return status, err, {"WWW-Authenticate": challenge}

        parts = path.strip("/").split("/")
        if parts[1].lower() != self.subscription_id.lower():
            return _error(404, "SubscriptionNotFound", f"The subscription '{parts[1]}' could not be found.")
        rest = "/".join(parts[2:])
        if re.fullmatch(r"locations", rest, re.I) and method == "GET":
            return 200, {"value": self.locations}, {}
        if re.fullmatch(r"providers/Microsoft\.Compute/skus", rest, re.I) and method == "GET":
            return self._skus(query)
        m = re.fullmatch(r"providers/Microsoft\.(?:Compute|Network)/locations/([^/]+)/operations/([^/]+)", rest, re.I)
        if m and method == "GET":
            return self._operation(m.group(2))
        m = re.fullmatch(
            r"providers/Microsoft\.Compute/locations/([^/]+)/publishers/([^/]+)/artifacttypes/vmimage/offers/([^/]+)"
            r"/skus/([^/]+)/versions(?:/([^/]+))?",
            rest,
            re.I,
        )
        if m and method == "GET":
            return self._vm_image(*m.groups())
        resource = r"resourceGroups/([^/]+)/providers/Microsoft\.(Compute|Network)/(\w+)(?:/([^/]+))?"
        m = re.fullmatch(resource, rest, re.I)
        if not m:
            return _error(404, "InvalidResourceType", f"no resource type at {path}")
        rg, kind, name = m.group(1), m.group(3).lower(), m.group(4)
        if rg.lower() not in self.resource_groups:
            return _error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        rg = self.resource_groups[rg.lower()]
        handlers = {
            "virtualmachines": (self._vm_put, self.vms),
            "networkinterfaces": (self._nic_put, self.nics),
            "virtualnetworks": (self._vnet_put, self.vnets),
            "disks": (self._disk_put, self.disks),
        }
        if kind not in handlers:
            return _error(404, "InvalidResourceType", f"The resource type '{kind}' is not served here.")
        put, store = handlers[kind]
        type_name = {
            "virtualmachines": "Microsoft.Compute/virtualMachines",
            "disks": "Microsoft.Compute/disks",
            "networkinterfaces": "Microsoft.Network/networkInterfaces",
            "virtualnetworks": "Microsoft.Network/virtualNetworks",
        }[kind]
        if name is None:
            if method == "GET":
                return 200, {"value": [copy.deepcopy(r) for r in store.values() if self._in_rg(r, rg)]}, {}
            return _error(405, "MethodNotAllowed", f"{method} on a collection")
        if method == "GET":
            found = store.get(name.lower())
            if found is None:
                return _error(
                    404,
                    "ResourceNotFound",
                    f"The Resource '{type_name}/{name}' under resource group '{rg}' was not found. "
                    "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                )
            return 200, copy.deepcopy(found), {}
        if method == "PUT":
            if not isinstance(body, dict):
                return _error(
                    400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
                )
            return put(rg, name, body)
        if method == "DELETE":
            return self._delete(kind, rg, name)
        return _error(405, "MethodNotAllowed", f"{method} is not served here")

    def _in_rg(self, resource: Json, rg: str) -> bool:
        return f"/resourcegroups/{rg.lower()}/" in str(resource.get("id", "")).lower()

    def _id(self, rg: str, type_name: str, name: str) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{rg}/providers/{type_name}/{name}"

    # ---- Entra

    def _openid_configuration(self, tenant: str) -> Answer:
        if tenant.lower() not in (self.tenant_id.lower(), "organizations"):
            return (
                400,
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have "
                    "the correct tenant ID and are signing into the correct cloud.",
                },
                {},
            )
        base = f"{self.url}/{self.tenant_id}"
        return (
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{self.url}/{self.tenant_id}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "ver", "oid"],
                "tenant_region_scope": "EU",
            },
            {},
        )

    def _token(self, tenant: str, headers: dict[str, str], form: Any) -> Answer:
        form = form if isinstance(form, dict) else {}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            client_id, secret = urllib.parse.unquote(client_id), urllib.parse.unquote(secret)
        self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        if tenant.lower() != self.tenant_id.lower():
            message = f"AADSTS90002: Tenant '{tenant}' not found."
            return 400, {"error": "invalid_tenant", "error_description": message}, {}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003: unsupported grant."}, {}
        if client_id != self.client_id:
            return (
                400,
                {
                    "error": "unauthorized_client",
                    "error_description": f"AADSTS700016: Application with identifier '{client_id}' was not found "
                    f"in the directory '{tenant}'.",
                },
                {},
            )
        if secret != self.client_secret:
            return (
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                    f"in the request is the client secret value, not the client secret ID, for a secret added to app "
                    f"'{client_id}'.",
                    "error_codes": [7000215],
                },
                {},
            )
        token = f"eyJ0eXAiOiJKV1QifQ.fake-{len(self.tokens)}-{uuid.uuid4().hex}"
        self.tokens.append(token)
        return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}, {}

    # ---- catalogue

    def _skus(self, query: dict[str, str]) -> Answer:
        skus = self.skus
        flt = query.get("$filter", "")
        m = re.search(r"location\s+eq\s+'([^']+)'", flt, re.I)
        if m:
            wanted = m.group(1).lower()
            skus = [s for s in skus if wanted in [loc.lower() for loc in s.get("locations", [])]]
        start = int(query.get("$skiptoken", "0") or 0)
        page = skus[start : start + self.sku_page_size]
        answer: Json = {"value": page}
        if start + self.sku_page_size < len(skus):
            params = {"api-version": query.get("api-version", ""), "$skiptoken": str(start + self.sku_page_size)}
            if flt:
                params["$filter"] = flt
            answer["nextLink"] = (
                f"{self.url}/subscriptions/{self.subscription_id}/providers/Microsoft.Compute/skus?"
                + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
            )
        return 200, answer, {}

    def _sku(self, name: str, location: str) -> Json | None:
        for sku in self.skus:
            if (
                sku["resourceType"] == "virtualMachines"
                and sku["name"].lower() == name.lower()
                and location.lower() in [loc.lower() for loc in sku["locations"]]
            ):
                return sku
        return None

    @staticmethod
    def _caps(sku: Json) -> dict[str, str]:
        return {c["name"]: c["value"] for c in sku.get("capabilities", [])}

    def _usable_zones(self, sku: Json, location: str) -> set[str] | None:
        """The size's zones in the location; None when a Location restriction rules it out."""
        zones: set[str] = set()
        for info in sku.get("locationInfo", []):
            if info["location"].lower() == location.lower():
                zones.update(info.get("zones", []))
        for r in sku.get("restrictions", []):
            where = [loc.lower() for loc in r.get("restrictionInfo", {}).get("locations", r.get("values", []))]
            if location.lower() not in where:
                continue
            if r["type"] == "Location":
                return None
            zones.difference_update(r.get("restrictionInfo", {}).get("zones", []))
        return zones

    def _retail_prices(self, query: dict[str, str]) -> Answer:
        if self.fail_prices:
            return self.fail_prices, {"Error": {"Code": "InternalServerError", "Message": "try again"}}, {}
        flt = query.get("$filter", "")
        items = self.prices
        for field in ("armRegionName", "serviceName", "priceType"):
            m = re.search(rf"{field}\s+eq\s+'([^']+)'", flt)
            if m:
                key = "type" if field == "priceType" else field
                items = [i for i in items if str(i.get(key, "")).lower() == m.group(1).lower()]
        skip = int(query.get("$skip", "0") or 0)
        page = items[skip : skip + self.price_page_size]
        next_link = None
        if skip + self.price_page_size < len(items):
            next_link = (
                f"{self.url}/api/retail/prices?$filter={urllib.parse.quote(flt)}&$skip={skip + self.price_page_size}"
            )
        return (
            200,
            {
                "BillingCurrency": "USD",
                "CustomerEntityId": "Default",
                "CustomerEntityType": "Retail",
                "Items": page,
                "NextPageLink": next_link,
                "Count": len(page),
            },
            {},
        )

    # ---- long-running operations

    def _async(
        self, location: str, status: str, resource: tuple[str, str] | None, error: Json | None = None
    ) -> dict[str, str]:
        op = str(uuid.uuid4())
        self.operations[op] = {"status": status, "resource": resource, "error": error, "started": _now()}
        url = (
            f"{self.url}/subscriptions/{self.subscription_id}/providers/Microsoft.Compute/locations/{location}"
            f"/operations/{op}?p={uuid.uuid4()}&api-version=2024-07-01"
        )
        # Real operations answer Retry-After in seconds; milliseconds keep the tests quick.
        return {"Azure-AsyncOperation": url, "retry-after-ms": "10"}

    def _operation(self, op: str) -> Answer:
        found = self.operations.get(op)
        if found is None:
            return _error(404, "NotFound", f"operation {op} not found")
        if found["resource"] is not None:
            store, key = found["resource"]
            resource = getattr(self, store).get(key)
            if resource is not None:
                resource["properties"]["provisioningState"] = found["status"]
        answer: Json = {"startTime": found["started"], "endTime": _now(), "status": found["status"], "name": op}
        if found["error"]:
            answer["error"] = found["error"]
        return 200, answer, {}

    # ---- networks

    def _vm_image(self, location: str, publisher: str, offer: str, sku: str, version: str | None) -> Answer:
        """The Virtual Machine Images API: a SKU's versions (a bare JSON array, oldest first), or one
        version with what it boots (Hyper-V generation, architecture, disk controllers)."""
        image = self.images.get((publisher.lower(), offer.lower(), sku.lower()))
        known = {
            str(loc["name"]).lower() for loc in self.locations if loc.get("metadata", {}).get("regionType") != "Logical"
        }
        if image is None or location.lower() not in known or (version is not None and version not in image["versions"]):
            return _error(404, "NotFound", IMAGE_NOT_FOUND)
        pub, off, sk = image["names"]
        base = (
            f"/Subscriptions/{self.subscription_id}/Providers/Microsoft.Compute/Locations/{location}/Publishers/{pub}"
            f"/ArtifactTypes/VMImage/Offers/{off}/Skus/{sk}/Versions"
        )
        if version is None:
            return 200, [{"location": location, "name": v, "id": f"{base}/{v}"} for v in image["versions"]], {}
        features = [
            {"name": "SecurityType", "value": "TrustedLaunchSupported"},
            {"name": "IsAcceleratedNetworkSupported", "value": "True"},
            {"name": "DiskControllerTypes", "value": ", ".join(image["controllers"])},
        ]
        return (
            200,
            {
                "name": version,
                "location": location,
                "id": f"{base}/{version}",
                "properties": {
                    "hyperVGeneration": image["generation"],
                    "architecture": image["arch"],
                    "osDiskImage": {"operatingSystem": "Linux"},
                    "dataDiskImages": [],
                    "features": features,
                    "imageDeprecationStatus": {"imageState": "Active"},
                },
            },
            {},
        )

    def _vnet_put(self, rg: str, name: str, body: Json) -> Answer:
        location = body.get("location")
        if not location:
            return _error(400, "LocationRequired", "The location property is required for this definition.")
        props = body.get("properties") or {}
        prefixes = (props.get("addressSpace") or {}).get("addressPrefixes") or []
        if not prefixes:
            return _error(400, "InvalidAddressSpace", "The virtual network has no address space.")
        vnet_id = self._id(rg, "Microsoft.Network/virtualNetworks", name)
        subnets = []
        for subnet in props.get("subnets") or []:
            sp = subnet.get("properties") or {}
            if not sp.get("addressPrefix") and not sp.get("addressPrefixes"):
                return _error(400, "InvalidAddressPrefix", f"Subnet '{subnet.get('name')}' has no address prefix.")
            subnets.append(
                {
                    "name": subnet["name"],
                    "id": f"{vnet_id}/subnets/{subnet['name']}",
                    "etag": f'W/"{uuid.uuid4()}"',
                    "type": "Microsoft.Network/virtualNetworks/subnets",
                    "properties": {"provisioningState": "Succeeded", "ipConfigurations": [], **sp},
                }
            )
        created = name.lower() not in self.vnets
        self.vnets[name.lower()] = {
            "name": name,
            "id": vnet_id,
            "etag": f'W/"{uuid.uuid4()}"',
            "type": "Microsoft.Network/virtualNetworks",
            "location": location,
            "tags": body.get("tags") or {},
            "properties": {
                "provisioningState": "Succeeded",
                "resourceGuid": str(uuid.uuid4()),
                "addressSpace": {"addressPrefixes": prefixes},
                "subnets": subnets,
                "virtualNetworkPeerings": [],
                "enableDdosProtection": False,
            },
        }
        return (201 if created else 200), copy.deepcopy(self.vnets[name.lower()]), {}

    def _subnet(self, subnet_id: str) -> tuple[Json, Json] | None:
        m = re.search(r"/virtualNetworks/([^/]+)/subnets/([^/]+)$", subnet_id, re.I)
        if not m:
            return None
        vnet = self.vnets.get(m.group(1).lower())
        if vnet is None or str(vnet["id"]).lower() not in subnet_id.lower():
            return None
        for subnet in vnet["properties"]["subnets"]:
            if subnet["name"].lower() == m.group(2).lower():
                return vnet, subnet
        return None

    def _nic_put(self, rg: str, name: str, body: Json) -> Answer:
        location = body.get("location")
        if not location:
            return _error(400, "LocationRequired", "The location property is required for this definition.")
        props = body.get("properties") or {}
        configs = props.get("ipConfigurations") or []
        if not configs:
            return _error(
                400,
                "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
                f"Network interface {name} must have at least one IP configuration.",
            )
        nic_id = self._id(rg, "Microsoft.Network/networkInterfaces", name)
        ip_configs = []
        for n, config in enumerate(configs):
            cp = config.get("properties") or {}
            subnet_id = (cp.get("subnet") or {}).get("id", "")
            found = self._subnet(subnet_id)
            if found is None:
                return _error(
                    400,
                    "InvalidResourceReference",
                    f"Resource {subnet_id} referenced by resource {nic_id} was not found.",
                )
            vnet, subnet = found
            if vnet["location"].lower() != location.lower():
                return _error(
                    400, "InvalidResourceReference", f"Subnet {subnet_id} is in {vnet['location']}, not in {location}."
                )
            ip = f"10.0.0.{4 + len(self.nics)}"
            ip_configs.append(
                {
                    "name": config.get("name", f"ipconfig{n + 1}"),
                    "id": f"{nic_id}/ipConfigurations/{config.get('name', f'ipconfig{n + 1}')}",
                    "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                    "properties": {
                        "provisioningState": "Succeeded",
                        "privateIPAddress": ip,
                        "privateIPAllocationMethod": cp.get("privateIPAllocationMethod", "Dynamic"),
                        "subnet": {"id": subnet["id"]},
                        "primary": cp.get("primary", n == 0),
                        "privateIPAddressVersion": "IPv4",
                    },
                }
            )
        existing = self.nics.get(name.lower())
        self.nics[name.lower()] = {
            "name": name,
            "id": nic_id,
            "etag": f'W/"{uuid.uuid4()}"',
            "type": "Microsoft.Network/networkInterfaces",
            "location": location,
            "tags": body.get("tags") or {},
            "properties": {
                "provisioningState": "Succeeded",
                "resourceGuid": str(uuid.uuid4()),
                "ipConfigurations": ip_configs,
                "enableAcceleratedNetworking": bool(props.get("enableAcceleratedNetworking", False)),
                "enableIPForwarding": False,
                "primary": True,
                "virtualMachine": (existing or {}).get("properties", {}).get("virtualMachine"),
                "nicType": "Standard",
            },
        }
        if self.nics[name.lower()]["properties"]["virtualMachine"] is None:
            del self.nics[name.lower()]["properties"]["virtualMachine"]
        return (200 if existing else 201), copy.deepcopy(self.nics[name.lower()]), {}

    # ---- VMs

    def _vm_put(self, rg: str, name: str, body: Json) -> Answer:
        if self.fail_next_vm_put is not None:
            code, status = self.fail_next_vm_put
            self.fail_next_vm_put = None
            messages = {
                "ZonalAllocationFailed": "Allocation failed. We do not have sufficient capacity for the requested "
                "VM size in this zone. Read more about improving likelihood of allocation success at "
                "http://aka.ms/allocation-guidance",
                "OperationNotAllowed": "Operation could not be completed as it results in exceeding approved "
                "standardDSv6Family Cores quota.",
                "SkuNotAvailable": "The requested VM size is currently not available in this location.",
            }
            return _error(status, code, messages.get(code, f"{code} (queued by the test)"))
        existing = self.vms.get(name.lower())
        if existing is not None:
            return self._vm_update(rg, existing, body)
        return self._vm_create(rg, name, body)

    def _vm_create(self, rg: str, name: str, body: Json) -> Answer:
        location = str(body.get("location") or "")
        if not location:
            return _error(400, "LocationRequired", "The location property is required for this definition.")
        props = body.get("properties") or {}
        size = str((props.get("hardwareProfile") or {}).get("vmSize") or "")
        sku = self._sku(size, location)
        zones = body.get("zones") or []
        usable = self._usable_zones(sku, location) if sku is not None else None
        if sku is None or usable is None or any(z not in usable for z in zones):
            where = f"zone '{zones[0]}' of location '{location}'" if zones else f"location '{location}'"
            return _error(
                409,
                "SkuNotAvailable",
                f"The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: "
                f"{size}' is currently not available in {where}. Please try another size or deploy to a different "
                "location or different zone. See https://aka.ms/azureskunotavailable for details.",
            )
        caps = self._caps(sku)
        storage = props.get("storageProfile") or {}
        ref = storage.get("imageReference") or {}
        image_key = (
            str(ref.get("publisher", "")).lower(),
            str(ref.get("offer", "")).lower(),
            str(ref.get("sku", "")).lower(),
        )
        image = self.images.get(image_key)
        urn = ":".join(str(ref.get(k, "")) for k in ("publisher", "offer", "sku", "version"))
        version = str(ref.get("version", ""))
        if image is None or (version.lower() != "latest" and version not in image["versions"]) or not image["versions"]:
            # What ARM answers for a URN it does not publish (Target imageReference, HTTP 404).
            status, err, extra = _error(
                404,
                "PlatformImageNotFound",
                f"The platform image '{urn}' is not available. Verify that all fields in the storage "
                "profile are correct. For more details about storage profile information, please refer to "
                "https://aka.ms/storageprofile",
            )
            err["error"]["target"] = "imageReference"
            return status, err, extra
        exact_version = image["versions"][-1] if version.lower() == "latest" else version
        generations = [g.strip() for g in caps.get("HyperVGenerations", "V1").split(",")]
        if image["generation"] not in generations:
            return _error(
                400,
                "BadRequest",
                f"The selected VM size '{size}' cannot boot Hypervisor Generation "
                f"'{image['generation'][1:]}'. If this was a Create operation please check that the "
                "Hypervisor Generation of the Image matches the Hypervisor Generation of the selected VM "
                "Size.",
            )
        if image["arch"].lower() != caps.get("CpuArchitectureType", "x64").lower():
            return _error(
                400,
                "BadRequest",
                f"The selected VM size '{size}' cannot boot the image '{urn}': its architecture is "
                f"{image['arch']}, the size's {caps.get('CpuArchitectureType')}.",
            )
        size_controllers = [c.strip() for c in caps.get("DiskControllerTypes", "SCSI").split(",")]
        controller = storage.get("diskControllerType") or ("SCSI" if "SCSI" in size_controllers else "NVMe")
        if (
            controller not in size_controllers
            or controller not in image["controllers"]
            or (controller == "NVMe" and image["generation"] != "V2")
        ):
            return _error(
                400,
                "InvalidParameter",
                f"The VM size '{size}' cannot boot with OS image or disk. Please check that disk controller "
                f"types supported by the OS image or disk is one of the supported disk controller types "
                f"for the VM size '{size}' (disk controller type '{controller}').",
            )
        os_disk = storage.get("osDisk") or {}
        if os_disk.get("createOption") != "FromImage":
            return _error(400, "InvalidParameter", "Required parameter 'osDisk.createOption' is missing or invalid.")
        account = (os_disk.get("managedDisk") or {}).get("storageAccountType", "StandardSSD_LRS")
        if account.startswith("Premium") and caps.get("PremiumIO") != "True":
            return _error(
                400,
                "InvalidParameter",
                f"Requested operation cannot be performed because storage account type '{account}' is not "
                f"supported for VM size '{size}'.",
            )
        os_profile = props.get("osProfile") or {}
        linux = os_profile.get("linuxConfiguration") or {}
        if not os_profile.get("adminUsername"):
            return _error(400, "InvalidParameter", "Required parameter 'adminUsername' is missing (null).")
        keys = (linux.get("ssh") or {}).get("publicKeys") or []
        if linux.get("disablePasswordAuthentication") and not keys:
            return _error(
                400,
                "InvalidParameter",
                "Authentication using either SSH or by user name and password must be enabled in Linux profile.",
            )
        if not linux.get("disablePasswordAuthentication") and not os_profile.get("adminPassword"):
            return _error(400, "InvalidParameter", "Required parameter 'adminPassword' is missing (null).")
        for key in keys:
            if not str(key.get("keyData", "")).startswith(("ssh-rsa ", "ssh-ed25519 ")):
                return _error(
                    400,
                    "InvalidParameter",
                    "The value of parameter linuxConfiguration.ssh.publicKeys.keyData is invalid.",
                )
        custom = os_profile.get("customData")
        if custom is not None:
            try:
                if len(base64.b64decode(custom, validate=True)) > 65535:
                    raise ValueError
            except ValueError:
                return _error(400, "InvalidParameter", "The value of parameter customData is invalid.")
        priority = props.get("priority", "Regular")
        if priority == "Spot":
            if caps.get("LowPriorityCapable") != "True":
                return _error(400, "BadRequest", f"The VM size '{size}' is not supported for Spot VMs.")
            if props.get("evictionPolicy") not in ("Delete", "Deallocate"):
                return _error(400, "InvalidParameter", "Spot VMs need evictionPolicy Delete or Deallocate.")
            max_price = (props.get("billingProfile") or {}).get("maxPrice", -1)
            if max_price != -1 and max_price <= 0:
                return _error(400, "InvalidParameter", "billingProfile.maxPrice must be -1 or above zero.")
        refs = (props.get("networkProfile") or {}).get("networkInterfaces") or []
        if not refs:
            return _error(400, "InvalidParameter", "Required parameter 'networkProfile' is missing (null).")
        vm_id_path = self._id(rg, "Microsoft.Compute/virtualMachines", name)
        nics = []
        for ref_nic in refs:
            nic = next((n for n in self.nics.values() if n["id"].lower() == str(ref_nic.get("id", "")).lower()), None)
            if nic is None:
                return _error(
                    400,
                    "InvalidResourceReference",
                    f"Resource {ref_nic.get('id')} referenced by resource {vm_id_path} was not found.",
                )
            if nic["location"].lower() != location.lower():
                return _error(
                    400,
                    "NicInDifferentRegion",
                    f"Network interface {nic['id']} is in {nic['location']}, the VM in {location}.",
                )
            held = nic["properties"].get("virtualMachine")
            if held and held["id"].lower() != vm_id_path.lower():
                return _error(400, "NicInUse", f"Network Interface {nic['id']} is used by existing VM {held['id']}.")
            accelerated = nic["properties"].get("enableAcceleratedNetworking")
            if accelerated and caps.get("AcceleratedNetworkingEnabled") != "True":
                return _error(
                    400,
                    "VMSizeIsNotPermittedToEnableAcceleratedNetworking",
                    f"VM size {size} is not compatible with enabling Accelerated Networking on network "
                    f"interface(s) on the VM.",
                )
            nics.append(nic)
        error = self._check_data_disks(storage.get("dataDisks") or [], zones, vm_id_path)
        if error is not None:
            return error

        vm_id = str(uuid.uuid4())
        stored_props = copy.deepcopy(props)
        stored_props["osProfile"] = {k: v for k, v in os_profile.items() if k not in ("customData", "adminPassword")}
        stored_props["osProfile"].setdefault("secrets", [])
        stored_props["osProfile"].setdefault("allowExtensionOperations", True)
        stored_props["osProfile"].setdefault("requireGuestProvisionSignal", True)
        stored_storage = stored_props.setdefault("storageProfile", {})
        stored_storage["osDisk"] = {
            "osType": "Linux",
            "name": f"{name}_OsDisk_1_{uuid.uuid4().hex}",
            "caching": "ReadWrite",
            **os_disk,
        }
        stored_storage["osDisk"]["managedDisk"] = {
            "storageAccountType": account,
            "id": self._id(rg, "Microsoft.Compute/disks", stored_storage["osDisk"]["name"]),
        }
        stored_storage["imageReference"] = {**ref, "exactVersion": exact_version}
        stored_storage["dataDisks"] = self._stored_data_disks(storage.get("dataDisks") or [])
        stored_props["vmId"] = vm_id
        stored_props["timeCreated"] = _now()
        stored_props["provisioningState"] = "Creating"
        vm = {
            "name": name,
            "id": vm_id_path,
            "type": "Microsoft.Compute/virtualMachines",
            "location": location,
            "tags": body.get("tags") or {},
            "properties": stored_props,
        }
        if zones:
            vm["zones"] = list(zones)
        self.vms[name.lower()] = vm
        for nic in nics:
            nic["properties"]["virtualMachine"] = {"id": vm_id_path}
        self._attach_disks(vm)
        if self.fail_next_vm_async is not None:
            code, self.fail_next_vm_async = self.fail_next_vm_async, None
            error_body = {
                "code": code,
                "message": "Allocation failed. We do not have sufficient capacity for the requested VM size in this "
                "region. Read more about improving likelihood of allocation success at "
                "http://aka.ms/allocation-guidance",
            }
            headers = self._async(location, "Failed", ("vms", name.lower()), error_body)
        else:
            headers = self._async(location, "Succeeded", ("vms", name.lower()))
        return 201, copy.deepcopy(vm), headers

    def _vm_update(self, rg: str, vm: Json, body: Json) -> Answer:
        props = body.get("properties") or {}
        size = (props.get("hardwareProfile") or {}).get("vmSize")
        if size and size.lower() != vm["properties"]["hardwareProfile"]["vmSize"].lower():
            return _error(400, "BadRequest", "Resizing is not served by this fake.")
        storage = props.get("storageProfile") or {}
        if "osProfile" in props and "customData" in (props.get("osProfile") or {}):
            return _error(409, "PropertyChangeNotAllowed", "Changing property 'customData' is not allowed.")
        disks = storage.get("dataDisks") or []
        error = self._check_data_disks(disks, vm.get("zones") or [], vm["id"])
        if error is not None:
            return error
        self._detach_disks(vm)
        vm["properties"]["storageProfile"]["dataDisks"] = self._stored_data_disks(disks)
        if "tags" in body:
            vm["tags"] = body.get("tags") or {}
        self._attach_disks(vm)
        return 200, copy.deepcopy(vm), {}

    def _disk_by_id(self, disk_id: str) -> Json | None:
        return next((d for d in self.disks.values() if d["id"].lower() == disk_id.lower()), None)

    def _check_data_disks(self, disks: list[Json], zones: list[str], vm_id: str) -> Answer | None:
        luns = [d.get("lun") for d in disks]
        if len(set(luns)) != len(luns) or any(not isinstance(lun, int) or not 0 <= lun < 64 for lun in luns):
            return _error(400, "InvalidParameter", f"The data disks' LUNs {luns} must be distinct numbers 0..63.")
        for d in disks:
            if d.get("createOption") != "Attach":
                return _error(400, "InvalidParameter", "Only createOption Attach is served for data disks.")
            disk_id = str((d.get("managedDisk") or {}).get("id", ""))
            disk = self._disk_by_id(disk_id)
            if disk is None:
                return _error(404, "NotFound", f"Disk {disk_id} was not found.")
            if disk.get("zones") and disk["zones"] != zones:
                return _error(
                    400, "BadRequest", f"Disk {disk_id} is in zone {disk['zones']}, the VM in {zones or 'no zone'}."
                )
            holder = disk.get("managedBy")
            if holder and holder.lower() != vm_id.lower():
                return _error(409, "Conflict", f"Disk '{disk['name']}' is already attached to VM '{holder}'.")
        return None

    def _stored_data_disks(self, disks: list[Json]) -> list[Json]:
        stored = []
        for d in disks:
            disk = self._disk_by_id(d["managedDisk"]["id"])
            assert disk is not None
            stored.append(
                {
                    "lun": d["lun"],
                    "name": disk["name"],
                    "createOption": "Attach",
                    "caching": d.get("caching", "None"),
                    "writeAcceleratorEnabled": False,
                    "managedDisk": {"storageAccountType": disk["sku"]["name"], "id": disk["id"]},
                    "deleteOption": d.get("deleteOption", "Detach"),
                    "diskSizeGB": disk["properties"]["diskSizeGB"],
                    "toBeDetached": False,
                }
            )
        return stored

    def _attach_disks(self, vm: Json) -> None:
        for d in vm["properties"]["storageProfile"].get("dataDisks", []):
            disk = self._disk_by_id(d["managedDisk"]["id"])
            if disk is not None:
                disk["managedBy"] = vm["id"]
                disk["properties"]["diskState"] = "Attached"

    def _detach_disks(self, vm: Json) -> None:
        for disk in self.disks.values():
            if str(disk.get("managedBy", "")).lower() == vm["id"].lower():
                disk.pop("managedBy", None)
                disk["properties"]["diskState"] = "Unattached"

    # ---- disks

    def _disk_put(self, rg: str, name: str, body: Json) -> Answer:
        location = body.get("location")
        if not location:
            return _error(400, "LocationRequired", "The location property is required for this definition.")
        props = body.get("properties") or {}
        creation = props.get("creationData") or {}
        if creation.get("createOption") != "Empty":
            return _error(400, "InvalidParameter", "Only creationData.createOption Empty is served.")
        size_gb = props.get("diskSizeGB")
        if not isinstance(size_gb, int) or size_gb < 1:
            return _error(400, "InvalidParameter", "diskSizeGB is required for an empty disk.")
        sku = (body.get("sku") or {}).get("name", "Standard_LRS")
        if sku not in (
            "Standard_LRS",
            "Premium_LRS",
            "StandardSSD_LRS",
            "UltraSSD_LRS",
            "Premium_ZRS",
            "StandardSSD_ZRS",
            "PremiumV2_LRS",
        ):
            return _error(400, "InvalidParameter", f"The disk SKU '{sku}' is not valid.")
        zones = body.get("zones") or []
        if any(z not in ("1", "2", "3") for z in zones):
            return _error(400, "InvalidParameter", f"Zones {zones} are not valid in {location}.")
        existing = self.disks.get(name.lower())
        if existing is not None:
            if size_gb < existing["properties"]["diskSizeGB"]:
                return _error(409, "BadRequest", "Disk size can only be increased.")
            existing["properties"]["diskSizeGB"] = size_gb
            existing["properties"]["diskSizeBytes"] = size_gb * 1024**3
            return 200, copy.deepcopy(existing), {}
        disk = {
            "name": name,
            "id": self._id(rg, "Microsoft.Compute/disks", name),
            "type": "Microsoft.Compute/disks",
            "location": location,
            "tags": body.get("tags") or {},
            "sku": {"name": sku, "tier": "Premium" if sku.startswith("Premium") else "Standard"},
            "properties": {
                "creationData": creation,
                "diskSizeGB": size_gb,
                "diskIOPSReadWrite": 500,
                "diskMBpsReadWrite": 100,
                "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
                "networkAccessPolicy": "AllowAll",
                "publicNetworkAccess": "Enabled",
                "timeCreated": _now(),
                "provisioningState": "Succeeded",
                "diskState": "Unattached",
                "diskSizeBytes": size_gb * 1024**3,
                "uniqueId": str(uuid.uuid4()),
                "tier": "P10",
            },
        }
        if zones:
            disk["zones"] = list(zones)
        self.disks[name.lower()] = disk
        return 200, copy.deepcopy(disk), {}

    # ---- deletes

    def _delete(self, kind: str, rg: str, name: str) -> Answer:
        key = name.lower()
        if kind == "virtualmachines":
            vm = self.vms.pop(key, None)
            if vm is None:
                return 204, None, {}
            for ref in vm["properties"].get("networkProfile", {}).get("networkInterfaces", []):
                nic_key = next((k for k, n in self.nics.items() if n["id"].lower() == ref["id"].lower()), None)
                if nic_key is None:
                    continue
                if (ref.get("properties") or {}).get("deleteOption") == "Delete":
                    del self.nics[nic_key]
                else:
                    self.nics[nic_key]["properties"].pop("virtualMachine", None)
            self._detach_disks(vm)
            return 202, None, self._async(vm["location"], "Succeeded", None)
        if kind == "networkinterfaces":
            nic = self.nics.get(key)
            if nic is None:
                return 204, None, {}
            held = nic["properties"].get("virtualMachine")
            if held and held["id"].lower().rsplit("/", 1)[-1] in self.vms:
                return _error(
                    400,
                    "NicInUse",
                    f"Network Interface {nic['id']} is used by existing resource {held['id']}. In order to "
                    "delete the network interface, it must be dissociated from the resource.",
                )
            del self.nics[key]
            return 200, None, {}
        if kind == "disks":
            disk = self.disks.get(key)
            if disk is None:
                return 204, None, {}
            if disk.get("managedBy"):
                return _error(409, "OperationNotAllowed", f"Disk {name} is attached to VM {disk['managedBy']}.")
            del self.disks[key]
            return 200, None, {}
        store = self.vnets
        if store.pop(key, None) is None:
            return 204, None, {}
        return 200, None, {}

    def arm_requests(self) -> Iterator[tuple[str, str, dict[str, str], Any]]:
        with self._lock:
            yield from (r for r in list(self.requests) if r[1].lower().startswith("/subscriptions/"))
