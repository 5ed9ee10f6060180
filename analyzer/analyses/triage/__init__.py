"""Incident-response triage: a rule engine over a snapshot's tables.

``run_rules(snap)`` returns :class:`Finding` records (rule id, title, severity, ATT&CK ids,
object, evidence, explanation), severity first. One module per rule family:
:mod:`.runtime` (privileges, namespaces, mounts, capabilities, confinement, devices,
restart persistence, runtime sockets), :mod:`.secrets`, :mod:`.supplychain`,
:mod:`.rwlayer` (container writable layers), :mod:`.volumes`, :mod:`.logs`,
:mod:`.storage` (orphans, evidence quality); :mod:`.ioc` and :mod:`.yarascan` add
indicator and YARA matches. The catalogue the rules implement is
``shared/docs/triage-rules.md``.
"""

from analyzer.analyses.triage.engine import (RULES, SEVERITIES, Finding, Rule, findings_json,
                                             findings_table, load_rules, run_rules)

__all__ = ["Finding", "Rule", "RULES", "SEVERITIES", "run_rules", "load_rules", "findings_json",
           "findings_table"]
