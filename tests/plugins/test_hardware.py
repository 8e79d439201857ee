"""The hardware agent: parsing spec lines, unit conventions, totals, warnings, requirements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import AgentInputError
from plugins import hardware
from plugins.logic.hardware import analyze, parse_line, process, size_to_bytes
from tests.plugins import run_in_sandbox, stand_in

SPEC = (Path(__file__).resolve().parents[2] / "examples" / "hardware_spec.txt").read_text()
GiB, TB = 2**30, 10**12

WORKSTATION = """\
CPU: AMD Ryzen 9 7950X 16-Core Processor @ 4.5GHz, 32 threads
Memory: 2 x 32GB DDR5-5600 non-ECC
Storage: Samsung 990 Pro 2TB NVMe M.2
Storage: 1.75 TiB SATA SSD
GPU: NVIDIA GeForce RTX 4090 24GB
Network: 2.5 Gbps Ethernet
"""


def component(line: str) -> dict[str, Any]:
    warnings: list[str] = []
    parsed = parse_line(1, line, warnings)
    assert parsed is not None, warnings
    return parsed.to_dict()


def test_the_lines_from_a_reseller_quote_are_parsed() -> None:
    cpu = component("CPU: Intel Xeon E5-2680 v4 @ 2.40GHz, 14 cores")
    assert cpu["kind"] == "cpu" and cpu["model"] == "Intel Xeon E5-2680 v4"
    assert cpu["frequency_hz"] == 2_400_000_000 and cpu["cores"] == 14
    ram = component("RAM: 64 GB DDR4")
    assert ram["capacity_bytes"] == 64 * GiB and ram["memory_type"] == "DDR4"
    nvme = component("Disk: 2 x 1.92TB NVMe")
    assert (nvme["count"], nvme["capacity_bytes"], nvme["media"], nvme["interface"]) == (
        2,
        1_920_000_000_000,
        "ssd",
        "nvme",
    )
    hdd = component("Disk: 4TB HDD 7200rpm")
    assert (hdd["capacity_bytes"], hdd["media"], hdd["rpm"]) == (4 * TB, "hdd", 7200)


def test_memory_is_binary_and_storage_decimal_unless_the_label_says_otherwise() -> None:
    assert component("RAM: 16GB")["capacity_bytes"] == 16 * GiB
    assert component("RAM: 16GiB")["capacity_bytes"] == 16 * GiB
    assert component("Disk: 960GB SSD")["capacity_bytes"] == 960 * 10**9
    assert component("Disk: 1.75 TiB SSD")["capacity_bytes"] == round(1.75 * 2**40)
    assert size_to_bytes(1.92, "T", binary=False) == 1_920_000_000_000
    assert size_to_bytes(512, "M", binary=True) == 512 * 2**20


def test_example_spec_totals_say_raw_and_usable_raid_capacity() -> None:
    report = analyze(SPEC)
    totals = report.totals
    assert (totals["cpu_sockets"], totals["cores"], totals["threads"]) == (2, 28, 56)
    assert totals["ram_bytes"] == 256 * GiB and totals["ram_gib"] == 256
    # RAID 1 of 2 x 1.92 TB keeps 1.92 TB; RAID 5 of 4 x 4 TB keeps 12 TB.
    assert totals["disk_raw_bytes"] == 2 * 1_920_000_000_000 + 4 * 4 * TB
    assert totals["disk_usable_bytes"] == 1_920_000_000_000 + 12 * TB
    assert (totals["disk_raw_tb"], totals["disk_usable_tb"]) == (19.84, 13.92)
    assert totals["ssd_usable_tb"] == 1.92
    assert totals["network_gbps"] == 20 and totals["gpus"] == 1
    assert totals["gpu_memory_gib"] == 16
    assert report.warnings == []
    ram = next(c for c in report.components if c.kind == "ram")
    assert (ram.count, ram.capacity_bytes, ram.speed_mts, ram.ecc) == (8, 32 * GiB, 2400, True)


def test_workstation_spec() -> None:
    totals = analyze(WORKSTATION).totals
    assert (totals["cores"], totals["threads"], totals["cpu_ghz"]) == (16, 32, 4.5)
    assert totals["ram_gib"] == 64
    assert totals["disk_usable_bytes"] == totals["disk_raw_bytes"] == 2 * TB + round(1.75 * 2**40)
    assert totals["ssd_usable_tb"] == totals["disk_usable_tb"]
    assert totals["network_gbps"] == 2.5 and totals["gpu_memory_gib"] == 24


def test_each_disk_line_names_its_raid_level_raw_and_usable_capacity() -> None:
    result = process({"text": SPEC})
    assert result["notes"][:2] == [
        "line 5: 2 x 1.92 TB, RAID 1 (mirrored): 3.84 TB raw, 1.92 TB usable",
        "line 6: 4 x 4 TB, RAID 5 (one drive of parity): 16 TB raw, 12 TB usable",
    ]
    raid5 = next(c for c in result["components"] if c.get("raid") == 5)
    assert (raid5["raw_bytes"], raid5["usable_bytes"]) == (16 * TB, 12 * TB)
    too_few = analyze("Disk: 2 x 4TB HDD, RAID 5")
    assert too_few.notes == ["line 1: 2 x 4 TB, RAID 5 (not applied): 8 TB raw, 8 TB usable"]
    assert analyze("Disk: 1TB SSD").notes == ["line 1: 1 TB, no RAID: 1 TB raw, 1 TB usable"]


def test_a_redundant_pair_of_supplies_gives_one_supplys_power() -> None:
    result = process({"text": SPEC})
    psu = next(c for c in result["components"] if c["kind"] == "psu")
    assert (psu["count"], psu["watts"], psu["redundancy"], psu["capacity_watts"]) == (
        2, 750, "1+1", 750
    )  # fmt: skip
    assert (result["totals"]["psu_capacity_watts"], result["totals"]["psu_installed_watts"]) == (
        750, 1500
    )  # fmt: skip
    assert "line 9: 2 x 750 W, redundant 1+1: 750 W capacity" in result["notes"]
    assert result["warnings"] == []


@pytest.mark.parametrize(
    ("line", "redundancy", "capacity"),
    [
        ("PSU: 3 x 1100W, N+1 redundant", "2+1", 2200),
        ("PSU: 4 x 1600W 2+2", "2+2", 3200),
        ("Power supply: 2 x 500 W redundancy", "1+1", 500),
        ("PSU: 800W", None, 800),
    ],
)
def test_power_capacity_leaves_out_the_spares(
    line: str, redundancy: str | None, capacity: float
) -> None:
    report = analyze(line)
    psu = report.components[0]
    assert (psu.redundancy, psu.capacity_watts) == (redundancy, capacity)
    assert report.totals["psu_capacity_watts"] == capacity


def test_supplies_without_stated_redundancy_add_up_with_a_warning() -> None:
    report = analyze("PSU: 2 x 750W")
    assert report.totals["psu_capacity_watts"] == 1500
    assert any("no redundancy stated" in w for w in report.warnings), report.warnings
    mismatch = analyze("PSU: 3 x 750W 1+1")
    assert mismatch.components[0].redundancy == "2+1"
    assert any("1+1 does not add up to 3 supplies" in w for w in mismatch.warnings)


def test_requirements_pass_or_fail_one_by_one() -> None:
    result = process(
        {"text": SPEC, "requirements": {"min_ram_gb": 256, "min_cores": 32, "min_disk_tb": 10}}
    )
    checks = {c["requirement"]: c for c in result["checks"]}
    assert checks["min_ram_gb"]["passed"] is True  # 256 GB of RAM meets "256 GB" exactly
    assert checks["min_cores"] == {
        "requirement": "min_cores",
        "required": 32,
        "actual": 28,
        "unit": "cores",
        "passed": False,
    }
    assert checks["min_disk_tb"]["passed"] is True
    assert result["passed"] is False
    assert process({"text": SPEC})["passed"] is True  # nothing required, nothing failed


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("CPU: mystery chip", "CPU core count not stated"),
        ("Disk: 2 x 4TB HDD, RAID 5", "RAID 5 needs at least 3 drives"),
        ("Disk: 2 x 1TB SSD RAID 0", "RAID 0 has no redundancy"),
        ("RAM: 128GB (4 x 16GB) DDR4", "stated total does not equal the modules"),
        ("RAM: 16GB DDR4\nRAM: 16GB DDR5", "mixed memory generations: DDR4, DDR5"),
        ("Disk: 4TB HDD\nDisk: 4TB HDD", "all storage is spinning disks"),
        ("CPU: Xeon, 8 cores\nthis line means nothing", "line 2: not a 'Part: description'"),
        ("CPU: Xeon, 8 cores", "no memory listed"),
    ],
)
def test_suspicious_specs_get_warnings(text: str, fragment: str) -> None:
    warnings = analyze(text).warnings
    assert any(fragment in w for w in warnings), warnings


def test_comments_blank_lines_and_unknown_parts_are_not_warnings() -> None:
    report = analyze(
        "# quote 42\n\nChassis: 2U rack\nCPU: Xeon, 8 cores\nRAM: 8GB\nDisk: 1TB SSD\n"
    )
    assert report.warnings == []
    assert [c.kind for c in report.components] == ["other", "cpu", "ram", "disk"]


@pytest.mark.parametrize(
    ("task", "fragment"),
    [
        ({}, "'text'"),
        ({"text": SPEC, "requirements": ["min_cores"]}, "'requirements' must be an object"),
        ({"text": SPEC, "requirements": {"min_ram": 8}}, "unknown requirement 'min_ram'"),
        ({"text": SPEC, "requirements": {"min_cores": -1}}, "'min_cores' must be a non-negative"),
        ({"text": SPEC, "requirements": {"min_cores": "8"}}, "'min_cores' must be a non-negative"),
    ],
)
def test_bad_tasks_raise_value_error(task: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        process(task)


def test_hook_uses_configured_requirements_and_reports_bad_input() -> None:
    assert hardware.plugin.agentfactory_process(agent=stand_in("x"), task={"text": SPEC}) is None
    agent = stand_in("hardware", {"requirements": {"min_cores": 64}})
    result = hardware.plugin.agentfactory_process(agent=agent, task={"text": SPEC})
    assert result is not None and result["passed"] is False
    json.dumps(result)
    relaxed = {"text": SPEC, "requirements": {"min_cores": 8}}
    result = hardware.plugin.agentfactory_process(agent=agent, task=relaxed)
    assert result is not None and result["passed"] is True
    with pytest.raises(AgentInputError, match="hardware: unknown requirement"):
        hardware.plugin.agentfactory_process(
            agent=agent, task={"text": SPEC, "requirements": {"x": 1}}
        )


@pytest.mark.sandbox
def test_the_published_package_gives_the_native_result_in_the_sandbox() -> None:
    task = {"text": SPEC, "requirements": {"min_cores": 32, "min_ram_gb": 128}}
    native = json.loads(json.dumps(process(task)))
    assert run_in_sandbox("hardware", task) == native
