"""embedding-harness: evaluate, gate and A/B-test domain fine-tuned embedding models."""

__version__ = "0.1.0"
