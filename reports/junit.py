"""JUnit XML for a gate result: one testcase per check, so CI systems show each natively.

Mapping: ``pass`` -> a plain testcase; ``fail`` -> ``<failure type="fail">``;
``inconclusive`` -> ``<failure type="inconclusive">`` when the policy lets inconclusive
block (exit 2), else ``<skipped>``. The numbers of each check go to ``<system-out>``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any


def gate_junit(result: dict[str, Any]) -> str:
    checks = result["checks"]
    blocks = bool(result["policy"].get("inconclusive_blocks", True))
    failures = sum(c["status"] == "fail" or (c["status"] == "inconclusive" and blocks) for c in checks)
    skipped = sum(c["status"] == "inconclusive" and not blocks for c in checks)
    suite = ET.Element(
        "testsuite",
        {
            "name": f"harness gate: {result['candidate']} vs {result['baseline']}",
            "tests": str(len(checks)),
            "failures": str(failures),
            "errors": "0",
            "skipped": str(skipped),
            "timestamp": str(result.get("provenance", {}).get("created_at", "")),
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("status", result["status"]),
        ("exit_code", result["exit_code"]),
        ("baseline", result["baseline"]),
        ("candidate", result["candidate"]),
        ("policy", result["policy"].get("path")),
        ("policy_sha256", result["policy"].get("sha256")),
        ("dataset_hash", result.get("dataset", {}).get("hash")),
        ("max_queries", result["options"].get("max_queries")),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": "" if value is None else str(value)})
    for check in checks:
        case = ET.SubElement(suite, "testcase", {"classname": f"gate.{check['type']}", "name": check["name"], "time": "0"})
        status = check["status"]
        if status == "fail":
            ET.SubElement(case, "failure", {"type": "fail", "message": check["reason"]}).text = check["reason"]
        elif status == "inconclusive" and blocks:
            ET.SubElement(case, "failure", {"type": "inconclusive", "message": check["reason"]}).text = check["reason"]
        elif status == "inconclusive":
            ET.SubElement(case, "skipped", {"message": f"inconclusive: {check['reason']}"})
        ET.SubElement(case, "system-out").text = f"{status}: {check['reason']}\n" + json.dumps(check["numbers"], indent=1, default=str)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write_gate_junit(result: dict[str, Any], path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(gate_junit(result), encoding="utf-8")
    return target
