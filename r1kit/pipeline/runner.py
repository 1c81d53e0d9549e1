"""The stage graph: run-directory layout, config fingerprints, completion markers, the plan, resumption.

Layout of a run directory ``RUN``::

    RUN/pipeline.json           the whole resolved recipe (rewritten at each run)
    RUN/events.jsonl            one line per stage event (planned action, started, finished, failed)
    RUN/<stage>/stage.json      the stage's inputs (its dependencies' outputs), config and fingerprint,
                                written when the stage starts
    RUN/<stage>/...             the stage's own outputs (trainer run folders, data files)
    RUN/<stage>/COMPLETE.json   the completion marker: fingerprint, outputs, seconds; written
                                atomically (temporary file + rename) after every output is in place
    RUN/superseded/<stage>-<fingerprint>/   a stage folder replaced because its config changed

Fingerprint of a stage = sha256 of (stage name, its config section, the shared keys it reads, and
its dependencies' fingerprints), so a changed config re-runs the stage and, through the chain,
every stage that depends on it. A stage's status, from its folder:

* ``complete``: a marker with the current fingerprint: skipped;
* ``interrupted``: ``stage.json`` with the current fingerprint and no marker: resumed (the
  trainers continue from their newest checkpoint; sampling from its progress log);
* ``changed``: a marker or ``stage.json`` with another fingerprint: its folder is moved to
  ``superseded/`` and the stage runs from scratch;
* ``pending``: no folder: runs.

``--from S`` re-runs S and every stage that depends on it even when complete, and runs no stage
that comes before S; ``--until S`` stops after S (stages are taken in the list's order). A stage whose dependency is neither complete nor
going to run in this invocation is an error naming both.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from r1kit.config import ConfigError, to_dict
from r1kit.data.jsonl import append_jsonl, write_json_atomic
from r1kit.pipeline.config import PipelineConfig

MARKER, STAGE_FILE = "COMPLETE.json", "stage.json"
SHARED_KEYS = ("base", "seed", "template", "language", "reasoning_data")


@dataclass
class Stage:
    """A node of the graph: ``run(ctx) -> outputs`` (a JSON-able dict, e.g. ``{"model": path}``)."""

    name: str
    deps: tuple[str, ...]
    run: Callable[["StageContext"], dict]
    enabled: Callable[[object], bool] = lambda cfg: True


@dataclass
class StageContext:
    """What a stage function gets: the pipeline config, its folder, its dependencies' outputs, and
    whether it resumes an interrupted attempt."""

    cfg: object
    run_dir: Path
    dir: Path
    inputs: dict[str, dict]
    resume: bool
    progress: bool = True


@dataclass
class PlanItem:
    """One line of the plan: a stage, what will happen to it and why."""

    stage: str
    action: str  # run | resume | rerun | skip | disabled | not-run
    reason: str
    fingerprint: str = ""
    deps: tuple[str, ...] = field(default_factory=tuple)


def fingerprint(name: str, section: dict, shared: dict, dep_prints: list[str]) -> str:
    """sha256 (first 12 hex) of the stage name, its config section, shared keys and dependency fingerprints."""
    blob = json.dumps({"stage": name, "config": section, "shared": shared, "deps": dep_prints},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or unreadable (a torn write)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stage_status(stage_dir: Path, fp: str) -> tuple[str, str]:
    """``(status, reason)`` of a stage folder for the current fingerprint ``fp`` (module docstring)."""
    marker, started = read_json(stage_dir / MARKER), read_json(stage_dir / STAGE_FILE)
    if marker and marker.get("fingerprint") == fp:
        return "complete", f"complete (fingerprint {fp})"
    if marker or (started and started.get("fingerprint") != fp):
        old = (marker or started).get("fingerprint")
        return "changed", f"config or an upstream stage changed (fingerprint {old} -> {fp})"
    if started:
        return "interrupted", "interrupted: resumes from its checkpoints"
    if stage_dir.exists() and any(stage_dir.iterdir()):
        return "changed", "folder holds files of an unknown run"
    return "pending", "not run yet"


class Pipeline:
    """Plans and runs ``stages`` (in list order) for a config into ``run_dir``."""

    def __init__(self, cfg: PipelineConfig, run_dir: str | Path, stages: list[Stage], progress: bool = True):
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        self.stages = {s.name: s for s in stages}
        self.order = [s.name for s in stages]
        for s in stages:
            unknown = [d for d in s.deps if d not in self.stages]
            if unknown:
                raise ValueError(f"stage {s.name} depends on unknown stage {unknown[0]}")
        self.prints = self._fingerprints()

    def _enabled(self, name: str) -> bool:
        return self.stages[name].enabled(self.cfg)

    def deps_of(self, name: str) -> tuple[str, ...]:
        """The enabled dependencies of a stage (a disabled dependency is not waited for)."""
        return tuple(d for d in self.stages[name].deps if self._enabled(d))

    def _fingerprints(self) -> dict[str, str]:
        shared = {k: getattr(self.cfg, k) for k in SHARED_KEYS if hasattr(self.cfg, k)}
        prints: dict[str, str] = {}
        for name in self.order:
            section = getattr(self.cfg, name, None)
            section = to_dict(section) if hasattr(section, "__dataclass_fields__") else section
            prints[name] = fingerprint(name, section, shared, [prints[d] for d in self.deps_of(name)])
        return prints

    def descendants(self, name: str) -> set[str]:
        """``name`` and every stage that depends on it, directly or not."""
        found = {name}
        for other in self.order:  # deps come earlier in the order, so one pass suffices
            if any(d in found for d in self.deps_of(other)):
                found.add(other)
        return found

    def plan(self, start: str | None = None, until: str | None = None) -> list[PlanItem]:
        """What a run would do to each stage, and why (``--from``/``--until`` as in the module docstring)."""
        for flag, value in (("--from", start), ("--until", until)):
            if value is not None and value not in self.stages:
                raise ConfigError(f"{flag} {value}: unknown stage; stages: {', '.join(self.order)}")
        forced = self.descendants(start) if start else set()
        last = self.order.index(until) if until else len(self.order) - 1
        items: list[PlanItem] = []
        will_have: set[str] = set()  # stages complete, or completed by this run
        for i, name in enumerate(self.order):
            fp, deps = self.prints[name], self.deps_of(name)
            if not self._enabled(name):
                items.append(PlanItem(name, "disabled", "disabled in the recipe", fp, deps))
                continue
            status, reason = stage_status(self.run_dir / name, fp)
            if start and i < self.order.index(start) and status != "complete":
                items.append(PlanItem(name, "not-run", f"before --from {start} ({reason})", fp, deps))
                continue
            if i > last:
                action, reason = "not-run", f"after --until {until}"
                if status == "complete":
                    will_have.add(name)
                items.append(PlanItem(name, action, reason, fp, deps))
                continue
            if name in forced and status in ("complete", "interrupted"):
                action, reason = "rerun", f"--from {start}" + (": depends on it" if name != start else "")
            elif status == "complete":
                action = "skip"
            elif status == "interrupted":
                action = "resume"
            elif status == "changed":
                action = "rerun"
            else:
                action = "run"
            missing = [d for d in deps if d not in will_have]
            if missing:
                raise ConfigError(f"stage {name} needs {missing[0]}, which is not complete and does not run "
                                  f"in this invocation (check --from/--until)")
            will_have.add(name)
            items.append(PlanItem(name, action, reason, fp, deps))
        return items

    def _event(self, **row) -> None:
        append_jsonl(self.run_dir / "events.jsonl", {"time": round(time.time(), 3), **row})

    def _supersede(self, name: str) -> None:
        """Move an outdated stage folder to ``superseded/`` (never deleted)."""
        folder = self.run_dir / name
        if not folder.exists():
            return
        old = (read_json(folder / MARKER) or read_json(folder / STAGE_FILE) or {}).get("fingerprint", "unknown")
        target = self.run_dir / "superseded" / f"{name}-{old}-{int(time.time())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        folder.rename(target)
        print(f"[pipeline] {name}: earlier outputs moved to {target}")

    def outputs(self, name: str) -> dict:
        """The outputs recorded in a complete stage's marker."""
        marker = read_json(self.run_dir / name / MARKER)
        if not marker:
            raise ConfigError(f"stage {name} has no completion marker in {self.run_dir / name}")
        return marker["outputs"]

    def run(self, start: str | None = None, until: str | None = None) -> list[PlanItem]:
        """Run the plan: skip complete stages, resume interrupted ones, run the rest."""
        items = self.plan(start, until)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.run_dir / "pipeline.json", to_dict(self.cfg))
        for item in items:
            self._event(stage=item.stage, event="planned", action=item.action, reason=item.reason)
            if item.action in ("skip", "disabled", "not-run"):
                print(f"[pipeline] {item.stage}: {item.action} ({item.reason})")
                continue
            self._run_stage(item)
        return items

    def _run_stage(self, item: PlanItem) -> None:
        name, folder = item.stage, self.run_dir / item.stage
        if item.action == "rerun":
            self._supersede(name)
        resume = item.action == "resume"
        inputs = {d: self.outputs(d) for d in item.deps}
        folder.mkdir(parents=True, exist_ok=True)
        if not resume:
            section = getattr(self.cfg, name, None)
            write_json_atomic(folder / STAGE_FILE, {
                "stage": name, "fingerprint": item.fingerprint, "deps": list(item.deps), "inputs": inputs,
                "config": to_dict(section) if hasattr(section, "__dataclass_fields__") else section,
                "shared": {k: getattr(self.cfg, k) for k in SHARED_KEYS if hasattr(self.cfg, k)},
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        print(f"[pipeline] {name}: {item.action} ({item.reason})")
        self._event(stage=name, event="started", resume=resume)
        t0 = time.time()
        try:
            outputs = self.stages[name].run(StageContext(self.cfg, self.run_dir, folder, inputs, resume, self.progress))
        except BaseException as exc:
            self._event(stage=name, event="failed", error=f"{type(exc).__name__}: {exc}"[:300])
            raise
        seconds = round(time.time() - t0, 1)
        write_json_atomic(folder / MARKER, {"stage": name, "fingerprint": item.fingerprint, "outputs": outputs,
                                            "seconds": seconds, "resumed": resume,
                                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        self._event(stage=name, event="finished", seconds=seconds)
        print(f"[pipeline] {name}: done in {seconds:.0f} s")


def format_plan(items: list[PlanItem]) -> str:
    """The plan as an aligned text table (``--dry-run``)."""
    width = max(len(i.stage) for i in items)
    lines = [f"{'stage':<{width}}  {'action':<8}  {'fingerprint':<12}  why"]
    lines += [f"{i.stage:<{width}}  {i.action:<8}  {i.fingerprint:<12}  {i.reason}" for i in items]
    return "\n".join(lines)
