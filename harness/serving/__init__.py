"""Serving indexes: blue-green builds of a model's index in a vector database (Qdrant,
embedded or a server), an atomic swap of the serving alias, rollback and prune
(``harness index``); the plan of what a switch costs. ``docs/index.md`` describes them."""
