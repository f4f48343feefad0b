"""dstackctl's cloud output, from hand-built replies: the cloud offers under `offers`, `instance-types
check` (human, JSON, exit status) and the cloud instances under `fleet`. No server is involved."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dstack_hybrid.v1 import hybrid_pb2 as pb

from controller.cli import main as cli_main
from controller.cli.cloud_cmds import (
    UNKNOWN_PRICES,
    check_exit_status,
    check_lines,
    checks_json,
    checks_text,
    cloud_offer_lines,
    instance_lines,
)
from controller.cli.configs_cmds import fleet_json, fleet_lines, offers_json, offers_lines

GiB = 1024**3


def cloud(type_: str, zone: str, price: float | None = None, **kw: Any) -> pb.Offer:
    region = zone[:-1]  # us-east-1a: us-east-1 (pass region= for a region without zones)
    fields: dict[str, Any] = {"backend": "aws", "region": region, "arch": "amd64", "vcpus": 2, "memory_bytes": 8 * GiB}
    fields.update(kw)
    return pb.Offer(
        host=type_,
        instance_type=type_,
        zone=zone,
        price=price or 0.0,
        has_price=price is not None,
        **fields,
    )


def host_part() -> list[pb.Offer]:
    return [
        pb.Offer(host="us-host", chosen=True, arch="amd64", zone="us-east-1b", status="online"),
        pb.Offer(host="eu-host", arch="amd64", zone="eu-west-1a", status="online", reason="zone eu-west-1a not in [x]"),
    ]


# ------------------------------------------------------------------ offers
def test_offers_without_a_cloud_part_print_the_hosts_part_alone() -> None:
    reply = pb.OffersResponse(offers=host_part())
    lines = offers_lines(reply)
    assert lines[0] == "would run on us-host (amd64, us-east-1b)"
    assert "zone eu-west-1a not in [x]" in lines[1]
    assert len(lines) == 2  # no "Cloud offers" section


def test_cloud_offers_cheapest_first_chosen_as_headline_unknown_prices_last() -> None:
    reply = pb.OffersResponse(
        reason="no host fits",
        cloud_offers=[
            # the controller's order: known prices cheapest first, unknown by size; a client re-sort keeps it
            cloud("m7i.large", "us-east-1a", 0.1008, fleet="burst"),
            cloud("m5.large", "us-east-1a", 0.0416, chosen=True, spot=True, fleet="burst"),
            cloud("m6i.large", "us-east-1b", 0.096, gpus=1, fleet="burst"),
            cloud("Standard_D2s_v6", "", None, backend="azure", region="westeurope", fleet="burst"),
        ],
        cloud_notes=["prices unknown for azure westeurope: the retail prices API did not answer"],
    )
    lines = offers_lines(reply)
    assert lines[0] == "would stay pending: no host fits"
    cut = lines.index("Cloud offers")
    assert lines[cut - 1] == ""
    cloud_part = lines[cut:]
    assert cloud_part[1] == "would launch m5.large on aws in us-east-1a into fleet burst (spot, $0.0416/h)"
    table = cloud_part[2].split("\n")
    assert table[0].split() == ["BACKEND", "REGION", "ZONE", "INSTANCE", "ARCH", "CPU", "MEMORY", "GPU", "SPOT",
                                "PRICE"]  # fmt: skip
    # the chosen one is the headline, as with hosts; the others cheapest first, "?" last
    assert [row.split()[3] for row in table[1:]] == ["m6i.large", "m7i.large", "Standard_D2s_v6"]
    assert table[1].split() == ["aws", "us-east-1", "us-east-1b", "m6i.large", "amd64", "2", "8.0GB", "1",
                                "on-demand", "$0.0960/h"]  # fmt: skip
    assert table[3].split() == ["azure", "westeurope", "-", "Standard_D2s_v6", "amd64", "2", "8.0GB", "-",
                                "on-demand", "?"]  # fmt: skip
    assert cloud_part.count(UNKNOWN_PRICES) == 1
    assert cloud_part[-1] == "prices unknown for azure westeurope: the retail prices API did not answer"


def test_known_prices_only_print_no_unknown_price_line() -> None:
    lines = cloud_offer_lines(pb.OffersResponse(cloud_offers=[cloud("m5.large", "us-east-1a", 0.0416, chosen=True)]))
    assert lines == ["Cloud offers", "would launch m5.large on aws in us-east-1a (on-demand, $0.0416/h)"]


def test_a_fleet_column_when_offers_come_from_several_fleets() -> None:
    reply = pb.OffersResponse(
        cloud_offers=[cloud("m5.large", "us-east-1a", 0.0416, fleet="a"), cloud("m5.large", "us-east-1a", 1, fleet="b")]
    )
    table = cloud_offer_lines(reply)[1].split("\n")
    assert table[0].split()[-1] == "FLEET" and [row.split()[-1] for row in table[1:]] == ["a", "b"]


def test_left_out_offers_grouped_by_reason_commonest_first_with_an_example() -> None:
    arm = "arch arm64 not in [amd64]"
    reply = pb.OffersResponse(
        cloud_offers=[
            cloud("t3.large", "us-east-1a", 0.0832, chosen=True),
            cloud("c7g.large", "us-east-1c", 0.0725, reason="burstable: left out unless burstable: true"),
            cloud("m7g.large", "us-east-1a", 0.0816, reason=arm),
            cloud("m7g.large", "us-east-1b", 0.0816, reason=arm),
            cloud("c7g.xlarge", "us-east-1a", 0.145, reason=arm),
        ],
        cloud_offers_left_out=312,
    )
    lines = cloud_offer_lines(reply)
    assert lines[2:] == [
        "3 offers: arch arm64 not in [amd64] (e.g. m7g.large in us-east-1a)",
        "1 offer: burstable: left out unless burstable: true (e.g. c7g.large in us-east-1c)",
        "312 more offers left out, not listed",
    ]


def test_usable_offers_are_capped_at_twenty() -> None:
    offers = [cloud(f"m5.{i}xlarge", "us-east-1a", 0.1 + i / 100) for i in range(25)]
    lines = cloud_offer_lines(pb.OffersResponse(cloud_offers=offers))
    table = lines[1].split("\n")
    assert len(table) == 1 + 20
    assert table[1].split()[3] == "m5.0xlarge" and table[20].split()[3] == "m5.19xlarge"
    assert lines[2] == "... and 5 more"


def test_nothing_fits_and_notes_only() -> None:
    none_fit = cloud_offer_lines(pb.OffersResponse(cloud_offers=[cloud("m5.large", "us-east-1a", 1, reason="r")]))
    assert none_fit == ["Cloud offers", "no cloud offer fits", "1 offer: r (e.g. m5.large in us-east-1a)"]
    notes = cloud_offer_lines(pb.OffersResponse(cloud_notes=["no cloud backend is configured"]))
    assert notes == ["Cloud offers", "no cloud backend is configured"]


def test_offers_json_gains_the_cloud_part() -> None:
    reply = pb.OffersResponse(
        offers=host_part(),
        cloud_offers=[cloud("m5.large", "us-east-1a", 0.0416, chosen=True, spot=True), cloud("x", "us-east-1a")],
        cloud_notes=["a note"],
        cloud_offers_left_out=3,
    )
    out = json.loads(json.dumps(offers_json(reply)))
    assert [(o["kind"], o["host"]) for o in out] == [
        ("host", "us-host"), ("host", "eu-host"), ("cloud", "m5.large"), ("cloud", "x")
    ]
    assert all({"host", "chosen", "reason"} <= set(o) for o in out)  # INTERFACES.md's offers row
    first, second = out[2:]
    assert first == {
        "kind": "cloud", "host": "m5.large", "instance_type": "m5.large", "backend": "aws", "region": "us-east-1",
        "zone": "us-east-1a", "fleet": None,
        "arch": "amd64", "vcpus": 2.0, "memory_bytes": 8 * GiB, "gpus": 0, "spot": True, "price": 0.0416,
        "chosen": True, "reason": "",
    }  # fmt: skip
    assert second["price"] is None and second["chosen"] is False


# ---------------------------------------------------------- instance-types
def d2s_v6(**kw: Any) -> pb.InstanceTypeCheck:
    fields: dict[str, Any] = dict(
        name="Standard_D2s_v6", backend="azure", region="westeurope", found=True, arch="amd64", raw_arch="x64",
        vcpus=2, memory_bytes=8 * GiB, hyperv_generations=["V2"], disk_controllers=["NVMe"],
        image="Canonical:ubuntu-24_04-lts:server:latest", generation="V2", disk_controller="NVMe", supported=True,
        lifecycle="current", family="standardDSv6Family",
    )  # fmt: skip
    fields.update(kw)
    return pb.InstanceTypeCheck(**fields)


def test_a_supported_type_prints_its_block() -> None:
    assert check_lines(d2s_v6()) == [
        "Standard_D2s_v6 (azure westeurope)",
        "  arch           amd64 (x64)",
        "  vcpus, memory  2, 8.0GB",
        "  gpus           -",
        "  family         standardDSv6Family",
        "  hyper-v gens   V2",
        "  disk ctrl      NVMe",
        "  boots          Canonical:ubuntu-24_04-lts:server:latest (Gen2, NVMe)",
        "  supported      yes",
        "  lifecycle      current",
    ]


def test_not_found_unsupported_burstable_retiring() -> None:
    missing = pb.InstanceTypeCheck(name="Standard_X", backend="azure", region="westeurope")
    assert check_lines(missing) == ["Standard_X (azure westeurope): not offered by the API"]

    unsupported = check_lines(
        d2s_v6(name="Standard_NC6", supported=False, reason="Hyper-V generation V1 only: no Gen2 image", gpus=1,
               gpu_name="K80", hyperv_generations=["V1"], image="", lifecycle="retired",
               lifecycle_note="retired 2023-08-31 (azure.microsoft.com/updates)")
    )  # fmt: skip
    assert "  gpus           1xK80" in unsupported
    assert "  supported      no: Hyper-V generation V1 only: no Gen2 image" in unsupported
    assert "  lifecycle      retired: retired 2023-08-31 (azure.microsoft.com/updates)" in unsupported
    assert not any(line.lstrip().startswith("boots") for line in unsupported)

    burstable = check_lines(
        pb.InstanceTypeCheck(name="t3.micro", backend="aws", region="us-east-1", found=True, arch="amd64",
                             raw_arch="x86_64", vcpus=2, memory_bytes=GiB, image="ami-0abc", supported=True,
                             burstable=True, reason="burstable", lifecycle="retiring",
                             lifecycle_note="previous generation (CurrentGeneration: false)")
    )  # fmt: skip
    assert burstable[0] == "t3.micro (aws us-east-1)"
    assert "  arch           amd64 (x86_64)" in burstable
    assert "  boots          ami-0abc" in burstable
    assert "  supported      yes, burstable: left out of offers unless burstable: true" in burstable
    assert "  lifecycle      retiring: previous generation (CurrentGeneration: false)" in burstable


def test_checks_text_ends_with_the_notes() -> None:
    reply = pb.CheckInstanceTypesResponse(
        checks=[d2s_v6(), pb.InstanceTypeCheck(name="Standard_X", backend="azure", region="westeurope")],
        notes=["aws: no credentials found"],
    )
    lines = checks_text(reply).split("\n")
    assert lines[0] == "Standard_D2s_v6 (azure westeurope)"
    assert lines[-2:] == ["Standard_X (azure westeurope): not offered by the API", "aws: no credentials found"]


def test_checks_json_has_every_field_memory_in_bytes() -> None:
    reply = pb.CheckInstanceTypesResponse(checks=[d2s_v6(burstable=True)], notes=["n"])
    out = json.loads(json.dumps(checks_json(reply)))
    (check,) = out
    assert set(check) == {f.name for f in pb.InstanceTypeCheck.DESCRIPTOR.fields}
    assert check["memory_bytes"] == 8 * GiB  # a number, not MessageToDict's int64 string
    assert check["hyperv_generations"] == ["V2"] and check["burstable"] is True and check["gpus"] == 0
    assert check["found"] is True and check["supported"] is True and check["lifecycle"] == "current"


def test_exit_status_is_one_only_when_a_name_is_found_nowhere() -> None:
    aws_miss = pb.InstanceTypeCheck(name="Standard_D2s_v6", backend="aws", region="us-east-1")
    assert check_exit_status(["Standard_D2s_v6"], [aws_miss, d2s_v6()]) == 0  # found in azure
    assert check_exit_status(["standard_d2s_v6"], [d2s_v6()]) == 0  # the API's spelling
    assert check_exit_status(["Standard_NC6"], [d2s_v6(name="Standard_NC6", supported=False)]) == 0  # unsupported
    assert check_exit_status(["Standard_D2s_v6", "Standard_X"], [d2s_v6()]) == 1  # no check at all for X
    assert check_exit_status(["Standard_D2s_v6"], [aws_miss]) == 1


def test_check_without_names_is_refused_without_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    # a closed port and no token: contacting anything would fail differently
    code = cli_main.main(["instance-types", "check", "--controller", "127.0.0.1:1", "--insecure"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "dstackctl: instance-types check needs at least one type: dstackctl instance-types check TYPE...\n"


def test_check_parses_backend_and_region() -> None:
    args = cli_main.build_parser().parse_args(["instance-types", "check", "m7g.large", "t3.micro", "--backend",
                                               "aws", "--region", "eu-west-1", "--json"])  # fmt: skip
    assert args.names == ["m7g.large", "t3.micro"] and args.backend == "aws" and args.region == "eu-west-1"
    assert args.json is True


# ------------------------------------------------------------------- fleet
def burst_fleet() -> pb.Fleet:
    return pb.Fleet(
        name="burst",
        status="active",
        configuration_json=json.dumps({"type": "fleet", "name": "burst"}),
        hosts=[
            pb.Host(
                name="ip-10-0-1-5",
                status="online",
                cpu_total=2,
                memory_total_bytes=8 * GiB,
                backend="aws",
                region="eu-west-1",
                zone="eu-west-1a",
            )
        ],
        instances=[
            pb.CloudInstance(
                backend="aws",
                region="eu-west-1",
                zone="eu-west-1a",
                instance_type="m7g.large",
                instance_id="i-0abc123",
                status="running",
                host="ip-10-0-1-5",
                spot=True,
                price=0.0816,
                task="train",
                launched_at_ms=1,
            ),
            pb.CloudInstance(
                backend="azure",
                region="westeurope",
                instance_type="Standard_D2s_v6",
                instance_id="",
                status="failed",
                reason="quota exceeded",
            ),
        ],
    )


def test_instance_table() -> None:
    lines = instance_lines(burst_fleet().instances)
    assert lines[0].split() == ["INSTANCE", "BACKEND", "ZONE", "TYPE", "SPOT", "STATUS", "HOST", "PRICE"]
    assert lines[1].split() == ["i-0abc123", "aws", "(eu-west-1)", "eu-west-1a", "m7g.large", "spot", "running",
                                "ip-10-0-1-5", "$0.0816/h"]  # fmt: skip
    assert "aws (eu-west-1)" in lines[1]
    assert lines[2].split() == ["-", "azure", "(westeurope)", "-", "Standard_D2s_v6", "on-demand", "failed", "-", "?"]
    verbose = instance_lines(burst_fleet().instances, verbose=True)
    assert verbose[0].split()[-3:] == ["LAUNCHED", "TASK", "REASON"]
    assert verbose[2].endswith("quota exceeded")
    assert instance_lines([]) == []


def test_fleet_lists_each_fleets_instances_after_its_hosts() -> None:
    box = pb.Host(name="box", status="online")
    plain = pb.Fleet(name="onprem", status="active", configuration_json="{}", hosts=[box])
    lines = fleet_lines([burst_fleet(), plain], verbose=False)
    assert lines[0].split() == ["NAME", "NODES", "RESOURCES", "ZONES", "STATUS"]
    assert lines[1].startswith("burst") and lines[2].startswith("  ip-10-0-1-5")
    assert lines[3].startswith("    INSTANCE") and lines[4].startswith("    i-0abc123")
    assert lines[5].startswith("    -  ") and "quota exceeded" not in lines[5]
    assert lines[6].startswith("onprem") and lines[7].startswith("  box") and len(lines) == 8


def test_fleet_json_gains_instances() -> None:
    out = json.loads(json.dumps(fleet_json(burst_fleet())))
    running, failed = out["instances"]
    assert running == {
        "instance_id": "i-0abc123", "backend": "aws", "region": "eu-west-1", "zone": "eu-west-1a",
        "instance_type": "m7g.large", "status": "running", "host": "ip-10-0-1-5", "spot": True, "price": 0.0816,
        "launched_at": 1, "task": "train", "reason": None,
    }  # fmt: skip
    assert failed["status"] == "failed" and failed["reason"] == "quota exceeded" and failed["price"] is None
