"""Typed configs: YAML + key=value overrides; unknown or ill-typed keys name the key."""
import pytest

from r1kit.config import ConfigError, load_config, parse_overrides
from r1kit.grpo.config import ZeroConfig


def test_defaults_run_and_overrides_apply(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("steps: 7\ngrpo:\n  beta: 0.04\n  group_size: 4\nrewards: {accuracy_math: 1.0}\n")
    cfg = load_config(ZeroConfig, recipe, ["grpo.beta=0.1", "eval.limit=null", "optim.lr=1e-3"])
    assert cfg.steps == 7 and cfg.grpo.group_size == 4
    assert cfg.grpo.beta == 0.1 and cfg.eval.limit is None and cfg.optim.lr == 1e-3
    assert cfg.rewards == {"accuracy_math": 1.0}
    assert load_config(ZeroConfig).grpo.group_size == 8


@pytest.mark.parametrize("override,needle", [
    (["grpo.betta=0.1"], "grpo.betta"),
    (["stepz=3"], "stepz"),
    (["steps=many"], "steps"),
    (["grpo.loss_agg=bogus"], "grpo.loss_agg"),
    (["grpo.dynamic_sampling=3"], "grpo.dynamic_sampling"),
    (["rewards.format=high"], "rewards.format"),
])
def test_bad_keys_and_types_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(ZeroConfig, None, override)


def test_bad_recipe_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(ZeroConfig, tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(ZeroConfig, bad)


def test_parse_overrides_nested_and_malformed():
    assert parse_overrides(["a.b=1", "a.c=[x, y]", "d=true"]) == {"a": {"b": 1, "c": ["x", "y"]}, "d": True}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["novalue"])


def test_shipped_recipe_equals_the_defaults():
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "zero_countdown.yaml"
    assert load_config(ZeroConfig, recipe).resolved() == ZeroConfig().resolved()
    assert ZeroConfig().resolved().rewards == {"accuracy_countdown": 1.0, "format": 0.5}


def test_the_task_picks_the_options_left_null():
    arithmetic = load_config(ZeroConfig, None, ["model=tiny", "data=synthetic"]).resolved()
    assert (arithmetic.rewards, arithmetic.accuracy_reward) == ({"accuracy_math": 1.0, "format": 0.5}, "accuracy_math")
    assert (arithmetic.curriculum, arithmetic.rollout.max_new_tokens, arithmetic.eval.data) == ("shuffle", 128, "synthetic")
    code = ZeroConfig(data="synthetic_code").resolved()
    assert (code.rewards, code.accuracy_reward, code.eval.data) == ({"code": 1.0, "format": 0.5}, "code", "synthetic_code")
    given = load_config(ZeroConfig, None, ["rewards={accuracy_math: 1.0}", "rollout.max_new_tokens=64",
                                           "eval.data=synthetic"]).resolved()
    assert (given.rewards, given.rollout.max_new_tokens, given.eval.data) == ({"accuracy_math": 1.0}, 64, "synthetic")
    assert given.accuracy_reward == "accuracy_countdown" and given.eval.max_new_tokens == 448  # the rest: countdown's
    with pytest.raises(ConfigError, match="rewards: no reward given"):
        load_config(ZeroConfig, None, ["rewards={}"])


def test_a_nested_section_keeps_its_parents_default():
    from r1kit.pipeline.config import PipelineConfig

    cfg = load_config(PipelineConfig, None, ["reasoning_rl.grpo.optim.lr=1e-3", "r1_zero.grpo.grpo.beta=0.1"])
    stage = cfg.reasoning_rl.grpo  # the stage's own defaults (100 steps, no periodic eval), not ZeroConfig()'s
    assert (stage.optim.lr, stage.steps, stage.eval.every, stage.checkpoint_every) == (1e-3, 100, 0, 25)
    assert stage.optim.warmup_steps == 5 and stage.grpo.eps_high == 0.2
    r1_zero = cfg.r1_zero.grpo
    assert (r1_zero.grpo.beta, r1_zero.grpo.eps_high, r1_zero.steps, r1_zero.eval.every) == (0.1, 0.2, 200, 0)


def test_every_option_is_documented_and_listed():
    """``r1kit config COMMAND`` lists every key with its default; each option has a doc line."""
    import dataclasses

    from r1kit.cli import COMMANDS, _load_class
    from r1kit.config import describe, field_docs

    def leaves(cls, prefix=""):
        default = cls()
        for f in dataclasses.fields(cls):
            value = getattr(default, f.name)
            if dataclasses.is_dataclass(value):
                yield from leaves(type(value), f"{prefix}{f.name}.")
            else:
                assert f.name in field_docs(cls), f"{cls.__name__}.{f.name} has no doc line"
                yield f"{prefix}{f.name}"

    for spec in (c.config for c in COMMANDS.values() if c.config):
        cls = _load_class(spec)
        listing = describe(cls)
        for key in leaves(cls):
            assert f"\n{key} = " in "\n" + listing, key
    assert "grpo.group_size = 8\n    G, completions sampled per prompt." in describe(_load_class(COMMANDS["zero"].config))


def test_resumable_keys_are_declared_beside_the_fields_and_name_real_ones():
    """What a resumed run may change is declared on each config class (``on_resume``); every key
    names a field, so a renamed field cannot silently break a resume rule."""
    import dataclasses

    from r1kit.cli import COMMANDS, _load_class
    from r1kit.runs import resumable_keys

    def has_key(cls, dotted):
        head, _, rest = dotted.partition(".")
        names = {f.name: f for f in dataclasses.fields(cls)}
        if head not in names:
            return False
        value = getattr(cls(), head)
        return has_key(type(value), rest) if rest else not dataclasses.is_dataclass(value)

    for spec in (c.config for c in COMMANDS.values() if c.config):
        cls = _load_class(spec)
        for key in resumable_keys(cls):
            assert has_key(cls, key), f"{cls.__name__}: on_resume names {key}, which is not an option"
    zero = resumable_keys(_load_class(COMMANDS["zero"].config))
    assert {"steps", "eval.every", "eval.batch_size", "distributed.sample_log", "reward_timeout"} <= set(zero)
    assert "grpo.beta" not in zero and "eval.k" not in zero
    assert "sft.checkpoint_every" in resumable_keys(_load_class(COMMANDS["distill"].config))


def test_an_unknown_key_gets_a_close_match():
    with pytest.raises(ConfigError, match=r"unknown config key grpo\.grup_size \(did you mean grpo\.group_size\?"):
        load_config(ZeroConfig, None, ["grpo.grup_size=4"])
    with pytest.raises(ConfigError, match=r"unknown config key zzz \(known: "):
        load_config(ZeroConfig, None, ["zzz=4"])


@pytest.mark.parametrize("argv", [["zero", "grpo.group_sise=4"], ["sft", "lr=-1"], ["sample", "--k", "0"],
                                  ["distill", "sft.lr=-1"], ["eval", "k=0"], ["cold-start", "templat=x"],
                                  ["pipeline", "--dry-run", "r1_zero.grpo.bet=1"], ["zero", "device=gpu"]])
def test_options_are_refused_before_torch_loads(argv):
    """A bad option answers at once: every command checks its config before it imports torch."""
    import subprocess
    import sys

    code = ("import sys; from r1kit.cli import main; rc = main(sys.argv[1:]); "
            "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded'); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "torch not loaded" in proc.stdout and "error:" in proc.stderr and "Traceback" not in proc.stderr
