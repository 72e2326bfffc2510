"""The parameter table as the screen paints it, whenever the screen paints it.

The screen's update timer can paint the table between a ``show`` and the
table's next idle pass, where DataTable measures its auto-width columns (it
happened in about one tmux run in ten). What the user sees must not depend on
which comes first. Numbers: the seed notebook's w and b after one iteration of
not_gate.py, 2.8265495 and 1.3553205, from w = 3 and b = 1.
"""

from __future__ import annotations

import pytest

from gdtui.engine.summarize import format_number
from gdtui.jobs import make_app
from gdtui.widgets.param_table import ParamTable
from tests.app.pilot_helpers import NOT_GATE, opened, press, settle
from tests.paths import BAD, SCENARIOS


def painted(table: ParamTable) -> list[str]:
    """The table's lines as the screen paints them now (the compositor asks render_line)."""
    return [table.render_line(y).text for y in range(table.size.height)]


def paint_right_after_show(table: ParamTable) -> None:
    """Each show is followed at once by a paint, before the table can go idle."""
    show = table.show

    def show_then_paint(state) -> None:
        show(state)
        painted(table)

    table.show = show_then_paint


async def step(pilot) -> None:
    await press(pilot, "space")


async def step_then_rebuild(pilot) -> None:
    """One step, then the table built again from scratch, as for new rows."""
    await press(pilot, "space")
    table = pilot.app.query_one(ParamTable)
    table.clear(columns=True)
    table.show(pilot.app.state)
    await settle(pilot)


@pytest.mark.parametrize("reach", [step, step_then_rebuild])
async def test_the_columns_fit_the_step_1_values_when_the_screen_paints_before_the_table_is_idle(reach):
    app = make_app(NOT_GATE)
    async with opened(app) as pilot:
        table = app.query_one(ParamTable)
        paint_right_after_show(table)
        await reach(pilot)
        header, w, b = painted(table)[:3]

        def under(line: str, label: str, next_label: str) -> str:
            return line[header.index(label): header.index(next_label)].strip()

        assert under(w, "value", "grad") == "2.8265" and under(b, "value", "grad") == "1.3553"
        assert under(w, "Δ last", "‖grad‖") == format_number(2.8265495 - 3, 4)  # -0.1735
        assert under(b, "Δ last", "‖grad‖") == format_number(1.3553205 - 1, 4)  # 0.3553


async def test_a_nan_gradient_shows_in_wide_mode():
    """nan_at_step_2: log(x * w) is NaN at step 2, so w's gradient is [nan]. At 200 columns the
    grad cell shows the values in brackets, which DataTable would read as markup in a plain str."""
    app = make_app(BAD / "nan_at_step_2.py")
    async with opened(app, size=(200, 60)) as pilot:
        await press(pilot, "space", "space")
        table = app.query_one(ParamTable)
        header, w = painted(table)[:2]
        assert w[header.index("grad"): header.index("Δ last")].strip().startswith("[nan] ⚠ nan=1 inf=0")


async def test_going_back_to_80_columns_shows_every_narrow_column_again():
    """crop_yields at 200 columns (full summaries), then 80: the table is built again for the
    narrow cells, so the ratio column is back on screen."""
    app = make_app(SCENARIOS / "crop_yields.py")
    async with opened(app, size=(200, 60)) as pilot:
        await press(pilot, "space")
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        header = painted(app.query_one(ParamTable))[0]
        assert "‖Δ‖/‖p‖" in header and len(header.rstrip()) <= 80
