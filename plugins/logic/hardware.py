"""Parse a hardware spec sheet ("CPU: ...", "RAM: ...", "Disk: ...") and check it against needs.

This file is the whole agent: it imports only the standard library and is published unchanged as
the `process.py` of the `hardware` package, so it must stay self-contained.

Unit conventions (the ones printed on the parts, so a user's numbers match the labels):
- Memory (RAM and GPU memory) is binary whatever the label says: "64 GB DDR4" is 64 GiB, as JEDEC
  defines it. `min_ram_gb` and `min_gpu_memory_gb` are therefore compared in GiB.
- Storage follows the drive makers: "1.92TB" is 1.92 * 10**12 bytes, "1.75TiB" is binary.
  Every storage figure says whether it is raw (all drives added up) or usable (what is left for
  data once the RAID level written on the line has taken its share: RAID 1 mirrors, RAID 5 loses
  one drive, ...); each disk line gets a note naming its RAID level, raw and usable capacity.
  `min_disk_tb` and `min_ssd_tb` are compared in decimal TB, on usable capacity.
- Power supplies marked "redundant" (or "N+M") are spares for each other: the capacity is what
  survives the loss of the spares (one unit of a redundant pair, N units of N+M), not the sum.
  Several supplies with no redundancy stated are added up, with a warning saying so.
- Frequencies are in Hz, network speeds in bit/s, power in W.
- "2 x" at the start of a line multiplies the part; CPU core counts are per socket.

Invariants: every non-blank, non-comment line either becomes a component or a warning; the result
does not depend on line order except for component order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_PREFIX = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_KINDS = {
    "cpu": "cpu",
    "cpus": "cpu",
    "processor": "cpu",
    "processors": "cpu",
    "ram": "ram",
    "memory": "ram",
    "mem": "ram",
    "disk": "disk",
    "disks": "disk",
    "storage": "disk",
    "drive": "disk",
    "drives": "disk",
    "ssd": "disk",
    "hdd": "disk",
    "nvme": "disk",
    "gpu": "gpu",
    "gpus": "gpu",
    "graphics": "gpu",
    "accelerator": "gpu",
    "nic": "nic",
    "network": "nic",
    "net": "nic",
    "ethernet": "nic",
    "psu": "psu",
    "power": "psu",
    "power supply": "psu",
}
_RAID_MIN_DRIVES = {0: 2, 1: 2, 5: 3, 6: 4, 10: 4}

_LINE_RE = re.compile(r"^\s*([A-Za-z][A-Za-z _/-]*?)\s*#?\d*\s*[:=]\s*(.+?)\s*$")
_COUNT_RE = re.compile(r"^(\d+)\s*[x×*]\s*", re.IGNORECASE)
_SIZE_RE = re.compile(r"(?:(\d+)\s*[x×*]\s*)?(\d+(?:\.\d+)?)\s*([kmgtp])(i?)b\b", re.IGNORECASE)
_FREQ_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?)hz\b", re.IGNORECASE)
_CORES_RE = re.compile(r"(\d+)\s*(?:-?\s*cores?\b|c\b)", re.IGNORECASE)
_THREADS_RE = re.compile(r"(\d+)\s*(?:threads?\b|t\b)", re.IGNORECASE)
_DDR_RE = re.compile(r"\b(LP)?DDR(\d)X?(?:[- ](\d{3,4}))?", re.IGNORECASE)
_MTS_RE = re.compile(r"(\d{3,4})\s*(?:MT/s|MHz)", re.IGNORECASE)
_RPM_RE = re.compile(r"(\d[\d,]*)\s*rpm\b", re.IGNORECASE)
_RAID_RE = re.compile(r"\bRAID\s*-?\s*(\d+)", re.IGNORECASE)
_SPEED_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([mgt])(?:b(?:it)?(?:/s|ps)?|be)\b", re.IGNORECASE)
_WATTS_RE = re.compile(r"(\d+(?:\.\d+)?)\s*W\b")
_N_PLUS_M_RE = re.compile(r"\b(\d+)\s*\+\s*(\d+)\b")
_REDUNDANT_RE = re.compile(r"\bredundan(?:t|cy)\b", re.IGNORECASE)
_RAID_NAMES = {0: "striped", 1: "mirrored", 5: "one drive of parity", 6: "two drives of parity",
               10: "striped mirrors"}  # fmt: skip


@dataclass
class Component:
    kind: str  # cpu, ram, disk, gpu, nic, psu or other
    line: int
    raw: str
    model: str
    count: int = 1
    capacity_bytes: int | None = None  # per part (RAM module, drive, GPU memory)
    frequency_hz: int | None = None
    cores: int | None = None  # per socket
    threads: int | None = None  # per socket
    memory_type: str | None = None
    speed_mts: int | None = None
    ecc: bool | None = None
    media: str | None = None  # ssd or hdd
    interface: str | None = None  # nvme, sata, sas
    rpm: int | None = None
    raid: int | None = None
    raw_bytes: int | None = None  # disks: all drives of the line added up
    usable_bytes: int | None = None  # disks: what the RAID level leaves for data
    speed_bps: int | None = None
    watts: float | None = None  # per supply
    redundancy: str | None = None  # power supplies: "1+1", "2+1", ...
    capacity_watts: float | None = None  # power supplies: what is left if the spares fail

    def to_dict(self) -> dict[str, Any]:
        # A flat record: `vars` is enough, and `asdict` (a deep copy) dominated the run time.
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class Check:
    requirement: str
    required: float
    actual: float
    unit: str
    passed: bool


@dataclass
class HardwareReport:
    components: list[Component]
    totals: dict[str, float]
    warnings: list[str]
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how storage and power figures were reached

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "components": [c.to_dict() for c in self.components],
            "totals": self.totals,
            "notes": self.notes,
            "warnings": self.warnings,
            "checks": [vars(c).copy() for c in self.checks],
            "passed": self.passed,
        }


def size_to_bytes(number: float, prefix: str, binary: bool) -> int:
    """`size_to_bytes(1.92, "T", False)` -> 1_920_000_000_000; binary uses powers of 1024."""
    power = _PREFIX[prefix.lower()]
    return round(number * float((1024 if binary else 1000) ** power))


def _sizes(text: str, force_binary: bool) -> list[tuple[int, int]]:
    """(count, bytes per part) for every size in `text`; "4x32GB" gives (4, 32 GiB)."""
    found = []
    for match in _SIZE_RE.finditer(text):
        binary = force_binary or bool(match.group(4))
        size = size_to_bytes(float(match.group(2)), match.group(3), binary)
        found.append((int(match.group(1) or 1), size))
    return found


def _first_int(pattern: re.Pattern[str], text: str) -> int | None:
    match = pattern.search(text)
    return int(match.group(1).replace(",", "")) if match else None


def _model(value: str) -> str:
    """The part name: the text before the first "@", "," or "(", without sizes or speeds."""
    head = re.split(r"[@,(]", value, maxsplit=1)[0]
    head = _SIZE_RE.sub("", _FREQ_RE.sub("", head))
    if not head.strip():  # "256GB (8 x 32GB) DDR4": the name follows the sizes
        head = re.sub(r"\(\s*\)", "", _SIZE_RE.sub("", _FREQ_RE.sub("", value)))
    return " ".join(head.split())


def _parse_cpu(c: Component, value: str, warnings: list[str]) -> None:
    freq = _FREQ_RE.search(value)
    if freq:
        c.frequency_hz = round(float(freq.group(1)) * 1000 ** _PREFIX[freq.group(2).lower()])
    c.cores = _first_int(_CORES_RE, value)
    c.threads = _first_int(_THREADS_RE, value)
    if c.cores is None:
        warnings.append(f"line {c.line}: CPU core count not stated")
    elif c.threads is not None and c.threads < c.cores:
        warnings.append(f"line {c.line}: {c.threads} threads for {c.cores} cores looks wrong")


def _parse_ram(c: Component, value: str, warnings: list[str]) -> None:
    sizes = _sizes(value, force_binary=True)
    modules = [s for s in sizes if s[0] > 1]
    if modules:
        c.count, c.capacity_bytes = modules[0]
        plain = [s[1] for s in sizes if s[0] == 1]
        if plain and plain[0] != c.count * c.capacity_bytes:
            warnings.append(
                f"line {c.line}: stated total does not equal the modules "
                f"({c.count} x {c.capacity_bytes // 2**30} GiB)"
            )
    elif sizes:
        c.capacity_bytes = sizes[0][1]
    else:
        warnings.append(f"line {c.line}: memory size not stated")
    ddr = _DDR_RE.search(value)
    if ddr:
        c.memory_type = f"{(ddr.group(1) or '').upper()}DDR{ddr.group(2)}"
        c.speed_mts = int(ddr.group(3)) if ddr.group(3) else _first_int(_MTS_RE, value)
    if re.search(r"\bnon[- ]?ECC\b", value, re.IGNORECASE):
        c.ecc = False
    elif re.search(r"\bECC\b|\bRDIMM\b|\bLRDIMM\b", value, re.IGNORECASE):
        c.ecc = True


def _parse_disk(c: Component, key: str, value: str, warnings: list[str]) -> None:
    sizes = _sizes(value, force_binary=False)
    if sizes:
        count, c.capacity_bytes = sizes[0]
        c.count *= count
    else:
        warnings.append(f"line {c.line}: drive capacity not stated")
    text = f"{key} {value}".lower()
    c.rpm = _first_int(_RPM_RE, value)
    for interface in ("nvme", "sas", "sata"):
        if re.search(rf"\b{interface}\b", text):
            c.interface = interface
            break
    if c.interface == "nvme" or re.search(r"\b(ssd|m\.2|u\.2|flash)\b", text):
        c.media = "ssd"
    elif c.rpm or re.search(r"\bhdd\b", text):
        c.media = "hdd"
    c.raid = _first_int(_RAID_RE, value)
    if c.raid is not None:
        need = _RAID_MIN_DRIVES.get(c.raid)
        if need is None:
            warnings.append(f"line {c.line}: unknown RAID level {c.raid}; capacity taken as raw")
        elif c.count < need:
            warnings.append(
                f"line {c.line}: RAID {c.raid} needs at least {need} drives, {c.count} given"
            )
        elif c.raid == 0:
            warnings.append(
                f"line {c.line}: RAID 0 has no redundancy: one failed drive loses the array"
            )


def usable_capacity(c: Component) -> int:
    """Capacity left for data once the line's RAID level has taken its share."""
    raw = (c.capacity_bytes or 0) * c.count
    if c.raid is None or c.count < _RAID_MIN_DRIVES.get(c.raid, 0):
        return raw
    per = c.capacity_bytes or 0
    return {0: raw, 1: per, 5: raw - per, 6: raw - 2 * per, 10: raw // 2}.get(c.raid, raw)


def _tb(n: int) -> str:
    return f"{n / 1e12:g} TB"


def _storage_note(c: Component) -> str:
    drives = f"{c.count} x {_tb(c.capacity_bytes or 0)}" if c.count > 1 else _tb(c.raw_bytes or 0)
    if c.raid is None:
        layout = "no RAID"
    elif c.raid in _RAID_NAMES and c.count >= _RAID_MIN_DRIVES[c.raid]:
        layout = f"RAID {c.raid} ({_RAID_NAMES[c.raid]})"
    else:  # a warning says why
        layout = f"RAID {c.raid} (not applied)"
    return (
        f"line {c.line}: {drives}, {layout}: {_tb(c.raw_bytes or 0)} raw, "
        f"{_tb(c.usable_bytes or 0)} usable"
    )


def _parse_psu(c: Component, value: str, warnings: list[str]) -> None:
    watts = _WATTS_RE.search(value)
    c.watts = float(watts.group(1)) if watts else None
    n_plus_m = _N_PLUS_M_RE.search(value)
    if n_plus_m and int(n_plus_m.group(1)) + int(n_plus_m.group(2)) == c.count:
        working = int(n_plus_m.group(1))
    elif n_plus_m:
        warnings.append(
            f"line {c.line}: {n_plus_m.group()} does not add up to {c.count} supplies; "
            "taken as one spare"
        )
        working = max(c.count - 1, 1)
    elif _REDUNDANT_RE.search(value) and c.count > 1:
        working = c.count - 1
    else:
        working = c.count
        if c.count > 1:
            warnings.append(
                f"line {c.line}: {c.count} power supplies with no redundancy stated: their "
                "wattage is added up; write 'redundant' or 'N+1' if some are spares"
            )
    if working < c.count:
        c.redundancy = f"{working}+{c.count - working}"
    if c.watts is not None:
        c.capacity_watts = c.watts * working


def _power_note(c: Component) -> str:
    watts = f"{c.watts:g} W" if c.watts is not None else "unknown wattage"
    supplies = f"{c.count} x {watts}" if c.count > 1 else watts
    capacity = f"{c.capacity_watts:g} W" if c.capacity_watts is not None else "unknown"
    if c.redundancy:
        return f"line {c.line}: {supplies}, redundant {c.redundancy}: {capacity} capacity"
    return f"line {c.line}: {supplies}, not redundant: {capacity} capacity"


def parse_line(number: int, line: str, warnings: list[str]) -> Component | None:
    """One spec line to a component; None for blanks, comments and lines it cannot read."""
    stripped = line.strip()
    if not stripped or stripped.startswith(("#", "//", ";")):
        return None
    match = _LINE_RE.match(stripped)
    if not match:
        warnings.append(f"line {number}: not a 'Part: description' line: {stripped[:60]!r}")
        return None
    key, value = match.group(1).strip(), match.group(2)
    kind = _KINDS.get(key.lower(), "other")
    count_match = _COUNT_RE.match(value)
    count = int(count_match.group(1)) if count_match and kind != "ram" else 1
    rest = value[count_match.end() :] if count_match and kind != "ram" else value
    c = Component(kind, number, stripped, _model(rest), count)
    if kind == "cpu":
        _parse_cpu(c, rest, warnings)
    elif kind == "ram":
        _parse_ram(c, value, warnings)
    elif kind == "disk":
        _parse_disk(c, key, rest, warnings)
    elif kind == "gpu":
        sizes = _sizes(rest, force_binary=True)
        c.capacity_bytes = sizes[0][1] if sizes else None
    elif kind == "nic":
        speed = _SPEED_RE.search(rest)
        if speed:
            c.speed_bps = round(float(speed.group(1)) * 1000 ** _PREFIX[speed.group(2).lower()])
    elif kind == "psu":
        _parse_psu(c, rest, warnings)
    return c


def _totals(components: list[Component], warnings: list[str]) -> dict[str, float]:
    def of(kind: str) -> list[Component]:
        return [c for c in components if c.kind == kind]

    cpus, rams, disks, psus = of("cpu"), of("ram"), of("disk"), of("psu")
    ram_bytes = sum((c.capacity_bytes or 0) * c.count for c in rams)
    raw_bytes = sum(c.raw_bytes or 0 for c in disks)
    usable_bytes = sum(c.usable_bytes or 0 for c in disks)
    ssd_bytes = sum(c.usable_bytes or 0 for c in disks if c.media == "ssd")
    frequencies = [c.frequency_hz for c in cpus if c.frequency_hz]
    generations = {c.memory_type for c in rams if c.memory_type}
    if len(generations) > 1:
        warnings.append(f"mixed memory generations: {', '.join(sorted(generations))}")
    if disks and all(c.media == "hdd" for c in disks):
        warnings.append("all storage is spinning disks: expect slow random I/O")
    for kind, label in (("cpu", "CPU"), ("ram", "memory"), ("disk", "storage")):
        if not of(kind):
            warnings.append(f"no {label} listed")
    return {
        "cpu_sockets": sum(c.count for c in cpus),
        "cores": sum((c.cores or 0) * c.count for c in cpus),
        "threads": sum((c.threads or c.cores or 0) * c.count for c in cpus),
        "cpu_ghz": round(min(frequencies) / 1e9, 3) if frequencies else 0.0,
        "ram_bytes": ram_bytes,
        "ram_gib": round(ram_bytes / 2**30, 2),
        "disk_raw_bytes": raw_bytes,
        "disk_raw_tb": round(raw_bytes / 1e12, 3),
        "disk_usable_bytes": usable_bytes,
        "disk_usable_tb": round(usable_bytes / 1e12, 3),
        "ssd_usable_tb": round(ssd_bytes / 1e12, 3),
        "gpus": sum(c.count for c in of("gpu")),
        "gpu_memory_gib": round(
            max((c.capacity_bytes or 0 for c in of("gpu")), default=0) / 2**30, 2
        ),
        "network_gbps": round(sum((c.speed_bps or 0) * c.count for c in of("nic")) / 1e9, 3),
        "psu_installed_watts": sum((c.watts or 0) * c.count for c in psus),
        "psu_capacity_watts": sum(c.capacity_watts or 0 for c in psus),
    }


# requirement -> (total it is compared with, unit shown to the user)
REQUIREMENTS = {
    "min_ram_gb": ("ram_gib", "GiB"),
    "min_cores": ("cores", "cores"),
    "min_threads": ("threads", "threads"),
    "min_cpu_ghz": ("cpu_ghz", "GHz"),
    "min_disk_tb": ("disk_usable_tb", "TB"),
    "min_ssd_tb": ("ssd_usable_tb", "TB"),
    "min_gpus": ("gpus", "GPUs"),
    "min_gpu_memory_gb": ("gpu_memory_gib", "GiB"),
    "min_network_gbps": ("network_gbps", "Gbit/s"),
}


def check_requirements(totals: dict[str, float], requirements: dict[str, float]) -> list[Check]:
    """One pass/fail check per requirement, in the order given."""
    checks = []
    for name, required in requirements.items():
        total, unit = REQUIREMENTS[name]
        actual = totals[total]
        checks.append(Check(name, required, actual, unit, actual >= required))
    return checks


def analyze(text: str, requirements: dict[str, float] | None = None) -> HardwareReport:
    """Parse every line of `text`, total the parts and check them against `requirements`."""
    warnings: list[str] = []
    components = [
        c for n, line in enumerate(text.splitlines(), 1) if (c := parse_line(n, line, warnings))
    ]
    for c in components:
        if c.kind == "disk":
            c.raw_bytes = (c.capacity_bytes or 0) * c.count
            c.usable_bytes = usable_capacity(c)
    totals = _totals(components, warnings)
    notes = [_storage_note(c) for c in components if c.kind == "disk"]
    notes += [_power_note(c) for c in components if c.kind == "psu"]
    return HardwareReport(
        components, totals, warnings, check_requirements(totals, requirements or {}), notes
    )


def process(task: dict[str, Any]) -> dict[str, Any]:
    """Task `{"text": str, "requirements"?: {"min_ram_gb": 64, "min_cores": 16, ...}}`."""
    if not isinstance(task, dict):
        raise ValueError(f"task must be a JSON object, got {type(task).__name__}")
    text = task.get("text")
    if not isinstance(text, str):
        got = "nothing" if text is None else type(text).__name__
        raise ValueError(f"'text' must be a string, got {got}")
    raw = task.get("requirements") or {}
    if not isinstance(raw, dict):
        raise ValueError(f"'requirements' must be an object, got {type(raw).__name__}")
    requirements: dict[str, float] = {}
    for name, value in raw.items():
        if name not in REQUIREMENTS:
            raise ValueError(f"unknown requirement {name!r}; known: {', '.join(REQUIREMENTS)}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"requirement {name!r} must be a non-negative number, got {value!r}")
        requirements[name] = value
    return analyze(text, requirements).to_dict()
