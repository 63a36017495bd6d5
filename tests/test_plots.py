"""Cost plots: rendered headless (Agg) to real PNGs with data on them; unknown costs n/a."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from llmnb.usage import UsageTracker
from llmnb.usage.plots import KINDS, plot_costs, render_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    # plot_costs() makes pyplot figures (so notebooks show them); close them after each test.
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def priced() -> UsageTracker:
    """Three models over an hour; one has no known price."""
    t = UsageTracker()
    start = time.time() - 3600
    for i in range(30):
        model, cost = [("gpt-4o", 0.02), ("claude", 0.05), ("mystery", None)][i % 3]
        t.record(1000 + i, 200, model=model, provider="p", cost_usd=cost, time=start + i * 60)
    return t


def bars(ax: Axes) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_renders_a_png_with_data_on_it(
    priced: UsageTracker, kind: str, tmp_path: Path
) -> None:
    ax = priced.plot_costs(by="model", kind=kind)
    out = tmp_path / f"{kind}.png"
    ax.figure.savefig(out)
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    drawn = [a for a in ax.get_children() if isinstance(a, (Line2D, Rectangle, PatchCollection))]
    if kind == "cumulative":
        assert len([line for line in ax.get_lines() if len(line.get_xdata())]) == 3  # 2 + total
    else:
        assert len(bars(ax)) >= 3
    assert drawn


def test_cumulative_lines_end_at_each_groups_total_and_say_so(priced: UsageTracker) -> None:
    ax = priced.plot_costs(by="model", kind="cumulative")
    ends = {line.get_label(): float(line.get_ydata()[-1]) for line in ax.get_lines()}
    assert ends == pytest.approx(
        {"claude ($0.50)": 0.5, "gpt-4o ($0.20)": 0.2, "total ($0.70)": 0.7}
    )
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0].startswith("claude")  # costliest first
    assert ax.get_ylabel() == "cumulative cost (USD)" and ax.get_xlabel().startswith("time (UTC")
    assert any("10 rows of unknown cost (n/a)" in t.get_text() for t in ax.texts)


def test_dollar_axis_labels_have_enough_decimals(priced: UsageTracker) -> None:
    ax = priced.plot_costs(by="model", kind="cumulative")
    ax.figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(label.startswith("$") for label in labels)
    assert "$0.00" not in labels[1:]  # small amounts are not all rounded to zero

    tiny = UsageTracker()
    for i in range(4):
        tiny.record(10, 5, model="m", cost_usd=0.00002, time=1_700_000_000 + i)
    ax = tiny.plot_costs(kind="cumulative")
    ax.figure.canvas.draw()
    ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(set(ticks)) == len(ticks)  # distinct: "$0.00002", "$0.00004"…


def test_a_group_of_unknown_cost_reads_na_never_zero(priced: UsageTracker) -> None:
    ax = priced.plot_costs(by="model", kind="cost")
    labels = {t.get_text() for t in ax.texts}
    assert "n/a" in labels and "$0.00" not in labels
    assert {"$0.50", "$0.20"} <= labels
    assert [t.get_text() for t in ax.get_yticklabels()] == ["mystery", "gpt-4o", "claude"]


def test_tokens_plot_stacks_input_and_output(priced: UsageTracker) -> None:
    ax = priced.plot_costs(by="model", kind="tokens")
    widths = sorted(round(b.get_width()) for b in bars(ax))
    assert widths == [2000, 2000, 2000, 10_135, 10_145, 10_155]  # 10×200 out; 10×~1014 in
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "input (prompt)",
        "output (completion)",
    ]


def test_many_groups_are_folded_into_other(tmp_path: Path) -> None:
    t = UsageTracker()
    for i in range(20):
        t.record(10, 5, model=f"m{i}", cost_usd=0.001 * (i + 1), time=1_700_000_000 + i)
    ax = t.plot_costs(by="model", kind="cost")
    names = [label.get_text() for label in ax.get_yticklabels()]
    assert len(names) == 8 and "other" in names and "m19" in names


def test_an_empty_tracker_draws_a_message_not_an_error() -> None:
    ax = UsageTracker().plot_costs()
    assert [t.get_text() for t in ax.texts] == ["No usage recorded yet"]
    assert render_png(ax).startswith(PNG_MAGIC)


def test_plotting_by_day_and_by_notebook_cell() -> None:
    t = UsageTracker()
    t.record(10, 5, model="m", cost_usd=0.01, cell=1, time=1_700_000_000)
    t.record(10, 5, model="m", cost_usd=0.02, cell=2, time=1_700_090_000)
    day_ax = t.plot_costs(by="day", kind="cost")
    assert [x.get_text() for x in day_ax.get_yticklabels()] == ["2023-11-14", "2023-11-15"]
    cell_ax = t.plot_costs(by="cell", kind="cost")
    assert [x.get_text() for x in cell_ax.get_yticklabels()] == ["1", "2"]


def test_an_axes_can_be_given_and_is_drawn_on(priced: UsageTracker) -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert priced.plot_costs(kind="cost", ax=ax) is ax


def test_since_limits_the_rows_plotted(priced: UsageTracker) -> None:
    ax = priced.plot_costs(by="model", kind="cost", since="40m")  # the last ten rows
    labels = {t.get_text() for t in ax.texts}
    assert {"$0.15", "$0.060", "n/a"} <= labels and "$0.50" not in labels


def test_bad_by_or_kind_lists_the_choices() -> None:
    df = UsageTracker().to_dataframe()
    with pytest.raises(ValueError, match=r"cannot plot by 'tags'.*model"):
        plot_costs(df, by="tags")
    with pytest.raises(ValueError, match=r"unknown plot kind 'pie'.*cumulative, cost, tokens"):
        plot_costs(df, kind="pie")


def test_headless_scripts_get_agg_without_importing_matplotlib_early(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from llmnb.usage import UsageTracker\n"
        "t = UsageTracker(); t.record(10, 5, model='m', cost_usd=0.1)\n"
        "before = 'matplotlib' in sys.modules\n"
        "ax = t.plot_costs()\n"
        "import matplotlib, matplotlib.pyplot as plt\n"
        "print(before, matplotlib.get_backend().lower(), type(ax).__name__, plt.isinteractive())\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MPLCONFIGDIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.stdout.split() == ["False", "agg", "Axes", "False"], out.stderr


def test_a_backend_chosen_by_the_user_is_kept(tmp_path: Path) -> None:
    code = (
        "import matplotlib\n"
        "from llmnb.usage import UsageTracker\n"
        "UsageTracker().plot_costs()\n"
        "print(matplotlib.get_backend())\n"
    )
    env = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "svg", "MPLCONFIGDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "svg", out.stderr
