"""The gdtui engine: scenarios, the session, summaries and traces. It never imports textual."""

from gdtui.engine.errors import ScenarioError
from gdtui.engine.loop import StepError
from gdtui.engine.records import PHASES, SessionState, StepRecord, TensorView
from gdtui.engine.scenario import Scenario, load_scenario
from gdtui.engine.session import Session
from gdtui.engine.trace import TraceWriter

__all__ = [
    "PHASES",
    "Scenario",
    "ScenarioError",
    "Session",
    "SessionState",
    "StepError",
    "StepRecord",
    "TensorView",
    "TraceWriter",
    "load_scenario",
]
