"""Dependency audit: the pinned versions (`requirements.lock`) against the installed environment, the ranges of
requirements*.txt, and a vulnerability advisory list when one can be reached.

    python tools/audit_dependencies.py            # check; exit 1 on drift, range violations or known advisories
    python tools/audit_dependencies.py --write    # rewrite requirements.lock from this environment (pip freeze)
    python tools/audit_dependencies.py --advisories osv.json   # an offline advisory list (see below)

Why a script of its own: the package index here is a mirror that serves packages but not PyPI's JSON API, and the
OSV service is not reachable, so `pip-audit` can audit nothing on this machine. The lock file still records exactly
what was tested; this script says plainly which checks ran and which could not, and runs pip-audit (PyPI, then OSV)
wherever one of them answers. An offline list is a JSON array of {"package", "id", "affected": "<specifier>"}.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
REQUIREMENTS = [ROOT / "requirements.txt", ROOT / "requirements-dev.txt"]


def installed() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def read_lock(path: Path = LOCK) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def write_lock() -> int:
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                            text=True, check=True).stdout
    lines = sorted((ln for ln in frozen.splitlines() if "==" in ln), key=str.lower)
    LOCK.write_text("# pip freeze of the environment the test suite passed in; tools/audit_dependencies.py checks it\n"
                    + "\n".join(lines) + "\n")
    print(f"wrote {LOCK.name}: {len(lines)} pinned packages")
    return 0


def drift(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    out = [f"{n}: locked {v}, installed {have.get(n, 'nothing')}" for n, v in sorted(pins.items()) if have.get(n) != v]
    return out


def range_violations(pins: dict[str, str]) -> list[str]:
    out = []
    for path in REQUIREMENTS:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            req = Requirement(line)
            pinned = pins.get(canonicalize_name(req.name))
            if pinned is None:
                out.append(f"{path.name}: {req.name} is not in the lock file")
            elif req.specifier and not req.specifier.contains(Version(pinned), prereleases=True):
                out.append(f"{path.name}: {req.name}{req.specifier} but the lock pins {pinned}")
    return out


def offline_advisories(pins: dict[str, str], path: Path) -> list[str]:
    hits = []
    for adv in json.loads(path.read_text()):
        name = canonicalize_name(adv["package"])
        if name in pins and SpecifierSet(adv["affected"]).contains(Version(pins[name]), prereleases=True):
            hits.append(f"{name} {pins[name]}: {adv['id']} (affected {adv['affected']})")
    return hits


def pip_audit(service: str) -> tuple[str, list[str]]:
    """('ok' | 'unreachable' | 'missing', findings) from pip-audit against one advisory service."""
    exe = shutil.which("pip-audit") or str(Path(sys.executable).with_name("pip-audit"))
    if not Path(exe).exists():
        return "missing", []
    proc = subprocess.run([exe, "-r", str(LOCK), "--no-deps", "--disable-pip", "-s", service, "-f", "json",
                           "--progress-spinner", "off"], capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return "unreachable", [(proc.stderr.strip().splitlines() or ["no output"])[-1][:200]]
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    if deps and len(skipped) == len(deps):
        return "unreachable", [f"all {len(deps)} packages skipped: {skipped[0]['skip_reason'][:120]}"]
    found = [f"{d['name']} {d['version']}: {v['id']} (fixed in {', '.join(v.get('fix_versions') or ['?'])})"
             for d in deps for v in d.get("vulns", [])]
    return "ok", found + [f"not checked: {d['name']} ({d['skip_reason'][:80]})" for d in skipped]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="rewrite requirements.lock from this environment")
    p.add_argument("--advisories", type=Path, help="an offline advisory list (JSON) to check the lock against")
    args = p.parse_args(argv)
    if args.write:
        return write_lock()
    pins = read_lock()
    problems = drift(pins, installed()) + range_violations(pins)
    print(f"lock: {len(pins)} pinned packages; drift and range check: {len(problems)} problem(s)")
    for line in problems:
        print(f"  {line}")
    known: list[str] = []
    if args.advisories:
        known += offline_advisories(pins, args.advisories)
        print(f"offline advisories ({args.advisories}): {len(known)} affected package(s)")
    checked = bool(args.advisories)
    for service in ("pypi", "osv"):
        status, lines = pip_audit(service)
        print(f"pip-audit via {service}: {status}" + (f" ({lines[0]})" if status != "ok" and lines else ""))
        if status == "ok":
            checked = True
            known += [ln for ln in lines if not ln.startswith("not checked")]
            for ln in lines:
                print(f"  {ln}")
            break
    if not checked:
        print("advisories: NOT CHECKED - no advisory list was reachable (pass --advisories FILE, or run where PyPI's "
              "JSON API or api.osv.dev answers)")
    for line in known:
        print(f"  advisory: {line}")
    return 1 if problems or known else 0


if __name__ == "__main__":
    sys.exit(main())
