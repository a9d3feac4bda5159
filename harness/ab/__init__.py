"""Online A/B testing for retrievers: a DuckDB log store, ingest with quarantine, a log
simulator, the analysis (tea-tasting over Ibis, plus always-valid sequential intervals),
the promotion decision with an audit trail, and team-draft interleaving.

See docs/ab.md.
"""
