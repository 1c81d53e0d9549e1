"""Rollout: batched sampling from a Hugging Face causal LM with the log-probs of what was sampled.

One interface, ``sample``, serves the trainer, ``eval``, rejection sampling and distillation.
Each prompt is prefilled once (logits of its last position only) and its KV cache repeated for its
``n`` samples; the cache is allocated once and written in place (``rollout.cache``).

Continuous batching: with ``batch_size`` rows at most in flight, finished rows leave the batch and
pending prompts are prefilled and spliced into the cache in their place (right-aligned, masked on
the left), so the batch stays full until the prompts run out. Every row draws from its own
uniforms, generated from a per-row seed (``row_seeds``), so what a row samples does not depend on
what shares its batch. Per-step bookkeeping is tensor work with one host sync, Python touching
only the rows that may end.

Multi-turn episodes (``environment``, an :class:`r1kit.environments.Environment`): a row's turn
ends when it writes the environment's ``call_end`` tag; the environment's observation is
tokenised once and its ids are *forced* into the row's next positions (fed through the same batched
decode steps as every other row's tokens, so they extend the row's KV cache without recomputing its
context and the batch keeps running), then the row samples again. Token-in/token-out: a rollout's
``token_ids`` are exactly the ids fed to the model; ``policy_mask`` marks the sampled ones
(observation tokens: 0, with log-prob 0). The episode's tokens, the model's and the observations',
share the ``max_new_tokens`` budget; ``environment.max_turns`` caps the model turns. A call runs on a
thread pool while the batch decodes on: the row idles in masked cache columns, its position kept,
and takes its observation ``tools.overlap_steps`` steps after feeding its last token, a step fixed
by the call's step and never by its duration, so episodes do not depend on timing.

Log-probs are those of the policy the trainer optimises: ``log softmax(logits / temperature)``
over the full vocabulary (top-p/top-k only restrict what is drawn, as in TRL and veRL).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from r1kit import threads
from r1kit.models import forward_kwargs
from r1kit.rollout.cache import preallocated_cache, splice, supports_preallocated_cache
from r1kit.rollout.draw import draw
from r1kit.rollout.lean import lean_decoder


@dataclass
class SamplingParams:
    """Decoding options.

    n: samples per prompt. temperature: 0 means greedy. top_p/top_k: nucleus / top-k filtering
    (1.0 / 0 disable them). max_new_tokens: hard cap on completion length. stop: strings that end a
    completion (kept in the text, like ``</answer>``). seed: the base of the per-row seeds
    (``row_seeds``); None draws one at random. ignore_eos: EOS does not end a completion (every
    row runs to max_new_tokens; for fixed-length benchmarks).
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    ignore_eos: bool = False


@dataclass
class Rollout:
    """One completion: its prompt index, token ids, per-token log-probs, text and finish reason.

    With an environment (multi-turn): ``policy_mask`` (1 on the tokens the policy sampled, 0 on
    observation tokens, whose log-prob is 0), the tool calls it made, how many of them failed, and
    its model turns; single-turn rollouts have ``policy_mask`` None (every token is the policy's).
    """

    prompt_index: int
    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "eos", "stop", "length" or "turns" (a call in the episode's last turn)
    policy_mask: list[int] | None = None
    tool_calls: int = 0
    tool_errors: int = 0
    turns: int = 1

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    @property
    def policy_tokens(self) -> int:
        """Tokens the policy sampled (observation tokens left out)."""
        return len(self.token_ids) if self.policy_mask is None else sum(self.policy_mask)

    def segments(self, tokenizer) -> list[tuple[str, bool]]:
        """The text cut into ``(text, is_policy)`` runs, policy and observation tokens, each run
        decoded on its own (a final EOS left out, as in :attr:`text`)."""
        ids = self.token_ids[:-1] if self.finish_reason == "eos" else self.token_ids
        mask = self.policy_mask or [1] * len(self.token_ids)
        runs: list[tuple[list[int], bool]] = []
        for token, policy in zip(ids, mask):
            if runs and runs[-1][1] == bool(policy):
                runs[-1][0].append(token)
            else:
                runs.append(([token], bool(policy)))
        return [(tokenizer.decode(run), policy) for run, policy in runs]


def observation_ids(tokenizer, text: str, room: int) -> list[int]:
    """An observation's ids (tokenised once, tags as written), cut to the ``room`` left in the budget."""
    return tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"][:room]


def _tokenize_prompts(tokenizer, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(map(len, ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long, device="cpu")  # moved to the model's
    mask = torch.zeros((len(ids), width), dtype=torch.long, device="cpu")                 # device by ``sample``
    for row, seq in enumerate(ids):  # left padding: every prompt ends at the same column
        input_ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long, device="cpu")
        mask[row, width - len(seq):] = 1
    return input_ids, mask


@lru_cache(maxsize=None)
def _forward(model, cache, **inputs):
    """One forward with a KV cache; returns the last position's logits (fp32) and the cache."""
    cache_arg, keeps = forward_kwargs(type(model))
    extra = {"logits_to_keep": 1} if keeps else {}
    out = model(**inputs, use_cache=True, **{cache_arg: cache}, **extra)
    new_cache = getattr(out, "cache", None)
    return out.logits[:, -1].float(), new_cache if new_cache is not None else out.past_key_values


class ModelDecode:
    """A decode step through ``model(...)``: the interface ``LeanDecoder`` shares."""

    def __init__(self, model):
        self.model = model

    def __call__(self, input_ids, position_ids, cache, attention_mask):
        return _forward(self.model, cache, input_ids=input_ids, attention_mask=attention_mask,
                        position_ids=position_ids)


@lru_cache(maxsize=16)
def _stop_triggers(tokenizer, stop: tuple[str, ...], vocab_size: int) -> torch.Tensor:
    """Token ids after which a stop string may have completed: their text holds a stop string's last
    character (or a partial multi-byte character, or whitespace when a stop string ends in it)."""
    lasts = {s[-1] for s in stop}
    spacey = any(c.isspace() for c in lasts)
    n = min(vocab_size, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(n)])
    trigger = torch.zeros(vocab_size, dtype=torch.bool, device="cpu")  # cached on the host
    for i, text in enumerate(texts):
        trigger[i] = ("\ufffd" in text or any(c in text for c in lasts)
                      or (spacey and (not text or any(c.isspace() for c in text))))
    return trigger


class _StopMatcher:
    """Finds stop strings without decoding every row every step: only rows that sample a trigger
    token (``_stop_triggers``) have the tail of their completion decoded."""

    def __init__(self, tokenizer, stop: list[str], vocab_size: int, device):
        self.tokenizer, self.stop = tokenizer, stop
        self.tail = max((len(s.encode()) for s in stop), default=0) + 1  # every token is >= 1 byte
        self.trigger = (_stop_triggers(tokenizer, tuple(stop), vocab_size).to(device) if stop
                        else torch.zeros(vocab_size, dtype=torch.bool, device=device))

    def tail_text(self, token_ids: list[int]) -> str:
        """The text of the last tokens of ``token_ids``: enough to hold any stop string."""
        return self.tokenizer.decode(token_ids[-self.tail:])

    def hits(self, token_ids: list[int]) -> bool:
        text = self.tail_text(token_ids)
        return any(s in text for s in self.stop)




def mix_seeds(a: int, b: int) -> int:
    """A 63-bit seed from two integers (an LCG step; distinct pairs give unrelated streams)."""
    return (a * 6364136223846793005 + b * 1442695040888963407 + 1) % (1 << 63)


def row_seeds(params: SamplingParams, n_prompts: int, prompt_seeds: list[int] | None = None) -> list[int]:
    """The seed of every row (sample j of prompt i): from ``prompt_seeds[i]`` when given, else from
    ``params.seed`` and i."""
    if prompt_seeds is None:
        base = params.seed if params.seed is not None else torch.seed() % (1 << 63)
        prompt_seeds = [mix_seeds(base, i) for i in range(n_prompts)]
    elif len(prompt_seeds) != n_prompts:
        raise ValueError(f"{len(prompt_seeds)} prompt seeds for {n_prompts} prompts")
    return [mix_seeds(s, j) for s in prompt_seeds for j in range(params.n)]


class _Engine:
    """The decode loop's state: one slot per batch row, a shared KV cache whose columns are aligned
    on the right (each row masks the columns before its prompt)."""

    def __init__(self, model, tokenizer, prompts, params: SamplingParams, seeds: list[int], progress=None,
                 environment=None, examples: list[dict] | None = None):
        self.model, self.tokenizer, self.prompts, self.params, self.seeds = model, tokenizer, prompts, params, seeds
        self.device = next(model.parameters()).device
        self.splices = supports_preallocated_cache(model)
        self.decode = (self.splices and lean_decoder(model)) or ModelDecode(model)
        total, max_new = len(prompts) * params.n, params.max_new_tokens
        # one scratch column at max_new: finished rows left in the batch keep writing there
        self.tokens = torch.empty(total, max_new + 1, dtype=torch.long, device=self.device)
        self.logps = torch.empty(total, max_new + 1, device=self.device)
        self.lengths, self.finish = [max_new] * total, ["length"] * total
        self.stops = None
        self.progress = progress
        self.env, self.examples = environment, examples
        self.idle_columns = 0  # cache columns a row may spend idle, waiting for its tool calls
        if environment is not None:  # the episodes' state: forced (observation) ids, -1 where the policy samples
            self.forced = torch.full((total, max_new + 1), -1, dtype=torch.long, device=self.device)
            self.turn_start, self.turns = [0] * total, [1] * total
            self.calls, self.errors = [0] * total, [0] * total
            self.overlap = environment.tools.overlap_steps
            self.idle_columns = (environment.max_turns - 1) * self.overlap
            self.calling: dict[int, tuple] = {}  # row -> (the call's future, the step its observation is due)
            self.tool_pool = ThreadPoolExecutor(4, thread_name_prefix="r1kit-tool")
            self.steps_done = 0
        self.cache = None  # no rows in flight
        self.live_count = self.dead_count = 0

    def admit(self, prompt_indices: list[int]):
        """Prefill prompts, draw their first tokens and add their rows to the batch."""
        p, device, n = self.params, self.device, self.params.n
        input_ids, pmask = _tokenize_prompts(self.tokenizer, [self.prompts[i] for i in prompt_indices])
        input_ids, pmask = input_ids.to(device), pmask.to(device)
        width = input_ids.size(1)
        positions = (pmask.cumsum(-1) - 1).clamp(min=0)
        fresh = self.cache is None
        capacity = width + (p.max_new_tokens + self.idle_columns if fresh else 0)
        cache = preallocated_cache(self.model, capacity) if self.splices else None
        logits, cache = _forward(self.model, cache, input_ids=input_ids, attention_mask=pmask, position_ids=positions)
        cache.batch_repeat_interleave(n)
        if self.stops is None:
            self.stops = _StopMatcher(self.tokenizer, p.stop + ([self.env.call_end] if self.env else []),
                                      logits.size(-1), device)
        rows = torch.tensor([i * n + j for i in prompt_indices for j in range(n)], device=device)
        u = torch.stack([torch.rand(p.max_new_tokens + 1, dtype=torch.float64, device=device,
                                    generator=torch.Generator(device).manual_seed(self.seeds[r]))
                         for r in rows.tolist()])
        new = {"rows": rows, "u": u, "gen": torch.zeros_like(rows), "pos": positions[:, -1].repeat_interleave(n) + 1,
               "live": torch.ones_like(rows, dtype=torch.bool)}
        if self.env is not None:  # idle: waiting for a call's observation; fed: its last token is in the cache
            new["idle"], new["fed"] = torch.zeros_like(new["live"]), torch.zeros_like(new["live"])
        if fresh:
            self.cache = cache
            self.mask = torch.ones(len(rows), capacity, dtype=torch.long, device=device)
            self.mask[:, :width] = pmask.repeat_interleave(n, 0)
            self.slots = new
            self.chosen = self._draw(logits.repeat_interleave(n, 0), slice(None))
        else:
            kept = self._splice(cache, pmask.repeat_interleave(n, 0), new)
            self.chosen = torch.cat([kept, self._draw(logits.repeat_interleave(n, 0), slice(-len(rows), None))])
        self.live_count += len(rows)

    def _splice(self, cache, pmask, new: dict) -> torch.Tensor:
        """Drop the finished rows and append ``new`` ones (prefilled into ``cache``); returns the
        kept rows' last tokens."""
        keep = self.slots["live"].nonzero().squeeze(-1)
        old_len, width = self.cache.layers[0].length, pmask.size(1)
        length = max(old_len, width)
        mask = torch.cat([torch.nn.functional.pad(self.mask[keep, :old_len], (length - old_len, 0)),
                          torch.nn.functional.pad(pmask, (length - width, 0))])
        trim = int(mask.any(0).int().argmax())  # leading columns that no row attends to
        length -= trim
        capacity = length + self.params.max_new_tokens + self.idle_columns
        self.cache = splice([(self.cache, keep, length - old_len),
                             (cache, torch.arange(pmask.size(0), device=self.device), length - width)],
                            length, capacity)
        self.mask = torch.ones(mask.size(0), capacity, dtype=torch.long, device=self.device)
        self.mask[:, :length] = mask[:, trim:]
        self.slots = {k: torch.cat([v[keep], new[k]]) for k, v in self.slots.items()}
        self.dead_count = 0
        return self.chosen[keep]

    def compact(self) -> None:
        keep = self.slots["live"].nonzero().squeeze(-1)
        self.cache.batch_select_indices(keep)
        self.mask, self.chosen = self.mask[keep], self.chosen[keep]
        self.slots = {k: v[keep] for k, v in self.slots.items()}
        self.dead_count = 0

    def step(self) -> None:
        """One decode step for every slot."""
        s = self.slots
        if self.env is not None:
            return self._episode_step()
        logits, self.cache = self.decode(self.chosen[:, None], s["pos"][:, None], self.cache,
                                         self.mask[:, : self.cache.get_seq_length() + 1])
        s["pos"] += 1
        self.chosen = self._draw(logits, slice(None))

    def _episode_step(self) -> None:
        """One decode step of episodes: a row waiting for its call first feeds its last token, then
        idles (its column masked, its position kept) until the call's observation is due."""
        s, column = self.slots, self.cache.get_seq_length()
        idle, dummy = s["idle"].clone(), s["idle"] & s["fed"]                         # [b], [b]
        self.mask[dummy.nonzero().squeeze(-1), column] = 0
        logits, self.cache = self.decode(self.chosen[:, None], s["pos"][:, None], self.cache,
                                         self.mask[:, : column + 1])
        s["pos"] += (~dummy).long()
        s["fed"] |= idle
        self.chosen = torch.where(idle, self.chosen, self._draw(logits, slice(None)))
        self.steps_done += 1
        if self.calling:
            self._observe()

    def _draw(self, logits, which) -> torch.Tensor:
        """Draw and record the next token of the slots ``which``; marks the rows that end."""
        p, s = self.params, {k: v[which] for k, v in self.slots.items()}
        column = s["gen"].clamp(max=p.max_new_tokens)
        chosen, logp = draw(logits, s["u"].gather(1, column[:, None]).squeeze(-1), p.temperature, p.top_p, p.top_k)
        ends = None
        if self.env is not None:  # observation tokens replace the draw, with log-prob 0, and end nothing
            forced = self.forced[s["rows"], column]                                   # [b], -1: sampled
            ends = forced < 0
            chosen, logp = torch.where(ends, chosen, forced), torch.where(ends, logp, torch.zeros_like(logp))
        self.tokens[s["rows"], column] = chosen  # (an idle row's column is written again when it takes its observation)
        self.logps[s["rows"], column] = logp
        s["gen"] += 1 if ends is None else (~s["idle"]).long()
        is_eos = (chosen == self.tokenizer.eos_token_id) & (not p.ignore_eos)
        hit = is_eos | self.stops.trigger[chosen]
        maybe = s["live"] & ((hit if ends is None else hit & ends & ~s["idle"]) | (s["gen"] >= p.max_new_tokens))
        ending = maybe.nonzero().squeeze(-1)  # the step's one host sync
        if len(ending):
            self._end(s, ending, is_eos[ending].tolist())
        return chosen

    def _end(self, s: dict, ending: torch.Tensor, eos: list[bool]) -> None:
        ended = []
        for b, orig, gen, is_eos in zip(ending.tolist(), s["rows"][ending].tolist(), s["gen"][ending].tolist(), eos):
            if is_eos:
                self.finish[orig] = "eos"
            elif self.env is not None and self.forced[orig, gen - 1] >= 0:  # an observation token: only the budget ends it
                pass
            elif self.env is not None:  # stop strings and calls count in the current turn only
                text = self.stops.tail_text(self.tokens[orig, self.turn_start[orig]:gen].tolist())
                if any(stop in text for stop in self.params.stop):
                    self.finish[orig] = "stop"
                elif self.env.call_end in text and gen < self.params.max_new_tokens:
                    if self._call(orig, gen):
                        continue
                    self.finish[orig] = "turns"
                elif gen < self.params.max_new_tokens:
                    continue
            elif self.params.stop and self.stops.hits(self.tokens[orig, :gen].tolist()):
                self.finish[orig] = "stop"
            elif gen < self.params.max_new_tokens:
                continue
            self.lengths[orig] = gen
            ended.append(b)
        self._retire(s, ended)

    def _retire(self, s: dict, ended: list[int]) -> None:
        """The slots ``ended`` of ``s`` (the slots' tensors, or views of them) are finished."""
        if ended:
            s["live"][ended] = False  # s holds views of the slots' tensors
            self.live_count -= len(ended)
            self.dead_count += len(ended)
            if self.progress:
                self.progress(len(ended))

    def _call(self, orig: int, gen: int) -> bool:
        """Row ``orig`` closed a tool call at ``gen`` tokens: start the call in the background and
        make the row idle until its observation is due (:meth:`_observe`). False: the episode ends
        here (its last turn)."""
        if self.turns[orig] >= self.env.max_turns:
            return False
        turn = self.tokenizer.decode(self.tokens[orig, self.turn_start[orig]:gen].tolist())
        future = self.tool_pool.submit(self.env.step, turn, self.examples[orig // self.params.n])
        # due once the row has fed its last token (the next step) and idled ``overlap`` steps more
        self.calling[orig] = (future, gen, self.steps_done + 2 + self.overlap)
        self.slots["idle"][self._slot(orig)] = True
        return True

    def _slot(self, orig: int) -> int:
        """The batch slot that holds row ``orig``."""
        return int((self.slots["rows"] == orig).nonzero())

    def _observe(self) -> None:
        """Rows whose observation is due take it (waiting for a call still running): its ids, cut to
        the budget, are forced into the row's next positions, the first in place of this step's draw.
        The due step is fixed by the step of the call, never by the call's duration, so an episode
        does not depend on timing. An environment that ends the episode (None) ends the row."""
        s, max_new = self.slots, self.params.max_new_tokens
        for orig, (future, gen, due) in sorted(self.calling.items()):
            if self.steps_done < due:
                continue
            del self.calling[orig]
            slot = self._slot(orig)
            s["idle"][slot] = s["fed"][slot] = False
            observation = future.result()
            if observation is None:
                self.lengths[orig], self.finish[orig] = gen, "turns"
                self._retire(s, [slot])
                continue
            self.calls[orig] += 1
            self.errors[orig] += int(observation.error)
            ids = observation_ids(self.tokenizer, observation.text, max_new - gen)
            self.forced[orig, gen: gen + len(ids)] = torch.tensor(ids, dtype=torch.long, device="cpu")
            self.turn_start[orig], self.turns[orig] = gen + len(ids), self.turns[orig] + 1
            self.tokens[orig, gen], self.logps[orig, gen], self.chosen[slot] = ids[0], 0.0, ids[0]
            s["gen"][slot] += 1
            if gen + 1 >= max_new:  # the budget ends the episode on its observation
                self.lengths[orig] = gen + 1
                self._retire(s, [slot])

    def rollouts(self) -> list[Rollout]:
        if self.env is not None:
            self.tool_pool.shutdown()
        out, n = [], self.params.n
        forced = self.forced.tolist() if self.env is not None else None
        for i, (ids, lps) in enumerate(zip(self.tokens.tolist(), self.logps.tolist())):
            ids, lps = ids[: self.lengths[i]], lps[: self.lengths[i]]
            text_ids = ids[:-1] if self.finish[i] == "eos" else ids
            rollout = Rollout(i // n, ids, lps, self.tokenizer.decode(text_ids), self.finish[i])
            if forced is not None:
                rollout.policy_mask = [int(f < 0) for f in forced[i][: self.lengths[i]]]
                rollout.tool_calls, rollout.tool_errors, rollout.turns = self.calls[i], self.errors[i], self.turns[i]
            out.append(rollout)
        return out


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], params: SamplingParams, compact_fraction: float = 0.125,
           batch_size: int = 0, prompt_seeds: list[int] | None = None, progress=None, environment=None,
           examples: list[dict] | None = None) -> list[Rollout]:
    """Sample ``params.n`` completions for every prompt; returns them grouped prompt by prompt.

    batch_size: rows in flight at most (0: all prompts at once); finished rows are replaced by
    pending prompts (whole prompts: ``n`` rows each) once ``compact_fraction`` of the batch is
    free. Without pending prompts, finished rows stay in the batch (outputs ignored) until they are
    ``compact_fraction`` of it; then the batch and its cache are compacted to the live rows.
    prompt_seeds: one seed per prompt (``row_seeds``). progress: called with the number of rows
    that just finished. environment: multi-turn episodes with this
    :class:`r1kit.environments.Environment` (None: single-turn); ``examples``: the problem of each
    prompt, handed to the environment with every call.
    """
    if environment is not None and (examples is None or len(examples) != len(prompts)):
        raise ValueError("an environment needs one example per prompt")
    engine = _Engine(model, tokenizer, prompts, params, row_seeds(params, len(prompts), prompt_seeds), progress,
                     environment, examples)
    n = params.n
    cap = max(batch_size, n) if batch_size else len(prompts) * n
    pending = list(range(len(prompts)))[::-1]
    threads.reset()

    def take(room: int) -> list[int]:
        return [pending.pop() for _ in range(min(max(room // n, 1), len(pending)))]

    while pending or engine.live_count:
        free = cap - engine.live_count
        if pending and engine.live_count == 0:
            engine.cache = None
            engine.dead_count = 0
            engine.admit(take(cap))
        elif pending and engine.splices and free >= max(n, compact_fraction * cap):
            engine.admit(take(free))
        elif engine.dead_count and engine.dead_count >= compact_fraction * (engine.live_count + engine.dead_count):
            engine.compact()
        if engine.live_count:
            engine.step()
            threads.tick()
    return engine.rollouts()
