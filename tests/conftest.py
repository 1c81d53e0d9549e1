"""Shared fixtures: the embedded tiny base model."""
import pytest


@pytest.fixture(scope="session")
def tiny_path() -> str:
    from r1kit.models import resolve_model_path

    return resolve_model_path("tiny")


@pytest.fixture(scope="session")
def tiny(tiny_path):
    from r1kit.models import load_model, load_tokenizer

    return load_model(tiny_path), load_tokenizer(tiny_path)
