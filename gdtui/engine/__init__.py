"""The gdtui engine: scenarios, the session, summaries and traces. It never imports textual.

The names below load on first use (PEP 562), so that importing a torch-free module of the engine
(records, chart_records, errors) does not import torch: the protocol and the screen's process
read those records without it.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "ScenarioError": "gdtui.engine.errors",
    "StepError": "gdtui.engine.loop",
    "PHASES": "gdtui.engine.records",
    "SessionState": "gdtui.engine.records",
    "StepRecord": "gdtui.engine.records",
    "TensorView": "gdtui.engine.records",
    "Scenario": "gdtui.engine.scenario",
    "load_scenario": "gdtui.engine.scenario",
    "Session": "gdtui.engine.session",
    "TraceWriter": "gdtui.engine.trace",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'gdtui.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
