"""Shared fixtures: the embedded tiny base model, a random tiny reward model."""
import pytest


@pytest.fixture(scope="session")
def tiny_path() -> str:
    from r1kit.models import resolve_model_path

    return resolve_model_path("tiny")


@pytest.fixture(scope="session")
def tiny(tiny_path):
    from r1kit.models import load_model, load_tokenizer

    return load_model(tiny_path), load_tokenizer(tiny_path)


@pytest.fixture(scope="session")
def random_rm(tmp_path_factory, tiny_path):
    """A randomly initialised tiny sequence-classification model saved as an HF folder."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from r1kit.models import load_tokenizer

    torch.manual_seed(0)
    tok = load_tokenizer(tiny_path)
    model = LlamaForSequenceClassification(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, num_labels=1, pad_token_id=tok.pad_token_id))
    path = tmp_path_factory.mktemp("rm")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
