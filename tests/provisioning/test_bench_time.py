"""A bench's time server is its gateway, and the gateway's chrony answers the benches."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from provisioning.deployment import Deployment
from provisioning.steps import Run
from provisioning.steps_app import bench_config

CHRONY = Path(__file__).resolve().parents[2] / "deploy/chrony/klupa.conf"


def test_a_bench_sets_its_clock_from_its_gateway_unless_the_inventory_names_a_server(
    deployment: Deployment,
) -> None:
    """On a Wi-Fi without Internet access a public pool never answers, and a bench makes no
    record before its clock is set: the default must be the host every bench reaches."""
    cfg = bench_config(Run(dep=deployment, port="-"), deployment.bench("mostar-01"))
    assert cfg["ntp"] == cfg["mqtt"]["host"] == deployment.municipality("mostar").gateway_host

    text = deployment.inventory_path.read_text()
    marker = 'wifi_ssid = "klupa-mostar"\n'
    deployment.inventory_path.write_text(
        text.replace(marker, marker + 'ntp_server = "time.mostar.example"\n', 1)
    )
    deployment.reload()
    cfg = bench_config(Run(dep=deployment, port="-"), deployment.bench("mostar-01"))
    assert cfg["ntp"] == "time.mostar.example"


def test_the_gateways_chrony_answers_benches_on_any_private_network() -> None:
    """The benches' Wi-Fi subnet is each site's choice; a subnet chrony does not allow gets no
    answer, and its benches never set their clocks."""
    allowed = [
        ipaddress.ip_network(m) for m in re.findall(r"^allow\s+(\S+)\s*$", CHRONY.read_text(), re.M)
    ]
    assert allowed, "no allow line"
    private = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    for net in map(ipaddress.ip_network, private):
        assert any(net.version == a.version and net.subnet_of(a) for a in allowed), (
            f"{net} is not allowed"
        )
    assert all(a.is_private for a in allowed), "chrony must not serve the whole Internet"
