"""A section's checks (``Section.tests``) as JUnit XML, so CI systems show each natively:
one testcase per check; a failure, skip or error where the check says so, and what the
check read in ``<system-out>``."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.reports.document import Section


def render(section: Section) -> str:
    suite = section.tests
    if suite is None:
        raise ValueError(f"the {section.kind} section from {section.source} has no checks to write as JUnit")
    root = ET.Element(
        "testsuite",
        {
            "name": suite.name,
            "tests": str(len(suite.cases)),
            "failures": str(sum(case.outcome == "failure" for case in suite.cases)),
            "errors": str(sum(case.outcome == "error" for case in suite.cases)),
            "skipped": str(sum(case.outcome == "skipped" for case in suite.cases)),
            "timestamp": suite.timestamp,
        },
    )
    properties = ET.SubElement(root, "properties")
    for name, value in suite.properties:
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for case in suite.cases:
        element = ET.SubElement(root, "testcase", {"classname": case.group, "name": case.name, "time": "0"})
        if case.outcome:
            outcome = ET.SubElement(element, case.outcome, ({"type": case.kind} if case.kind else {}) | {"message": case.message})
            if case.detail:
                outcome.text = case.detail
        ET.SubElement(element, "system-out").text = case.output
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
