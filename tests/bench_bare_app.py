"""The baseline for bench_tui.py: a bare Textual app with a DataTable and a PlotextPlot.

Space updates a status line, one table cell and the plot, with no engine
behind it: the fastest a key can reach the screen on this machine.
"""

from textual.app import App
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot


class BareApp(App):
    BINDINGS = [("space", "step", "Step"), ("q", "quit", "Quit")]

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def compose(self):
        yield Static("step 0 │", id="status")
        yield DataTable()
        yield PlotextPlot()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("name", key="name")
        table.add_column("value", key="value")
        table.add_row("w", "0", key="w")
        self.query_one(PlotextPlot).plt.title("loss")

    def action_step(self) -> None:
        self.steps += 1
        self.query_one("#status", Static).update(f"step {self.steps} │")
        self.query_one(DataTable).update_cell("w", "value", str(self.steps))
        plot = self.query_one(PlotextPlot)
        plot.plt.clear_data()
        plot.plt.plot([1.0 / (i + 1) for i in range(self.steps + 1)])
        plot.refresh()


if __name__ == "__main__":
    BareApp().run()
