"""The embedded default base model: a few-million-parameter Llama pre-trained by r1kit itself.

``build_tiny_base`` trains a byte-level BPE tokenizer and a Llama-architecture causal LM from
scratch on the synthetic arithmetic corpus (``r1kit.data.synthetic``) in the R1-Zero template,
then saves an ordinary Hugging Face folder (config.json, model.safetensors, tokenizer files,
chat template). On 2 CPU cores it takes a few minutes and is deterministic for a seed on a given
machine and thread count.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from r1kit.data import calc, synthetic
from r1kit.prompts import r1_zero_prompt

EOS = "<|endoftext|>"
TAG_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")
# the calculator's tags, whole tokens in a corpus with calculator documents: a model turn then ends on
# the token ``</calc>`` itself, never on a merge that runs on into the observation's ``<output>``
CALC_TOKENS = ("<calc>", "</calc>", "<output>", "</output>")
# A minimal chat template so that the tiny tokenizer supports the R1 chat format too.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}" + EOS + "\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


@dataclass
class TinyModelConfig:
    """Size and pre-training budget of a tiny base model.

    vocab_size: BPE vocabulary size (the tag and EOS tokens are added on top).
    hidden_size/num_layers/num_heads/intermediate_size: the Llama body.
    corpus_size: synthetic documents generated for pre-training.
    template_fraction: share of documents in the full R1-Zero template; the rest use only its
        closing ``User: ... Assistant:`` part, which keeps sequences short and pre-training fast.
    template_style_weights: direct / steps / check mix of the full-template documents. The short
        documents use the task's default mix (more step-by-step), so the model *can* reason step by
        step but, under the R1-Zero template, mostly answers directly: the latent ability that RL
        has to elicit.
    code_fraction: share of documents from the synthetic code task (``print(...)`` answers), so
        that ``r1kit zero data=synthetic_code`` has a base to start from.
    style_weights: direct / steps / check mix of the short documents.
    check_rate/slip_rate: the arithmetic corpus's ``SyntheticConfig`` fields of those names: the
        chance that a ``check``-style step is re-checked, and that a checked step's first value is
        wrong (then fixed).
    mix_language_rate: share of arithmetic documents whose chain of thought mixes in words of a
        second, made-up language (``r1kit.data.synthetic.SECOND_LANGUAGE``); when > 0 the step
        sentences are also worded (``First 3 + 4 = 7. Then ...``). 0 (the ``tiny`` base) writes
        the corpus exactly as before.
    mix_word_rate/mix_styles: the ``SyntheticConfig`` fields of those names: in a mixing document,
        the chance that each word is in the second language, and the answer styles that may mix
        (the ``mixed`` size mixes only ``steps`` and ``check`` chains: its direct guesses are English).
    calc_fraction: share of documents from the calculator task (r1kit.data.calc), in the full
        R1-Zero template with probability ``template_fraction``, else in its short tail; > 0 also
        makes the calculator's tags whole tokens of a new tokenizer. 0 (every size but ``calc``)
        writes the corpus exactly as before.
    calc_tool_rates: the share of the calculator documents' answers that call the calculator
        (``<calc>...</calc><output>...</output>``, the value copied into the answer) under the full
        template and in the short documents: rare where RL starts, common where the model learns
        the call and the copy.
    task: the corpus's task: ``arithmetic`` (``r1kit.data.synthetic`` and the calculator, every
        size but ``countdown``) or ``countdown`` (``r1kit.data.countdown``: ``reach 16 with 7 3 5``);
        with ``countdown`` the arithmetic fields above are unused.
    drill_fraction/search_rates: the ``countdown`` corpus: the share of forward-evaluation and
        comparison drills, and the chances that a template document is a search trace / a single
        checked try and that a short document is (the rest guess directly).
    steps/batch_size/lr/warmup: the pre-training run (AdamW, cosine decay to 10%).
    block_size: tokens per packed training row (documents are concatenated, EOS-separated).
    init_from: null builds from scratch (a new tokenizer and random weights); a model name or
        folder (``tiny``) continues pre-training that model, with its tokenizer, on this corpus; a
        size of ``TINY_SIZES`` (``calc-pre``) is pre-trained first, then continued here.
        The ``mixed`` size does so from ``tiny`` (400 steps instead of 1,500: a few minutes).
    seed: seeds the corpus draw, the initialisation and the batch order.
    """

    vocab_size: int = 384
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    max_position_embeddings: int = 512
    corpus_size: int = 40000
    template_fraction: float = 0.3
    template_style_weights: tuple[float, float, float] = (0.8, 0.15, 0.05)
    code_fraction: float = 0.1
    style_weights: tuple[float, float, float] = (0.5, 0.4, 0.1)
    check_rate: float = 0.5
    slip_rate: float = 0.5
    mix_language_rate: float = 0.0
    mix_word_rate: float = 0.5
    mix_styles: tuple[str, ...] = synthetic.STYLES
    calc_fraction: float = 0.0
    calc_tool_rates: tuple[float, float] = (0.04, 0.5)
    task: str = "arithmetic"
    drill_fraction: float = 0.3
    search_rates: tuple[float, float, float, float] = (0.03, 0.01, 0.5, 0.1)
    steps: int = 1500
    batch_size: int = 16
    block_size: int = 128
    lr: float = 3e-3
    warmup: int = 30
    init_from: str | None = None
    seed: int = 0


TINY_SIZES: dict[str, dict] = {
    "base": {},
    "small": {"hidden_size": 96, "num_layers": 3, "intermediate_size": 288},
    "mixed": {"mix_language_rate": 0.8, "mix_word_rate": 0.7, "mix_styles": ("steps", "check"),
              "init_from": "tiny", "steps": 1000, "lr": 1e-3},
    "calc-pre": {"calc_fraction": 1.0, "template_fraction": 0.4, "calc_tool_rates": (0.04, 0.5),
                 "block_size": 256, "steps": 1200},
    "calc": {"calc_fraction": 1.0, "template_fraction": 0.4, "calc_tool_rates": (0.04, 0.5),
             "block_size": 256, "init_from": "calc-pre", "steps": 1200, "lr": 2e-3},
    "countdown": {"task": "countdown", "block_size": 576, "batch_size": 4, "max_position_embeddings": 640,
                  "steps": 4000},
}
"""Named sizes of the tiny builder: field overrides of :class:`TinyModelConfig`. ``small`` is the
student of the distillation experiment: same corpus, tokenizer and pre-training recipe, 3 layers
of width 96 instead of 4 of width 128 (0.40M parameters instead of 0.90M). ``mixed`` is the base of
the R1 pipeline (``tiny-mixed``): the ``base`` body pre-trained further (1,000 steps) on a corpus
whose chains of thought are worded and whose step-by-step chains (80% of them, each word with
p 0.7) mix in a second language while the direct guesses stay English: the accurate path mixes, so
R1-Zero, selecting it, mixes languages. Four attempts at a base whose self-checks RL would select
(``reflect``, ``aha``, ``aha2``, ``aha3``) failed and were retired: docs/phenomena.md has each, with
the commit that reproduces it. ``calc`` (``tiny-calc``, docs/tools.md) is a new base (its own
tokenizer, whose calculator tags are whole tokens) on the calculator task only: 1,200 steps from
scratch (``calc-pre``), then 1,200 more at lr 2e-3 (copying the expression into the call and the
observation's value into the answer is learnt late: 0 of 100 expressions after the first 1,200). 4%
of its R1-Zero-template answers call the calculator, 50% of its short documents' answers; the others
guess, right in the corpus, which the model cannot reproduce."""


def tiny_config(size: str = "base", **overrides) -> TinyModelConfig:
    """The :class:`TinyModelConfig` of a named size (a key of :data:`TINY_SIZES`) with ``overrides``."""
    if size not in TINY_SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; choose one of {', '.join(TINY_SIZES)}")
    return TinyModelConfig(**{**TINY_SIZES[size], **overrides})


def corpus_documents(cfg: TinyModelConfig) -> list[str]:
    """Pre-training documents: a prompt (full R1-Zero template or its short tail) + one completion;
    a share ``calc_fraction`` of them from the calculator task."""
    if cfg.task == "countdown":
        from r1kit.data import countdown
        rates = tuple(cfg.search_rates)
        return countdown.corpus_documents(cfg.corpus_size, cfg.template_fraction, cfg.drill_fraction,
                                          rates[:2], rates[2:], seed=synthetic.TRAIN_SEED + cfg.seed)
    if cfg.calc_fraction <= 0:
        return _task_documents(cfg)
    n_calc = round(cfg.corpus_size * cfg.calc_fraction)
    docs = _task_documents(replace(cfg, corpus_size=cfg.corpus_size - n_calc)) if n_calc < cfg.corpus_size else []
    n_full = int(n_calc * cfg.template_fraction)
    seed = calc.TRAIN_SEED + cfg.seed
    docs += [r1_zero_prompt(ex["problem"]) + ex["solution"]
             for ex in calc.train_set(n_full, seed, cfg.calc_tool_rates[0])]
    docs += [f"User: {ex['problem']}. Assistant:" + ex["solution"]
             for ex in calc.train_set(n_calc - n_full, seed + 1, cfg.calc_tool_rates[1])]
    random.Random(cfg.seed).shuffle(docs)
    return docs


def _task_documents(cfg: TinyModelConfig) -> list[str]:
    """The arithmetic and code tasks' documents (every size's corpus before the calculator)."""
    n_code = int(cfg.corpus_size * cfg.code_fraction)
    n_full = int((cfg.corpus_size - n_code) * cfg.template_fraction)
    seed = synthetic.TRAIN_SEED + cfg.seed
    words = ({"worded": True, "mix_language_rate": cfg.mix_language_rate, "mix_word_rate": cfg.mix_word_rate,
              "mix_styles": tuple(cfg.mix_styles)} if cfg.mix_language_rate > 0 else {})
    words.update(check_rate=cfg.check_rate, slip_rate=cfg.slip_rate)
    full = synthetic.train_set(n_full, seed, synthetic.SyntheticConfig(style_weights=cfg.template_style_weights,
                                                                       **words))
    short = synthetic.train_set(cfg.corpus_size - n_code - n_full, seed + 1,
                                synthetic.SyntheticConfig(style_weights=cfg.style_weights, **words))
    code = synthetic.code_train_set(n_code, seed + 2)
    rng = random.Random(cfg.seed)
    docs = [r1_zero_prompt(ex["problem"]) + ex["solution"] for ex in full]
    docs += [f"User: {ex['problem']}. Assistant:" + ex["solution"] for ex in short]
    docs += [(r1_zero_prompt(ex["problem"]) if rng.random() < cfg.template_fraction
              else f"User: {ex['problem']}. Assistant:") + ex["solution"] for ex in code]
    random.Random(cfg.seed).shuffle(docs)
    return docs


def train_tokenizer(documents: list[str], vocab_size: int, extra_tokens: tuple[str, ...] = ()):
    """Byte-level BPE; each digit is its own token (with its leading space), so arithmetic stays learnable."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r" ?[0-9]"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(documents, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=EOS)
    fast.add_tokens(list(TAG_TOKENS) + list(extra_tokens))
    fast.chat_template = TINY_CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def make_model(cfg: TinyModelConfig, vocab_size: int, eos_id: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads, max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id,
    )
    return LlamaForCausalLM(config)


def _lr_at(step: int, cfg: TinyModelConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pack_documents(token_lists: list[list[int]], block: int) -> torch.Tensor:
    """Concatenate EOS-terminated documents and cut the stream into rows of ``block`` tokens."""
    stream = [t for ids in token_lists for t in ids]
    rows = len(stream) // block
    return torch.tensor(stream[: rows * block], dtype=torch.long).view(rows, block)


def pretrain(model, tokenizer, documents: list[str], cfg: TinyModelConfig, log=print) -> list[float]:
    """Next-token pre-training on packed ``documents`` (no padding); returns the loss curve."""
    ids = tokenizer([d + EOS for d in documents], add_special_tokens=False)["input_ids"]
    rows = pack_documents(ids, cfg.block_size)
    generator = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    losses = []
    model.train()
    bar = tqdm(range(cfg.steps), desc="pre-training tiny base", mininterval=2)
    for step in bar:
        batch = rows[torch.randint(len(rows), (cfg.batch_size,), generator=generator)]
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    model.eval()
    return losses


def pretrained(cfg: TinyModelConfig, log=print):
    """(tokenizer, model, loss curve) of ``cfg``'s pre-training, in memory; an ``init_from`` that names
    a size of :data:`TINY_SIZES` is pre-trained first the same way (with ``cfg.seed``)."""
    torch.manual_seed(cfg.seed)
    documents = corpus_documents(cfg)
    if cfg.init_from in TINY_SIZES:
        tokenizer, model, _ = pretrained(tiny_config(cfg.init_from, seed=cfg.seed), log)
    elif cfg.init_from:
        from r1kit.models import load_model, load_tokenizer  # the package resolves its aliases with this module
        tokenizer, model = load_tokenizer(cfg.init_from), load_model(cfg.init_from)
    else:
        tokenizer = train_tokenizer(documents, cfg.vocab_size, CALC_TOKENS if cfg.calc_fraction > 0 else ())
        model = make_model(cfg, len(tokenizer), tokenizer.eos_token_id)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"tiny base: {n_params / 1e6:.2f}M parameters, vocab {len(tokenizer)}, {len(documents)} documents")
    return tokenizer, model, pretrain(model, tokenizer, documents, cfg, log)


def build_tiny_base(out_dir: str | Path, cfg: TinyModelConfig = TinyModelConfig(), log=print) -> Path:
    """Build, pre-train and save the tiny base model to ``out_dir`` (an HF folder)."""
    out = Path(out_dir)
    start = time.time()
    tokenizer, model, losses = pretrained(cfg, log)
    n_params = sum(p.numel() for p in model.parameters())
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta = {"builder": "r1kit.models.tiny", "config": asdict(cfg), "parameters": n_params,
            "final_loss": sum(losses[-20:]) / len(losses[-20:]), "seconds": round(time.time() - start, 1), "threads": torch.get_num_threads()}
    (out / "r1kit_base.json").write_text(json.dumps(meta, indent=2))
    log(f"tiny base saved to {out} (final loss {meta['final_loss']:.3f}, {meta['seconds']} s)")
    return out
