"""SFT: the loss is taken on completion tokens only, packing leaks nothing, training resumes exactly."""
import json
import math
import shutil
import sys

import pytest
import torch

from r1kit.config import ConfigError, load_config
from r1kit.data.jsonl import DataError
from r1kit.runs import is_timing_key
from r1kit.sft import SFTConfig, SFTTrainer, run_sft
from r1kit.sft.data import (IGNORE, Example, build_examples, chat_segments, collate, epoch_micro_batches,
                            masked_lm_loss, pack, tokenize_row)
from r1kit.optim import lr_factor

ROW = {"prompt": "User: Compute 3 + 4 - 2. Assistant:",
       "completion": " <think> 3 + 4 = 7. 7 - 2 = 5. </think> <answer> 5 </answer>"}


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sft_data(tmp_path, n=24):
    from r1kit.data import synthetic
    rows = [{"prompt": f"User: {ex['problem']}. Assistant:", "completion": ex["solution"]}
            for ex in synthetic.train_set(n)]
    return _write_jsonl(tmp_path / "sft.jsonl", rows)


def test_hand_built_batch_loss_is_the_mean_over_completion_tokens_only():
    # 2 rows of 6 tokens; row 0: prompt = 3 tokens, completion = 3; row 1: prompt = 2, completion = 2, pad = 2
    labels = torch.tensor([[IGNORE, IGNORE, IGNORE, 5, 6, 7],
                           [IGNORE, IGNORE, 3, 4, IGNORE, IGNORE]])
    logits = torch.randn(2, 6, 10, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss_sum, count = masked_lm_loss(logits, labels)
    # by hand: position t predicts label t + 1
    logp = logits.detach().log_softmax(-1)
    terms = [-logp[0, 2, 5], -logp[0, 3, 6], -logp[0, 4, 7], -logp[1, 1, 3], -logp[1, 2, 4]]
    assert count == 5
    assert torch.allclose(loss_sum / count, torch.stack(terms).mean(), atol=1e-6)
    # no gradient reaches the logits of positions whose next token is a prompt or pad token
    loss_sum.backward()
    grad_norm = logits.grad.norm(dim=-1)
    assert torch.all(grad_norm[0, :2] == 0) and torch.all(grad_norm[0, 5] == 0)
    assert torch.all(grad_norm[1, 0] == 0) and torch.all(grad_norm[1, 3:] == 0)
    assert torch.all(grad_norm[0, 2:5] > 0) and torch.all(grad_norm[1, 1:3] > 0)
    # changing what the masked positions would predict changes nothing
    other = logits.detach().clone()
    other[0, :2] += 5 * torch.randn(2, 10)
    other[1, 3:] -= 3.0
    assert torch.allclose(masked_lm_loss(other, labels)[0], loss_sum.detach())


def test_tokenized_row_masks_the_prompt_and_the_model_loss_matches_by_hand(tiny):
    model, tok = tiny
    ex = tokenize_row(ROW, tok)
    n_prompt = len(tok(ROW["prompt"], add_special_tokens=False)["input_ids"])
    completion = tok(ROW["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ex.labels[:n_prompt] == [IGNORE] * n_prompt
    assert ex.labels[n_prompt:] == completion == ex.input_ids[n_prompt:]
    batch = collate([ex], [[0]], tok.pad_token_id, packed=True)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    loss_sum, count = masked_lm_loss(logits, batch["labels"])
    logp = logits[0].log_softmax(-1)
    by_hand = -sum(logp[t - 1, ex.input_ids[t]] for t in range(n_prompt, len(ex))) / (len(ex) - n_prompt)
    assert count == len(completion) and torch.allclose(loss_sum / count, by_hand, atol=1e-5)


def test_packing_gives_each_example_the_logits_it_has_alone(tiny):
    model, tok = tiny
    rows = [ROW, {"prompt": "User: Compute 9 - 1. Assistant:", "completion": " <think> 9 - 1 = 8. </think> <answer> 8 </answer>"},
            {"prompt": "User: Compute 2 + 2 + 2. Assistant:", "completion": " <think> I know this one. </think> <answer> 6 </answer>"}]
    examples, _ = build_examples(rows, tok, max_length=512)
    packed = collate(examples, [[0, 1], [2]], tok.pad_token_id, packed=True)  # row 1 is padded
    assert "attention_mask" not in packed
    with torch.no_grad():
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits
        alone = [model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0] for ex in examples]
    n0, n1, n2 = (len(ex) for ex in examples)
    assert torch.allclose(logits[0, :n0], alone[0], atol=1e-4)
    assert torch.allclose(logits[0, n0:n0 + n1], alone[1], atol=1e-4)  # nothing leaks from example 0
    assert torch.allclose(logits[1, :n2], alone[2], atol=1e-4)
    # the packed loss is the token-mean over the three examples' completions
    loss_sum, count = masked_lm_loss(logits, packed["labels"])
    per_example = [masked_lm_loss(a[None], torch.tensor([ex.labels])) for a, ex in zip(alone, examples)]
    assert count == sum(c for _, c in per_example)
    assert torch.allclose(loss_sum, sum(s for s, _ in per_example), atol=1e-3)


def test_chat_rows_learn_only_the_assistant_turns(tiny):
    _, tok = tiny
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Compute 1 + 1"},
                {"role": "assistant", "content": "<think> 1 + 1 = 2. </think> 2"},
                {"role": "user", "content": "And 2 + 2?"}, {"role": "assistant", "content": "4"}]
    segments = chat_segments(messages, tok)
    assert "".join(text for text, _ in segments) == tok.apply_chat_template(messages, tokenize=False)
    targets = [text for text, is_target in segments if is_target]
    assert targets == [" <think> 1 + 1 = 2. </think> 2<|endoftext|>\n", " 4<|endoftext|>\n"]
    ex = tokenize_row({"messages": messages}, tok)
    learned = tok.decode([t for t, label in zip(ex.input_ids, ex.labels) if label != IGNORE])
    assert learned == "".join(targets)


def test_packing_and_bucketing_plans_cover_every_example_once_per_epoch():
    lengths = [5, 9, 3, 7, 7, 2, 8, 4, 6, 1]
    assert pack([0, 1, 2, 3], lengths, 12) == [[0], [1, 2], [3]]
    for batching in ("pack", "bucket"):
        plan = epoch_micro_batches(lengths, epoch=1, seed=0, batching=batching, batch_size=3, max_length=12)
        seen = sorted(i for micro in plan for row in micro for i in row)
        assert seen == list(range(10))
        assert all(sum(lengths[i] for i in row) <= 12 for micro in plan for row in micro)
        assert plan == epoch_micro_batches(lengths, 1, 0, batching, 3, 12)
        assert plan != epoch_micro_batches(lengths, 2, 0, batching, 3, 12)
    bucket = epoch_micro_batches(lengths, 0, 0, "bucket", 3, 12)
    widths = [[lengths[row[0]] for row in micro] for micro in bucket]
    assert sorted(w for m in widths for w in m) == sorted(lengths)
    assert max(max(m) - min(m) for m in widths) <= 3  # similar lengths share a micro-batch


def test_lr_schedules():
    assert [lr_factor(s, 100, 4, "cosine", 0.1) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(99, 100, 4, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(99, 100, 4, "linear", 0.0) == pytest.approx(0.0)
    assert lr_factor(4 + 95 // 2, 100, 4, "linear", 0.0) == pytest.approx(1 - 47 / 95)
    assert lr_factor(50, 100, 4, "constant", 0.1) == 1.0
    mid = lr_factor(4 + 95 // 2, 100, 4, "cosine", 0.0)
    assert mid == pytest.approx(0.5 * (1 + math.cos(math.pi * 47 / 95)))


def _strip(rows):
    return [{k: v for k, v in r.items() if not is_timing_key(k)} for r in rows]


def test_sft_learns_and_resumes_exactly_after_a_crash(tmp_path):
    data = _sft_data(tmp_path)
    args = [f"data={data}", "max_steps=6", "batch_size=4", "checkpoint_every=2", "keep_checkpoints=3",
            "warmup_steps=2", "lr=3e-3", "threads=1"]
    summary = run_sft(load_config(SFTConfig, None, args + [f"out={tmp_path / 'a'}"]), progress=False)
    rows_a = _rows(tmp_path / "a" / "metrics.jsonl")
    assert [r["step"] for r in rows_a] == [1, 2, 3, 4, 5, 6] and summary["steps"] == 6
    assert rows_a[-1]["loss"] < rows_a[0]["loss"]
    assert (tmp_path / "a" / "final" / "model.safetensors").exists()
    assert summary["examples"] == 24 and summary["truncated"] == 0

    # run b "crashes" after checkpoint-2: later checkpoints, the final model and the summary are gone,
    # metrics.jsonl still holds steps 3..6 and a torn line
    run_b = tmp_path / "b"
    run_sft(load_config(SFTConfig, None, args + [f"out={run_b}"]), progress=False)
    for name in ("checkpoint-4", "checkpoint-6", "final", "summary.json"):
        shutil.rmtree(run_b / name) if (run_b / name).is_dir() else (run_b / name).unlink()
    with (run_b / "metrics.jsonl").open("a") as f:
        f.write('{"step": 7, "loss": ')
    with pytest.raises(ConfigError, match="already holds"):
        SFTTrainer(load_config(SFTConfig, None, args + [f"out={run_b}"]), progress=False)
    trainer = SFTTrainer(load_config(SFTConfig, None, args + [f"out={run_b}"]), resume=True, progress=False)
    assert trainer.step == 2
    trainer.train()
    assert _strip(_rows(run_b / "metrics.jsonl")) == _strip(rows_a)
    from safetensors.torch import load_file
    a, b = load_file(tmp_path / "a" / "final" / "model.safetensors"), load_file(run_b / "final" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # resuming with other data is refused
    _sft_data(tmp_path, n=20)
    with pytest.raises(ConfigError, match="data or the step plan changed"):
        SFTTrainer(load_config(SFTConfig, None, args + [f"out={run_b}"]), resume=True, progress=False)


def test_bucketing_chat_rows_from_a_datasets_folder_and_truncation(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"messages": [{"role": "user", "content": f"Compute {i} + 1"},
                          {"role": "assistant", "content": f"<think> {i} + 1 = {i + 1}. </think> {i + 1}"}]}
            for i in range(1, 9)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    cfg = load_config(SFTConfig, None, [f"data={tmp_path / 'ds'}", "batching=bucket", "epochs=1", "batch_size=4",
                                        f"out={tmp_path / 'run'}", "max_length=20", "threads=1"])
    summary = run_sft(cfg, progress=False)
    assert summary["examples"] == 8 and summary["truncated"] == 8 and summary["steps"] == 2
    metrics = _rows(tmp_path / "run" / "metrics.jsonl")
    assert all(m["target_tokens"] > 0 and m["tokens"] <= 4 * 20 for m in metrics)


def test_bad_rows_name_file_and_line(tmp_path, tiny, monkeypatch):
    _, tok = tiny
    bad = _write_jsonl(tmp_path / "bad.jsonl", [ROW, {"prompt": "p", "answer": "x"}])
    cfg = load_config(SFTConfig, None, [f"data={bad}", f"out={tmp_path / 'o'}"])
    with pytest.raises(DataError, match=r"bad\.jsonl:2: missing field 'completion'"):
        SFTTrainer(cfg, progress=False)
    with pytest.raises(DataError, match="no assistant turn"):
        tokenize_row({"messages": [{"role": "user", "content": "hi"}]}, tok, where="x.jsonl:1")
    for spans in ([[3, 2]], [[0, 4], [2, 5]], [[0, 99]], [["a", 1]], [3]):
        with pytest.raises(DataError, match=r"x\.jsonl:4: field 'masked': .* is not a \[start, end\] span"):
            tokenize_row({**ROW, "masked": spans}, tok, where="x.jsonl:4")
    # a masked span takes no loss: its tokens (tokenized on their own) are IGNORE, the rest learn
    text = ROW["completion"]
    cut = tokenize_row({**ROW, "masked": [[0, len(text) // 2]]}, tok)
    first = tok(text[: len(text) // 2], add_special_tokens=False)["input_ids"]
    n_prompt = len(tok(ROW["prompt"], add_special_tokens=False)["input_ids"])
    assert cut.labels[n_prompt: n_prompt + len(first)] == [IGNORE] * len(first)
    assert all(label != IGNORE for label in cut.labels[n_prompt + len(first):])
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if the optional package were not installed
    with pytest.raises(DataError, match="needs the optional 'datasets' package"):
        SFTTrainer(load_config(SFTConfig, None, ["data=hf:gsm8k:train", f"out={tmp_path / 'o2'}"]), progress=False)
    example = Example([1, 2, 3], [IGNORE, IGNORE, 3])
    assert example.n_targets == 1 and len(example) == 3
