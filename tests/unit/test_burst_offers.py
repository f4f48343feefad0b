"""The pure parts of bursting: offer ranking, series lifecycle, the controller config file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from controller.backends.config import ControllerFileConfig
from controller.backends.lifecycle import RETIRED, RETIRING, azure_lifecycle, azure_series
from controller.backends.model import InstanceType, Offering
from controller.backends.offers import USABLE_MEMORY_FRACTION, OfferPolicy, rank_offers
from controller.configs.loader import ConfigError, load_settings_file
from controller.placement.model import GpuInfo, GpuReq, MountReq, Requirements, VolumeOption
from controller.settings import load_controller_file

GIB = 2**30


def itype(name: str, arch: str = "amd64", vcpus: int = 2, mem_gib: int = 8, **kw: object) -> InstanceType:
    return InstanceType(backend=kw.pop("backend", "aws"), name=name, arch=arch, raw_arch=arch, vcpus=vcpus,  # type: ignore[arg-type]
                        memory_bytes=mem_gib * GIB, **kw)  # type: ignore[arg-type]  # fmt: skip


def offer(t: InstanceType, zone: str = "eu-west-1a", spot: bool = False, price: float | None = 0.1) -> Offering:
    return Offering(t, "eu-west-1", zone, spot, price)


POLICY = OfferPolicy(fleet="cloud")


def test_cheapest_fitting_offer_first_and_every_other_one_says_why() -> None:
    graviton = itype("m7g.large", "arm64")
    offers = [
        offer(itype("m7i.large"), price=0.10),
        offer(graviton, price=0.08),
        offer(itype("c7g.xlarge", "arm64", 4, 8), price=0.15),
        offer(itype("t4g.large", "arm64", burstable=True, family="t4g"), price=0.06),
        offer(itype("m7g.medium", "arm64", 1, 4), price=0.04),
    ]
    req = Requirements(arches=frozenset({"arm64"}), cpu=2, memory_bytes=4 * GIB)
    ranked = rank_offers(req, offers, POLICY)
    assert [o.instance_type.name for o in ranked.fitting] == ["m7g.large", "c7g.xlarge"]
    why = {r.offering.instance_type.name: (r.rule, r.reason) for r in ranked.rejected}
    assert why["m7i.large"][0] == "arch"
    assert why["m7g.medium"][0] == "cpu"
    assert why["t4g.large"] == (
        "burstable",
        "burstable (t4g: sustained CPU is a fraction of its vCPUs; set burstable: true)",
    )
    # burstable: true lets it in, and it is the cheapest.
    allowed = rank_offers(req, offers, OfferPolicy(fleet="cloud", burstable=True))
    assert allowed.fitting[0].instance_type.name == "t4g.large"


def test_memory_counts_what_the_kernel_will_show_not_the_nominal_size() -> None:
    eight = offer(itype("m7i.large", mem_gib=8))
    assert rank_offers(Requirements(arches=None, memory_bytes=8 * GIB), [eight], POLICY).fitting == ()
    fits = Requirements(arches=None, memory_bytes=int(8 * GIB * USABLE_MEMORY_FRACTION))
    assert len(rank_offers(fits, [eight], POLICY).fitting) == 1


def test_spot_policy_max_price_unknown_prices_and_blocked_offerings() -> None:
    t = itype("m7i.large")
    on_demand, spot = offer(t, price=0.10), offer(t, spot=True, price=0.03)
    req = Requirements(arches=None)
    assert rank_offers(req, [on_demand, spot], POLICY).fitting == (on_demand,)  # dstack's default: on-demand
    assert rank_offers(req, [on_demand, spot], OfferPolicy("cloud", spot_policy="spot")).fitting == (spot,)
    assert rank_offers(req, [on_demand, spot], OfferPolicy("cloud", spot_policy="auto")).fitting == (spot, on_demand)
    capped = rank_offers(req, [on_demand], OfferPolicy("cloud", max_price=0.05))
    assert capped.rejected[0].reason == "$0.1/h is over max_price $0.05/h"
    unknown = offer(t, price=None)
    assert rank_offers(req, [unknown], OfferPolicy("cloud", max_price=1)).rejected[0].rule == "price"
    blocked = OfferPolicy("cloud", blocked={on_demand.key: 1000.0}, now=400.0)
    rejection = rank_offers(req, [on_demand], blocked).rejected[0]
    assert (rejection.rule, rejection.reason) == ("blocked", "blocked for 11 more min after a failed launch")
    assert rank_offers(req, [on_demand], OfferPolicy("cloud", blocked={on_demand.key: 1000.0}, now=1000.0)).fitting


def test_unknown_prices_rank_after_known_ones_smallest_first() -> None:
    small, big = itype("a.small", vcpus=2), itype("a.big", vcpus=8)
    offers = [offer(big, price=None), offer(small, price=None), offer(itype("k.known", vcpus=16), price=0.5)]
    ranked = rank_offers(Requirements(arches=None), offers, POLICY)
    assert [o.instance_type.name for o in ranked.fitting] == ["k.known", "a.small", "a.big"]


def test_zones_regions_volumes_gpus_and_unsupported_types_use_the_placement_rules() -> None:
    gpu = itype("g5.xlarge", vcpus=4, mem_gib=16, gpus=(GpuInfo("nvidia", "A10G", 24 * GIB),))
    mac = InstanceType("aws", "mac2.metal", "", "arm64_mac", 12, 16 * GIB, unsupported="arm64_mac: macOS hosts only")
    offers = [offer(gpu, "eu-west-1a"), offer(gpu, "eu-west-1b"), offer(mac)]
    vol = VolumeOption("data", "aws", "eu-west-1", "eu-west-1b", "")
    req = Requirements(arches=None, mounts=(MountReq("/data", (vol,)),))
    ranked = rank_offers(req, offers, POLICY)
    assert [o.zone for o in ranked.fitting] == ["eu-west-1b"]
    why = {(r.offering.instance_type.name, r.offering.zone): r.rule for r in ranked.rejected}
    assert why == {("g5.xlarge", "eu-west-1a"): "volumes", ("mac2.metal", "eu-west-1a"): "unsupported"}
    only_a = OfferPolicy("cloud", fleet_zones=frozenset({"eu-west-1a"}))
    assert [o.zone for o in rank_offers(Requirements(arches=None), offers[:2], only_a).fitting] == ["eu-west-1a"]

    wants_h100 = Requirements(arches=None, gpu=GpuReq(names=("H100",)))
    assert rank_offers(wants_h100, offers[:1], POLICY).rejected[0].rule == "gpu"


@pytest.mark.parametrize(
    ("size", "series", "status"),
    [
        ("Standard_D2s_v6", "Dsv6", "current"),
        ("Standard_D2ps_v6", "Dpsv6", "current"),
        ("Standard_A4_v2", "Av2", "current"),
        ("Standard_D2s_v3", "Dsv3", RETIRING),
        ("Standard_E2s_v4", "Esv4", RETIRING),
        ("Standard_E4-2s_v4", "Esv4", RETIRING),
        ("Standard_DS2_v2", "DSv2", RETIRING),
        ("Standard_NC6s_v3", "NCsv3", RETIRED),
        ("Standard_A2", "A", RETIRED),
    ],
)
def test_azure_series_lifecycle(size: str, series: str, status: str) -> None:
    assert azure_series(size) == series
    life = azure_lifecycle(size, date(2026, 11, 30))
    assert life.status == status
    if status != "current":
        assert "Microsoft Learn" in life.note  # every row cites its source


def test_a_retirement_date_passes() -> None:
    assert azure_lifecycle("Standard_DC2s_v2", date(2026, 6, 29)).status == RETIRING
    assert azure_lifecycle("Standard_DC2s_v2", date(2026, 6, 30)).status == RETIRED


def test_controller_config_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("backends:\n  - type: aws\n    region: [eu-west-1]\n")
    with pytest.raises(ConfigError) as err:
        load_settings_file(path, ControllerFileConfig, "controller config")
    assert str(err.value) == (
        f'unknown key "backends[0].region" in {path} line 3 (did you mean "backends[0].regions"?)'
    )
    path.write_text("backends:\n  - type: azure\n    subscription_id: s\n    resource_group: r\n")
    with pytest.raises(ConfigError, match=r'missing key "backends\[0\].tenant_id"'):
        load_settings_file(path, ControllerFileConfig, "controller config")
    path.write_text("backends:\n  - type: aws\n  - type: aws\n")
    with pytest.raises(ConfigError, match="configured twice"):
        load_settings_file(path, ControllerFileConfig, "controller config")


def test_config_file_is_found_in_the_data_dir_and_an_empty_one_is_all_defaults(tmp_path: Path) -> None:
    path, config = load_controller_file(None, tmp_path)
    assert config == ControllerFileConfig()
    (tmp_path / "config.yaml").write_text("# nothing yet\n")
    path, config = load_controller_file(None, tmp_path)
    assert path == tmp_path / "config.yaml" and config.backends == []
    (tmp_path / "config.yaml").write_text("image_lookup: off\nbackends:\n  - type: aws\n    regions: [eu-west-1]\n")
    _, config = load_controller_file(None, tmp_path)
    assert config.image_lookup == "off" and config.backends[0].type == "aws"
    with pytest.raises(ConfigError, match="not found"):
        load_controller_file(tmp_path / "missing.yaml", tmp_path)


def test_the_packaged_controller_yaml_parses_and_so_does_its_bursting_example(tmp_path: Path) -> None:
    packaged = Path(__file__).parents[2] / "packaging" / "config" / "controller.yaml"
    assert load_settings_file(packaged, ControllerFileConfig, "controller config") == ControllerFileConfig()
    lines = packaged.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#backends:"))
    example = tmp_path / "example.yaml"
    example.write_text("\n".join(line[1:] for line in lines[start:] if line.startswith("#")) + "\n")
    config = load_settings_file(example, ControllerFileConfig, "controller config")
    assert [b.type for b in config.backends] == ["aws", "azure"]
    assert config.burst.register_timeout == 600 and config.burst.controller_address == "203.0.113.5:7443"


def test_ranking_by_type_and_location_says_what_checking_each_offering_says() -> None:
    """rank_offers checks each type and each location once; the answer must be the per-offering one."""
    import random

    from controller.backends.offers import first_rejection

    rng = random.Random(3)
    types = [
        itype(f"t{i}.x", rng.choice(["amd64", "arm64"]), rng.choice([1, 2, 4, 8]), rng.choice([2, 4, 8, 16]),
              burstable=rng.random() < 0.2, local_nvme_bytes=rng.choice([0, 10**11]),
              gpus=(GpuInfo("nvidia", "A10G", 24 * GIB),) if rng.random() < 0.2 else ())
        for i in range(40)
    ]
    offers = [offer(t, z, s, rng.choice([None, 0.1, 0.5])) for t in types for z in ("eu-west-1a", "eu-west-1b")
              for s in (False, True)]  # fmt: skip
    vol = VolumeOption("v", "aws", "eu-west-1", "eu-west-1b", "")
    for req in [
        Requirements(arches=frozenset({"arm64"}), cpu=2, memory_bytes=4 * GIB),
        Requirements(arches=None, cpu=4, nvme=True, zones=frozenset({"eu-west-1a"})),
        Requirements(arches=frozenset({"amd64"}), gpu=GpuReq(count_min=1), mounts=(MountReq("/d", (vol,)),)),
    ]:
        policy = OfferPolicy("cloud", spot_policy="auto", max_price=0.3, blocked={offers[5].key: 10.0}, now=1.0)
        ranked = rank_offers(req, offers, policy)
        expected = {o.key: first_rejection(req, o, policy) for o in offers}
        assert {o.key for o in ranked.fitting} == {k for k, why in expected.items() if why is None}
        assert {r.offering.key: (r.rule, r.reason) for r in ranked.rejected} == {
            k: why for k, why in expected.items() if why is not None
        }


def test_only_the_regions_a_launch_could_be_in_are_read() -> None:
    from controller.configs.fleet import FleetConfiguration
    from controller.configs.task import TaskConfiguration
    from controller.provisioning.planning import wanted_regions

    task = TaskConfiguration(image="busybox")
    anywhere = FleetConfiguration(name="a")
    eu = FleetConfiguration(name="eu", regions=["EU-West-1", "eu-central-1"])
    assert wanted_regions(task, [anywhere], Requirements(arches=None)) is None
    assert wanted_regions(task, [eu], Requirements(arches=None)) == {"eu-west-1", "eu-central-1"}
    assert wanted_regions(task, [eu, anywhere], Requirements(arches=None)) is None  # one fleet goes anywhere
    pinned = TaskConfiguration(image="busybox", regions=["eu-west-1", "us-east-1"])
    assert wanted_regions(pinned, [eu], Requirements(arches=None)) == {"eu-west-1"}
    vol = MountReq("/d", (VolumeOption("v", "aws", "us-east-1", None, ""),))
    assert wanted_regions(task, [anywhere], Requirements(arches=None, mounts=(vol,))) == {"us-east-1"}


def test_serve_with_a_bad_config_file_says_where_and_exits_2_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from controller.main import main

    (tmp_path / "config.yaml").write_text("backends:\n  - type: aws\n    regions: eu-west-1\n")
    assert main(["serve", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    where = tmp_path / "config.yaml"
    assert err.startswith(f'dstack-controller: invalid backends[0].regions "eu-west-1" in {where} line 3')
    assert not (tmp_path / "controller.db").exists()  # nothing was changed
    (tmp_path / "config.yaml").write_text("burst:\n  controller_address: nowhere\n")
    assert main(["serve", "--data-dir", str(tmp_path)]) == 2
    assert "burst.controller_address" in capsys.readouterr().err


def test_no_cloud_sdk_is_imported_until_a_backend_of_its_kind_is_used() -> None:
    import subprocess
    import sys

    script = """
import sys
import controller.main, controller.server.app, controller.cli.main
from controller.provisioning.reconciler import Burster
assert not [m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "azure")], "loaded at import"
from controller.backends.config import AWSBackendConfig
from controller.backends.registry import Backends
Backends([AWSBackendConfig(type="aws", regions=["eu-west-1"], endpoint_url="http://127.0.0.1:9")]).get("aws")
assert "boto3" in sys.modules
assert not [m for m in sys.modules if m.split(".")[0] == "azure"], "azure loaded for an aws backend"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parents[2])  # fmt: skip
    assert out.stdout.strip() == "ok", out.stderr
