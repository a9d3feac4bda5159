"""Fetch public BEIR datasets by name (for users with internet).

The archives come from the BEIR project's public mirror. Each download is checked
against the size the server announces and against BEIR's published MD5 where it lists
one, and every archive member is checked to land inside the target folder before
anything is extracted.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from harness.errors import HarnessError

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
# MD5 sums published in BEIR's README (https://github.com/beir-cellar/beir)
BEIR_MD5 = {
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
    "quora": "18fb154900ba42a600f84b839c173167",
    "nq": "d4d3d2e48787a744b6f6e691ff534307",
    "hotpotqa": "f412724f78b0d91183a0e86805e16114",
    "dbpedia-entity": "c2a39eb420a3164af735795df012ac2c",
    "fever": "5a818580227bfb4b35bb6fa46d9b6c03",
    "climate-fever": "8b66f0a9126c521bae2bde127b4dc99d",
    "webis-touche2020": "46f650ba5a527fc69e0a6521c5a23563",
    "cqadupstack": "4e41456d7df8ee7760a7f866133bda78",
}


def safe_extract(archive: zipfile.ZipFile, target: Path) -> None:
    root = target.resolve()
    for member in archive.infolist():
        destination = (root / member.filename).resolve()
        if destination != root and root not in destination.parents:
            raise HarnessError(f"{archive.filename}: member {member.filename!r} would land outside {target}; refusing the archive")
    archive.extractall(root)


def download_beir(name: str, out: Path, url: str | None = None, timeout: float = 60.0) -> Path:
    source = url or BEIR_URL.format(name=name)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        archive_path = Path(scratch) / f"{name}.zip"
        try:
            with urllib.request.urlopen(source, timeout=timeout) as response, open(archive_path, "wb") as handle:
                announced = response.headers.get("Content-Length")
                digest = hashlib.md5()
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    handle.write(chunk)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise HarnessError(f"{source}: download failed ({exc}); are you offline? Copy the BEIR folder by hand and pass --data") from exc
        size = archive_path.stat().st_size
        if announced is not None and int(announced) != size:
            raise HarnessError(f"{source}: got {size} bytes, the server announced {announced}; try again")
        expected = BEIR_MD5.get(name)
        if expected and digest.hexdigest() != expected:
            raise HarnessError(f"{source}: MD5 {digest.hexdigest()} does not match BEIR's published {expected}")
        try:
            with zipfile.ZipFile(archive_path) as archive:
                safe_extract(archive, Path(scratch) / "x")
        except zipfile.BadZipFile as exc:
            raise HarnessError(f"{source}: not a zip archive ({exc})") from exc
        extracted = Path(scratch) / "x" / name
        if not extracted.is_dir():
            extracted = Path(scratch) / "x"
        final = out / name
        if final.exists():
            shutil.rmtree(final)
        shutil.move(str(extracted), final)
    return final
