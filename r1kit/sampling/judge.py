"""A model judge for answers that rules cannot grade (DeepSeek-R1 stage 3 used DeepSeek-V3 so).

The judge is any HF causal LM given by path. For each sample it reads one prompt (the question,
the reference answer and the candidate's final answer, then "Is the candidate answer equivalent
to the reference answer? Answer yes or no.") rendered with the judge's chat template when it has
one, and looks at its next-token distribution: ``p_yes`` is the probability mass of the first
token of ``yes``/``Yes`` (with and without a leading space) divided by that mass plus the mass of
the first tokens of ``no``/``No``. A candidate is accepted when ``p_yes >= threshold``. One
forward pass per sample, no generation, so the verdict is deterministic.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch

from r1kit.config import ConfigError
from r1kit.data.cold_start import split_r1_response
from r1kit.models import load_model, load_tokenizer
from r1kit.rewards.math import extract_answer

JUDGE_PROMPT = (
    "Compare a candidate answer with the reference answer to a question.\n"
    "Question: {problem}\n"
    "Reference answer: {reference}\n"
    "Candidate answer: {candidate}\n"
    "Is the candidate answer equivalent to the reference answer? Answer yes or no."
)
MAX_CANDIDATE_CHARS = 2000
YES, NO = ("yes", "Yes", " yes", " Yes"), ("no", "No", " no", " No")


def final_answer_text(completion: str) -> str:
    """What the judge compares: the ``<answer>``/``\\boxed`` answer if there is one, else the
    summary after ``</think>``, else the whole completion (cut to 2,000 characters)."""
    answer = extract_answer(completion)
    if answer is None:
        parts = split_r1_response(completion)
        answer = parts[1] if parts else completion
    return answer.strip()[:MAX_CANDIDATE_CHARS]


def first_token_ids(tokenizer, words) -> set[int]:
    """The first token id of each of ``words`` (tokenized without special tokens)."""
    ids = set()
    for word in words:
        tokens = tokenizer(word, add_special_tokens=False)["input_ids"]
        if tokens:
            ids.add(tokens[0])
    return ids


class Judge:
    """An HF causal LM that says whether a candidate answer matches a reference (``p_yes``)."""

    def __init__(self, model: str, dtype: str = "float32", threshold: float = 0.5, batch_size: int = 8,
                 device: str | torch.device = "cpu"):
        self.model, self.tokenizer = load_model(model, dtype, device), load_tokenizer(model)
        self.threshold, self.batch_size = threshold, batch_size
        yes, no = first_token_ids(self.tokenizer, YES), first_token_ids(self.tokenizer, NO)
        self.yes_ids, self.no_ids = sorted(yes - no), sorted(no - yes)
        if not self.yes_ids or not self.no_ids:
            raise ConfigError(f"judge: {model} tokenizes 'yes' and 'no' alike; it cannot answer yes/no")

    def prompt(self, problem: str, reference: str, completion: str) -> str:
        """The judge's prompt for one sample (chat template when the judge has one)."""
        text = JUDGE_PROMPT.format(problem=problem, reference=reference, candidate=final_answer_text(completion))
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                      add_generation_prompt=True)
        return text + "\nAnswer:"

    @torch.no_grad()
    def p_yes(self, items: list[tuple[str, str, str]]) -> list[float]:
        """``P(yes) / (P(yes) + P(no))`` for each ``(problem, reference, completion)``."""
        out: list[float] = []
        for lo in range(0, len(items), self.batch_size):
            prompts = [self.prompt(*item) for item in items[lo:lo + self.batch_size]]
            enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self.model.device) for k, v in enc.items()}
            positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # left padding
            logits = self.model(**enc, position_ids=positions, use_cache=False).logits[:, -1].float()
            probs = logits.softmax(-1)
            yes = probs[:, self.yes_ids].sum(-1)
            no = probs[:, self.no_ids].sum(-1)
            out += (yes / (yes + no).clamp(min=1e-30)).tolist()
        return out

    def accepts(self, items: list[tuple[str, str, str]]) -> list[bool]:
        """Whether each candidate is judged equivalent to its reference."""
        return [p >= self.threshold for p in self.p_yes(items)]


class EndpointJudge:
    """The same judge served by an OpenAI-compatible endpoint (``judge_endpoint``): the prompt of
    :class:`Judge` (as one user message with ``api: chat``, else followed by ``Answer:``), one
    token at temperature 0 with its top 20 log-probs; ``p_yes`` is the probability of the listed
    tokens that begin ``yes`` over that of those beginning ``yes`` or ``no`` (case and spaces
    ignored; the first token of the word, as for :class:`Judge`; 0 when the endpoint lists none).
    Requests go ``concurrency`` at a time, retried like the engine's.
    """

    TOP = 20

    def __init__(self, endpoint, threshold: float = 0.5):
        from r1kit.rollout.endpoint import OpenAIEngine  # the openai client: only for an endpoint judge

        self.engine, self.threshold = OpenAIEngine(endpoint, tokenizer=None), threshold

    def _p_yes(self, item: tuple[str, str, str]) -> float:
        problem, reference, completion = item
        text = JUDGE_PROMPT.format(problem=problem, reference=reference, candidate=final_answer_text(completion))
        engine, client = self.engine, self.engine.client
        args = {"model": engine.model, "max_tokens": 1, "temperature": 0.0}
        if engine.endpoint.api == "chat":
            answer = engine._call(client.chat.completions.create, messages=[{"role": "user", "content": text}],
                                  logprobs=True, top_logprobs=self.TOP, **args)
            content = answer.choices[0].logprobs.content or []
            top = {t.token: t.logprob for t in content[0].top_logprobs} if content else {}
        else:
            answer = engine._call(client.completions.create, prompt=text + "\nAnswer:", logprobs=self.TOP, **args)
            listed = answer.choices[0].logprobs.top_logprobs or []
            top = listed[0] if listed else {}
        mass = {"yes": 0.0, "no": 0.0}
        for token, logprob in top.items():
            word = token.strip().lower()
            for answer in mass:  # a token that starts the word counts, as the first token of "yes" does for Judge
                if word and answer.startswith(word):
                    mass[answer] += math.exp(logprob)
        total = mass["yes"] + mass["no"]
        return mass["yes"] / total if total > 0 else 0.0

    def p_yes(self, items: list[tuple[str, str, str]]) -> list[float]:
        with ThreadPoolExecutor(self.engine.endpoint.concurrency) as pool:
            return list(pool.map(self._p_yes, items))

    def accepts(self, items: list[tuple[str, str, str]]) -> list[bool]:
        return [p >= self.threshold for p in self.p_yes(items)]
