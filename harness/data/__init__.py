"""Datasets: BEIR folders, the embedded demo dataset and downloads."""

from harness.data.beir import Dataset, Document, Query, Split, load_dataset

__all__ = ["Dataset", "Document", "Query", "Split", "load_dataset"]
