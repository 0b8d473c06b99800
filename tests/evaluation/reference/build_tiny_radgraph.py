"""Builds a tiny random-weight RadGraph model in the layout the radgraph package reads (config.json, vocabulary/,
weights.th) plus the small BERT it names; run by the Python of the reference environment (radgraph installed).

    python build_tiny_radgraph.py OUT_DIR  →  OUT_DIR/radgraph/{config.json,vocabulary/,weights.th}, OUT_DIR/bert/

The model is DyGIE++ as radgraph builds it (its own classes), with RadGraph's entity and relation labels and random
weights: it annotates text, just not meaningfully. Imports nothing from deepmedix.
"""

import json
import os
import sys

import torch
from transformers import BertConfig, BertModel

WORDS = [
    "heart",
    "size",
    "normal",
    "no",
    "pleural",
    "effusion",
    "small",
    "left",
    "right",
    "mild",
    "edema",
    "pneumothorax",
    "cardiomegaly",
    "lungs",
    "are",
    "clear",
    "atelectasis",
    "consolidation",
    "opacity",
    "acute",
    "disease",
    "tube",
    "fracture",
    "and",
    "of",
    "in",
    "there",
    "is",
    "the",
    "lung",
    "base",
    "stable",
    "enlarged",
    ".",
    ",",
    ":",
    "-",
    *"0123456789",  # the tokenizer wrapper tells special tokens apart by tokenising "1" and "2"
]
NER = ["", "ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA"]
RELATIONS = ["", "modify", "located_at", "suggestive_of"]


def main(out):
    from radgraph.allennlp.data import Vocabulary
    from radgraph.allennlp.modules import text_field_embedders, token_embedders
    from radgraph.dygie.models import dygie

    bert_dir = os.path.join(out, "bert")
    model_dir = os.path.join(out, "radgraph")
    os.makedirs(bert_dir, exist_ok=True)
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(bert_dir, "vocab.txt"), "w") as f:
        f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    torch.manual_seed(0)
    BertModel(
        BertConfig(
            vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
        )
    ).save_pretrained(bert_dir)

    bert = {"model_name": "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext", "max_length": 512}
    model_params = {
        "modules": {
            "ner": {},
            "coref": {"spans_per_word": 0.3, "max_antecedents": 100, "coref_prop": 0},
            "relation": {"spans_per_word": 0.5},
            "events": {
                "trigger_spans_per_word": 0.3,
                "argument_spans_per_word": 0.8,
                "loss_weights": {"trigger": 1.0, "arguments": 0.5},
            },
        },
        "feature_size": 20,
        "max_span_width": 8,
        "target_task": "relation",
        "feedforward_params": {"num_layers": 2, "hidden_dims": 64, "dropout": 0.4},
        "loss_weights": {"ner": 1.0, "relation": 1.0, "coref": 0.0, "events": 0.0},
    }
    config = {
        "dataset_reader": {"type": "dygie", "token_indexers": {"bert": dict(bert)}, "max_span_width": 8},
        "model": {
            "type": "dygie",
            "embedder": {"token_embedders": {"bert": dict(bert)}},
            "initializer": {},
            "module_initializer": {},
            **model_params,
        },
        "vocabulary": {},
    }
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    vocab = Vocabulary()
    vocab.add_tokens_to_namespace(NER, "radgraph__ner_labels")
    vocab.add_tokens_to_namespace(RELATIONS, "radgraph__relation_labels")
    vocab.save_to_files(os.path.join(model_dir, "vocabulary"))

    embedder = text_field_embedders.BasicTextFieldEmbedder(
        {"bert": token_embedders.PretrainedTransformerMismatchedEmbedder(model_name=bert_dir, max_length=512)}
    )
    model = dygie.DyGIE(vocab=vocab, embedder=embedder, **json.loads(json.dumps(model_params)))
    with torch.no_grad():  # wide weights, so that spans clear the null label's score of 0 and get labels
        for name, p in model.named_parameters():
            if "_embedder" not in name:
                p.normal_(0, 0.5)
    torch.save(model.state_dict(), os.path.join(model_dir, "weights.th"))


if __name__ == "__main__":
    main(sys.argv[1])
