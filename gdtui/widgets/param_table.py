"""ParamTable: one row per trained tensor, keyed by name, updated cell by cell."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from gdtui.engine.formatting import format_number, format_shape, format_view
from gdtui.engine.records import SessionState, TensorView

COLUMNS = (("name", "name"), ("shape", "shape"), ("value", "value"), ("grad", "grad"), ("delta", "Δ last"),
           ("gnorm", "‖grad‖"), ("ratio", "‖Δ‖/‖p‖"))
CHANGED = "bold underline yellow"  # bold and underline survive NO_COLOR


def _same_key(value) -> object:
    """What a cell looks like: rich's Text compares the plain text only, so add its styles."""
    if isinstance(value, Text):
        return value.plain, str(value.style), tuple(value.spans)
    return value


def _flat(values) -> list:
    if isinstance(values, list):
        return [x for v in values for x in _flat(v)]
    return [values]


def cell(view: TensorView | None, wide: bool, kind: str = "value") -> str:
    """A tensor in one cell: its values when small, else a summary. Never raises.

    At 80 columns a one-element tensor shows its value; a larger one shows mean
    and std in the value column and its norm in the grad and Δ columns (Enter
    opens every value). From WIDE columns up, up to 8 values or the full summary.
    """
    if view is None:
        return "—"
    try:
        if wide:
            text = format_view(view, 5 if view.numel == 1 else 4, 4)
            if view.flat is None or view.numel > 4:
                text += f" ‖{format_number(view.norm, 3)}‖"
            return text
        bad = "" if view.finite else f" ⚠nan{view.nan}/inf{view.inf}"
        if view.flat is not None and view.numel == 1:
            return format_number(_flat(view.values)[0], 5 if kind == "value" else 4) + bad
        if kind == "value":
            return f"μ{format_number(view.mean, 3)} σ{format_number(view.std, 3)}{bad}"
        return f"‖{format_number(view.norm, 3)}‖{bad}"
    except Exception:  # a cell never breaks the screen
        return "?"


def _only(rows: dict[str, tuple], columns: tuple[tuple[str, str], ...]) -> dict[str, tuple]:
    """The cells of ``columns`` in each row of every column's cells."""
    return {name: tuple(v for c, v in zip(COLUMNS, cells) if c in columns) for name, cells in rows.items()}


class ParamTable(DataTable, inherit_bindings=False):
    """name, shape, value, grad, Δ, ‖grad‖ and ‖Δ‖/‖p‖ for every trained tensor.

    The grad column shows the state's ``shown_grads``, which the engine decides: at a step
    boundary the gradient the last update used (the live one was just zeroed); mid-step the
    live gradient.
    """

    # Only the row keys: left and right belong to the app (left rewinds).
    BINDINGS = [
        Binding("enter", "select_cursor", "Detail", show=False),
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.wide = False
        self._start: dict[str, TensorView] = {}
        self._cells: dict[tuple[str, str], object] = {}  # what each cell shows now
        self._shown: SessionState | None = None
        self._stale: set[str] = set()  # rows out of sight that still show an older state
        self._widths: dict[str, list[int]] = {}  # each row's cell widths, as last formatted
        self._built_wide = False  # the mode the columns were last built for

    def columns_shown(self, rows: dict[str, tuple]) -> tuple[tuple[str, str], ...]:
        """Every column when they fit. Else ‖grad‖ goes first: at 80 columns the grad cell
        already shows the gradient's norm for a tensor of several elements. ``rows`` may be
        some of the rows only: the others count as they were last formatted."""
        for name, cells in rows.items():
            self._widths[name] = [cell_len(str(c)) for c in cells]
        padded = sum(w + 2 * self.cell_padding for w in self._content_widths().values())
        if self.wide or padded <= max(self.size.width, 80) - 2:
            return COLUMNS
        return tuple(c for c in COLUMNS if c[0] != "gnorm")

    def _content_widths(self) -> dict[str, int]:
        """Each column's width: its label or its widest cell, as last formatted."""
        return {key: max([cell_len(label)] + [w[i] for w in self._widths.values()])
                for i, (key, label) in enumerate(COLUMNS)}

    def _widen(self, columns: tuple[tuple[str, str], ...]) -> set[str]:
        """Widen the columns that the cells just formatted outgrew; return their keys.

        DataTable would measure auto-width columns later, in its idle handler, and that
        pass leaves its render caches alone (their keys hold a change count that
        update_cell and add_row bump, not the widths). A frame painted in between (the
        screen's update timer can fire there) is then cached at the old widths and
        stays on screen: 2.8265 shows as 2.826. So every column has a fixed width set
        here, before the update_cell that invalidates those caches. DataTable has no
        public setter for a width after add_column, hence ``Column.width``.
        """
        widths = self._content_widths()
        grown = {key for key, _ in columns if widths[key] > self.columns[key].width}
        for key in grown:
            self.columns[key].width = widths[key]
        return grown

    @property
    def names(self) -> list[str]:
        return [str(k.value) for k in self.rows]

    def selected_name(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return str(row_key.value)

    def show(self, state: SessionState) -> None:
        """Show ``state``. Only the rows in sight are formatted and updated (a model may have
        hundreds of tensors); the others catch up when they scroll into sight."""
        if state.next_phase == "forward":
            self._start = dict(state.params)
        self._shown = state
        names = list(state.params)
        if names != self.names or self.wide != self._built_wide:  # new rows, or cells of another width
            self._rebuild(self._rows(state, names))
            return
        visible = self._visible(names)
        self._stale = set(names).difference(visible)
        self._update(self._rows(state, visible))

    def _visible(self, names: list[str]) -> list[str]:
        top = int(self.scroll_y)
        return names[top: top + max(self.size.height, 1)]

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._catch_up()

    def on_resize(self) -> None:
        self._catch_up()

    def _catch_up(self) -> None:
        """Rows that came into sight show the state the others show."""
        if self._stale and self._shown is not None:
            catch_up = [n for n in self._visible(self.names) if n in self._stale]
            if catch_up:
                self._stale.difference_update(catch_up)
                self._update(self._rows(self._shown, catch_up))

    def _rebuild(self, full: dict[str, tuple]) -> None:
        """New rows (a new scenario, a reset) or new columns: build the table again, every row."""
        self._widths = {}
        self._built_wide = self.wide
        columns = self.columns_shown(full)
        rows = _only(full, columns)
        cursor = self.cursor_row
        self.clear(columns=True)
        widths = self._content_widths()  # set now, not measured when idle: see _widen
        for key, label in columns:
            self.add_column(label, key=key, width=widths[key])
        self._cells = {(name, key): _same_key(v) for name, cells in rows.items() for (key, _), v in zip(columns, cells)}
        self._stale = set()
        for name, cells in rows.items():
            self.add_row(*cells, key=name)
        if self.row_count:
            self.move_cursor(row=min(cursor, self.row_count - 1))

    def _update(self, full: dict[str, tuple]) -> None:
        """Update the cells of these rows that changed; a row that no longer fits the columns rebuilds."""
        columns = self.columns_shown(full)
        if tuple(str(k.value) for k in self.columns) != tuple(k for k, _ in columns):
            self._rebuild(self._rows(self._shown, list(self._shown.params)))
            return
        rows = _only(full, columns)
        grown = self._widen(columns)
        for name, cells in rows.items():
            for (key, _), value in zip(columns, cells):
                if self._cells.get((name, key)) == _same_key(value):
                    continue  # unchanged: no cache invalidation, no repaint
                self._cells[name, key] = _same_key(value)
                # update_width only when the column grew, for the scrollable width: a layout pass
                # also redraws the chart.
                self.update_cell(name, key, value, update_width=key in grown)

    def _rows(self, state: SessionState, names: list[str]) -> dict[str, tuple]:
        """Every column's cell of these rows."""
        last = state.last
        boundary = state.next_phase == "forward"
        grads = state.shown_grads.views  # the engine's choice: the gradient the last update used, or the live one
        at_last = last is not None and boundary and last.step == state.step
        rows = {}
        for name in names:
            view = state.params[name]
            delta = last.updates.get(name) if last is not None else None
            grad = grads.get(name)
            if at_last:
                changed = delta is not None and delta.norm != 0
            else:
                start = self._start.get(name)
                changed = start is not None and (start.values != view.values or start.mean != view.mean) and not boundary
            value = Text(cell(view, self.wide), style=CHANGED if changed else "")
            ratio = format_number(last.update_ratio(name), 3) if (last is not None and name in last.updates) else "—"
            rows[name] = (
                Text(name, style="bold"),
                format_shape(view.shape),
                value,
                Text(cell(grad, self.wide, "grad")),  # Text, not str: a str cell is read as markup ("[nan]")
                Text(cell(delta, self.wide, "delta"), style=CHANGED if at_last and changed else ""),
                format_number(grad.norm, 3) if grad is not None else "—",
                ratio,
            )
        return rows
