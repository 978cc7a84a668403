"""Vendor the web app's npm packages into ``service/web/vendor`` and record where each file came from.

    python scripts/vendor_web.py            # fetch with `npm pack`, check, copy, write vendor/VENDORED.json
    python scripts/vendor_web.py --check    # only compare the files on disk with VENDORED.json

Each package is fetched with the ordinary npm client (``npm pack NAME@VERSION``), its tarball checked against
the integrity hash the registry publishes for it (sha512), and the listed files copied, licence included.
``VENDORED.json`` records, per package, the version, the tarball's integrity and, per file, its path inside
the tarball and its sha256, so anyone can re-fetch and compare. Nothing is built: the files are the
package's own distribution files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "service" / "web" / "vendor"
RECORD = VENDOR / "VENDORED.json"

#: package -> (version, {path inside the tarball's package/ folder: path under vendor/})
PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "leaflet": ("1.9.4", {
        "dist/leaflet.js": "leaflet/leaflet.js",
        "dist/leaflet.css": "leaflet/leaflet.css",
        "dist/images/layers.png": "leaflet/images/layers.png",
        "dist/images/layers-2x.png": "leaflet/images/layers-2x.png",
        "dist/images/marker-icon.png": "leaflet/images/marker-icon.png",
        "dist/images/marker-icon-2x.png": "leaflet/images/marker-icon-2x.png",
        "dist/images/marker-shadow.png": "leaflet/images/marker-shadow.png",
        "LICENSE": "leaflet/LICENSE",
    }),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(name: str, version: str, files: dict[str, str], work: Path) -> dict[str, object]:
    """``npm pack`` one package, check its integrity, copy its files; return its record."""
    out = subprocess.run(["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", str(work)],
                         check=True, capture_output=True, text=True, cwd=work, timeout=300)
    meta = json.loads(out.stdout)[0]
    tarball = work / meta["filename"]
    algo, _, expected = meta["integrity"].partition("-")
    if algo != "sha512" or base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode() != expected:
        raise SystemExit(f"{name}@{version}: the tarball does not match its published integrity {meta['integrity']}")
    record: dict[str, object] = {"version": meta["version"], "integrity": meta["integrity"],
                                 "fetched_with": f"npm pack {name}@{version}", "files": {}}
    with tarfile.open(tarball) as tar:
        for inner, dest in files.items():
            member = tar.extractfile(f"package/{inner}")
            if member is None:
                raise SystemExit(f"{name}@{version} has no file {inner}")
            target = VENDOR / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(member.read())
            record["files"][dest] = {"from": f"package/{inner}", "sha256": sha256(target)}  # type: ignore[index]
    return record


def check() -> int:
    """Compare the vendored files with the record; 1 when one is missing or differs."""
    doc = json.loads(RECORD.read_text())
    bad = [f"{dest}: {'missing' if not (VENDOR / dest).is_file() else 'changed'}"
           for pkg in doc["packages"].values() for dest, f in pkg["files"].items()
           if not (VENDOR / dest).is_file() or sha256(VENDOR / dest) != f["sha256"]]
    print("\n".join(bad) or f"{sum(len(p['files']) for p in doc['packages'].values())} vendored files match")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only check the files against VENDORED.json")
    args = ap.parse_args(argv)
    if args.check:
        return check()
    if shutil.which("npm") is None:
        raise SystemExit("npm is not installed (apt-get install npm)")
    packages: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, files) in PACKAGES.items():
            packages[name] = fetch(name, version, files, Path(tmp))
            print(f"{name}@{version}: {len(files)} files")
    RECORD.write_text(json.dumps({"note": "written by scripts/vendor_web.py; do not edit by hand",
                                  "packages": packages}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
