"""DetailScreen: one tensor in full, with its gradient beside it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from gdtui.engine.formatting import format_number, format_shape
from gdtui.engine.records import TensorView
from gdtui.messages import DetailData
from gdtui.widgets.charts import HistogramPlot


def summary_line(view: TensorView | None) -> str:
    if view is None:
        return "no gradient yet"
    text = (
        f"{format_shape(view.shape)} {view.dtype}  mean {format_number(view.mean)}  std {format_number(view.std)}  "
        f"min {format_number(view.min)}  max {format_number(view.max)}  norm {format_number(view.norm)}"
    )
    if not view.finite:
        text += f"  nan {view.nan}  inf {view.inf}"
    return text


def value_lines(view: TensorView | None) -> str:
    """Every value, one per line with its index: ``[0, 1]  2.2432``."""
    if view is None or view.flat is None:
        return "—"
    out: list[str] = []

    def walk(v, index: tuple[int, ...]) -> None:
        if isinstance(v, list):
            for i, item in enumerate(v):
                walk(item, index + (i,))
        else:
            out.append(f"[{', '.join(map(str, index))}]  {format_number(v, 6)}")

    walk(view.values, ())
    return "\n".join(out)


class DetailScreen(ModalScreen[None]):
    """All values (paged with PgUp/PgDn) for a small tensor, a histogram for a large one."""

    #: q closes, as in a pager, and the footer says so (its own: the app's one says q quits).
    BINDINGS = [Binding("escape", "dismiss", "Close", key_display="esc/q"),
                Binding("q,enter", "dismiss", "Close", show=False)]

    def __init__(self, data: DetailData) -> None:
        super().__init__()
        self.data = data

    def compose(self) -> ComposeResult:
        d = self.data
        large = d.value_hist is not None
        with Vertical(id="detail"):
            yield Static(Text(f"{d.name}  {summary_line(d.value)}", no_wrap=True, overflow="ellipsis"), id="detail-title")
            yield Static(Text(f"grad  {summary_line(d.grad)}", no_wrap=True, overflow="ellipsis"))
            grad_title = f"grad ({d.grad_of})" if d.grad_of else "grad"  # which one: the engine's label
            with Horizontal(id="detail-body"):
                if large:
                    yield HistogramPlot(f"{d.name}: values", id="value-hist")
                    yield HistogramPlot(grad_title, id="grad-hist")
                else:
                    with VerticalScroll(id="value-list"):
                        yield Static(Text(f"{d.name}\n", style="bold") + Text(value_lines(d.value)))
                    with VerticalScroll(id="grad-list"):
                        yield Static(Text(f"{grad_title}\n", style="bold") + Text(value_lines(d.grad)))
            yield Static("esc or q: close · ↑↓ PgUp PgDn: scroll", id="detail-keys")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.data.value_hist is not None:
            self.query_one("#value-hist", HistogramPlot).show(self.data.value_hist)
            self.query_one("#grad-hist", HistogramPlot).show(self.data.grad_hist)
        else:
            self.query_one("#value-list").focus()
