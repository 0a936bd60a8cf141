"""Policy simulation (政策测算): re-assess a finished review's staged households under other
parameter folders, write no flags, and report who gains, loses or changes category and what it
costs, per street, community and category (docs/simulation.md)."""

from verification.simulation import simulate as simulate_module
from verification.simulation.report import (
    list_simulations,
    load_simulation,
    simulation_file,
    write_simulation,
)
from verification.simulation.scenarios import (
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_name,
    write_raised_standard,
)
from verification.simulation.simulate import (
    RunInputs,
    ScenarioResult,
    SimulationError,
    compare,
    load_run_inputs,
    simulate,
    simulation_home,
)

__all__ = [
    "RunInputs", "Scenario", "ScenarioError", "ScenarioResult", "SimulationError", "compare",
    "list_simulations", "load_run_inputs", "load_scenario", "load_simulation", "scenario_name",
    "simulate", "simulate_module", "simulation_file", "simulation_home", "write_raised_standard",
    "write_simulation",
]
