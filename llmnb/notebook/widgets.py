"""The notebook panels: :class:`ProviderPicker` and :class:`UsageDashboard` (ipywidgets).

Example::

    from llmnb.widgets import ProviderPicker, UsageDashboard
    picker = ProviderPicker()      # or %llm picker
    picker.observe(lambda ch: print(ch["new"]), names="value")
    UsageDashboard()               # or %llm dashboard

Each panel is a ``VBox`` whose logic lives in a widget-free module
(``_picker_model``, ``_dashboard_model``); this module only builds and wires widgets.
Errors are shown in the panel (a one-line status and an ``Output``), never raised into
the notebook from a button. Driving a panel from code works as in the browser: set a
child's ``.value`` or call a button's ``.click()``.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import traitlets

from llmnb import config
from llmnb.errors import ConfigError
from llmnb.notebook import _dashboard_model as dm
from llmnb.notebook import _picker_model as pm
from llmnb.notebook._picker_model import PickerValue

if TYPE_CHECKING:
    from llmnb.client.client import LLMClient
    from llmnb.usage import UsageRecord, UsageTracker

__all__ = ["PickerValue", "ProviderPicker", "UsageDashboard"]

_NO_AGENT = ""
_DEFAULT_NOTE = "<span style='color:#666'>profile default</span>"


class _Panel(w.VBox):  # type: ignore[misc]
    """Shared parts: a one-line status and an Output for full error texts."""

    def _init_panel(self) -> None:
        self.status = w.HTML(value="")
        self.errors = w.Output(layout=w.Layout(max_height="12em", overflow="auto"))

    def _report(self, text: str, ok: bool = True) -> None:
        import html

        color = "inherit" if ok else "#b00020"
        self.status.value = f"<span style='color:{color}'>{html.escape(text)}</span>"

    def _failed(self, action: str, exc: BaseException) -> None:
        first = " ".join(str(exc).split()) or type(exc).__name__
        self._report(f"✗ {action}: {type(exc).__name__}: {first[:200]}", ok=False)
        self.errors.append_stderr(f"{action}: {type(exc).__name__}: {exc}\n")

    def _guarded(self, action: str, fn: Callable[..., object]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:  # a panel reports, it never raises into the notebook
                self._failed(action, exc)

        return run


class ProviderPicker(_Panel):
    """Choose the profile, model and parameters the session's next calls use.

    Choosing applies at once (``config.set_session_provider``): the next ``%%llm`` and
    ``llmnb.create_llm_client_from_profile()`` use it. **Test** sends a minimal request;
    **Save as default** keeps the choice for new kernels (``.llmnb/state.json``; the
    settings file is never rewritten). ``picker.value`` is a :class:`PickerValue`.
    It opens on the profile in use without changing anything; ``ProviderPicker(profile=
    "name")`` opens on ``name`` and chooses it.
    """

    value = traitlets.Instance(PickerValue, allow_none=True)

    def __init__(self, profile: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_panel()
        self._syncing = False
        self._overrides: dict[str, Any] = {}
        label = {"description_width": "7em"}  # room for "Temperature" and "Max tokens"
        self.profile = w.Dropdown(description="Profile", style=label, layout=w.Layout(width="34em"))
        self.model = w.Combobox(
            description="Model",
            placeholder="model id",
            ensure_option=False,
            continuous_update=False,
            style=label,
            layout=w.Layout(width="34em"),
        )
        self.fetch = w.Button(description="Fetch models", tooltip="list the endpoint's /models")
        self.temperature = w.FloatSlider(
            description="Temperature",
            min=0.0,
            max=2.0,
            step=0.05,
            readout_format=".2f",
            style=label,
        )
        self.max_tokens = w.BoundedIntText(
            description="Max tokens",
            min=0,
            max=10_000_000,
            tooltip="0: the profile's default",
            style=label,
        )
        # "profile default" beside a slider / box whose value the picker does not set
        self.temperature_note = w.HTML()
        self.max_tokens_note = w.HTML()
        self.agent = w.Dropdown(description="Agent", style=label)
        self.test = w.Button(description="Test", icon="plug", tooltip="send a minimal request")
        self.save = w.Button(
            description="Save as default", icon="save", tooltip="use this in new kernels too"
        )
        self.reload = w.Button(
            icon="refresh", tooltip="re-read settings and keys", layout=w.Layout(width="3em")
        )

        self.profile.observe(self._guarded("profile", self._on_profile), names="value")
        self.model.observe(self._guarded("model", self._on_param), names="value")
        self.temperature.observe(self._guarded("temperature", self._on_temperature), names="value")
        self.max_tokens.observe(self._guarded("max tokens", self._on_max_tokens), names="value")
        self.agent.observe(self._guarded("agent", self._on_agent), names="value")
        self.fetch.on_click(self._guarded("fetch models", self._on_fetch))
        self.test.on_click(self._guarded("test", self._on_test))
        self.save.on_click(self._guarded("save", self._on_save))
        self.reload.on_click(self._guarded("reload", lambda _b: self.refresh()))

        self.children = [
            w.HBox([self.profile, self.reload]),
            w.HBox([self.model, self.fetch]),
            w.HBox([self.temperature, self.temperature_note]),
            w.HBox([self.max_tokens, self.max_tokens_note]),
            self.agent,
            w.HBox([self.test, self.save]),
            self.status,
            self.errors,
        ]
        self._applying = False
        try:
            self.refresh(select=profile)
        except Exception as exc:
            self._failed("settings", exc)
        self._follow_session()

    # -- public ----------------------------------------------------------------------------

    def refresh(self, select: str | None = None) -> None:
        """Re-read the settings and keys (labels say whether each key is set)."""
        infos = pm.profiles()
        names = [i.name for i in infos]
        current = select or self.profile.value or _active_profile()
        if current not in names:
            current = names[0] if names else None
        agent = self.agent.value
        self._syncing = True
        try:
            self.profile.options = [(i.label, i.name) for i in infos]
            self.profile.value = current
            agents = [a for a in pm.agents()]
            self.agent.options = [("(no agent)", _NO_AGENT)] + [(a, a) for a in agents]
            self.agent.value = agent if agent in agents else _NO_AGENT
        finally:
            self._syncing = False
        if current is not None:
            # Showing what is in use changes nothing; choosing in the dropdown does.
            self._load_profile(current, apply=select is not None)

    def client(self) -> LLMClient:
        """A client for the current choice (profile, model, agent, parameters)."""
        from llmnb.client.profiles import create_llm_client_from_profile

        v = self.value
        if v is None or not v.profile:
            raise ConfigError("Choose a profile in the picker first.")
        c = create_llm_client_from_profile(
            model_name=v.model or None, agent=v.agent, profile=v.profile
        )
        c.params.update(self._overrides)
        return c

    # -- handlers -------------------------------------------------------------------------

    def _on_profile(self, change: dict[str, Any]) -> None:
        if self._syncing or not change["new"]:
            return
        self._load_profile(change["new"], apply=True)

    def _load_profile(self, name: str, apply: bool) -> None:
        self._overrides = {}
        session_name, session_model = config.get_session_provider()
        chosen_model = session_model if session_name == name and session_model else None
        if chosen_model is None:
            saved_name, saved_model = config.get_saved_default()
            chosen_model = saved_model if saved_name == name else None
        self._syncing = True
        try:
            options = pm.model_options(name)
            self.model.options = tuple(options)
            self.model.value = chosen_model or pm.profile_info(name).model or ""
            self._show_defaults(name)
            self.fetch.disabled = not pm.profile_info(name).can_list_models
        finally:
            self._syncing = False
        self._update(apply)

    def _show_defaults(self, name: str) -> None:
        temperature, max_tokens = pm.defaults_for(name, self.agent.value or None)
        self._show_temperature(temperature)
        self._show_max_tokens(max_tokens)

    def _show_temperature(self, value: float | None) -> None:
        # Unset: the slider sits at 1.0 without a readout, and says whose value applies.
        self.temperature.value = 1.0 if value is None else value
        self.temperature.readout = value is not None
        self.temperature_note.value = _DEFAULT_NOTE if value is None else ""

    def _show_max_tokens(self, value: int | None) -> None:
        self.max_tokens.value = value or 0
        self.max_tokens_note.value = _DEFAULT_NOTE if not value else ""

    def _on_temperature(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self._overrides["temperature"] = float(change["new"])
            self.temperature.readout = True
            self.temperature_note.value = ""
            self._update(apply=True)

    def _on_max_tokens(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self._overrides["max_tokens"] = int(change["new"]) or None
            self.max_tokens_note.value = "" if int(change["new"]) else _DEFAULT_NOTE
            self._update(apply=True)

    def _on_agent(self, change: dict[str, Any]) -> None:
        if self._syncing or not self.profile.value:
            return
        temperature, max_tokens = pm.defaults_for(self.profile.value, change["new"] or None)
        self._syncing = True
        try:  # show the agent's parameters, unless the user set their own
            if "temperature" not in self._overrides:
                self._show_temperature(temperature)
            if "max_tokens" not in self._overrides:
                self._show_max_tokens(max_tokens)
        finally:
            self._syncing = False
        self._update(apply=True)

    def _on_param(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self._update(apply=True)

    def _update(self, apply: bool) -> None:
        value = PickerValue(
            profile=self.profile.value or None,
            model=(self.model.value or "").strip() or None,
            temperature=self._overrides.get("temperature"),
            max_tokens=self._overrides.get("max_tokens"),
            agent=self.agent.value or None,
        )
        if apply and value.profile:
            self._applying = True
            try:
                pm.apply(value)
            finally:
                self._applying = False
            self._report(f"using {value.profile} · {value.model or '(profile model)'}")
        self.value = value

    def _follow_session(self) -> None:
        """Stay true to the session's choice when code changes it (``%llm use``,
        ``config.set_session_provider``, another picker). A weak reference: a picker
        nobody holds any more is collected, and its listener removed."""
        ref = weakref.ref(self)
        remove: list[Callable[[], None]] = []

        def changed() -> None:
            picker = ref()
            if picker is None:
                for undo in remove:
                    undo()
                return
            picker._guarded("session", picker._on_session)()

        remove.append(config.on_session_change(changed))
        self._unfollow = remove[0]

    def _on_session(self) -> None:
        if self._applying:
            return  # our own choice
        name, model = config.get_session_provider()
        name = name or _active_profile()
        if name is None:
            return
        if name not in [v for _label, v in self.profile.options]:
            self.refresh()
        self._syncing = True
        try:
            self.profile.value = name
        finally:
            self._syncing = False
        self._load_profile(name, apply=False)
        if model is None and config.get_session_provider()[0] == name:
            self.model.value = pm.profile_info(name).model or ""
            self._update(apply=False)
        shown = self.value.model if self.value and self.value.model else "(profile model)"
        self._report(f"using {name} · {shown}")

    def close(self) -> None:
        """Stop following the session and close the widget."""
        self._unfollow()
        super().close()

    def _on_fetch(self, _button: w.Button) -> None:
        name = self.profile.value
        found = pm.fetch_models(name)
        self.model.options = tuple(dict.fromkeys([*self.model.options, *found]))
        self._report(f"{len(found)} models listed by {name}'s endpoint")

    def _on_test(self, _button: w.Button) -> None:
        self._report("testing …")
        result = pm.test_call(self.value or PickerValue(None))
        self._report(result.line, ok=result.ok)

    def _on_save(self, _button: w.Button) -> None:
        path = pm.save_default(self.value or PickerValue(None))
        self._report(f"saved as the default for new kernels ({path.name} in {path.parent})")


class UsageDashboard(_Panel):
    """Totals, a summary table, recent calls and a plot of a tracker's usage, live.

    Refreshes itself when calls are recorded — at most once per ``refresh_interval``
    seconds, updating values in place (no flicker). ``tracker`` defaults to
    ``llmnb.usage.get_tracker()``. ``scheduler(delay, fn)`` replaces the timer (tests).
    ``dashboard.close()`` stops the live updates.
    """

    def __init__(
        self,
        tracker: UsageTracker | None = None,
        *,
        by: str = "model",
        window: str = "all",
        plot: str = "cumulative",
        refresh_interval: float = 1.0,
        scheduler: Callable[[float, Callable[[], None]], object] | None = None,
        recent_rows: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from llmnb.usage import get_tracker

        self._init_panel()
        self.tracker = tracker if tracker is not None else get_tracker()
        self.model = dm.DashboardModel(self.tracker, recent_rows)
        self._lock = threading.Lock()
        self._plot_key: tuple[Any, ...] | None = None
        self._shown = False
        self.view: dm.DashboardView | None = None

        self.totals = w.HTML()
        self.by = w.Dropdown(description="Group by", options=dm.GROUPS, value=by)
        self.window = w.Dropdown(description="Window", options=dm.WINDOWS, value=window)
        self.plot_kind = w.Dropdown(description="Plot", options=dm.PLOTS, value=plot)
        self.refresh_button = w.Button(
            icon="refresh", tooltip="refresh now", layout=w.Layout(width="3em")
        )
        self.plot = w.Image(format="png", layout=w.Layout(max_width="760px"))
        self.table = w.HTML()
        self.recent = w.HTML()
        self.store = w.HTML()
        self.csv_path = w.Text(value="usage.csv", description="CSV file")
        self.export = w.Button(description="Export CSV", icon="download")

        for control in (self.by, self.window, self.plot_kind):
            control.observe(self._guarded("refresh", lambda _c: self.refresh()), names="value")
        self.refresh_button.on_click(self._guarded("refresh", lambda _b: self.refresh()))
        self.export.on_click(self._guarded("export", self._on_export))

        self.children = [
            self.totals,
            w.HBox([self.by, self.window, self.plot_kind, self.refresh_button]),
            self.plot,
            w.HTML("<b>By group</b>"),
            self.table,
            w.HTML("<b>Latest calls</b>"),
            self.recent,
            w.HBox([self.csv_path, self.export]),
            self.store,
            self.status,
            self.errors,
        ]
        self.throttle = dm.RefreshThrottle(self._auto_refresh, refresh_interval, scheduler)
        self.tracker.add_listener(self._on_record)
        # Count the views the front end shows: a dashboard whose output was cleared
        # stops redrawing, so re-running a cell does not pile up live dashboards.
        self._view_count = 0
        self.observe(self._on_views, names="_view_count")
        self._guarded("refresh", lambda: self.refresh())()

    # -- public ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute totals, tables and (if the data changed) the plot, now."""
        with self._lock:
            view = self.model.view(self.by.value, self.window.value)
            self.view = view
            self.totals.value = dm.totals_html(view.totals)
            self.table.value = dm.table_html(view.table)
            self.recent.value = dm.recent_html(view.recent)
            problem = self.model.store_problem()
            self.store.value = (
                f"<small style='color:#b45309'>{_escape(problem)}</small>"
                if problem
                else f"<small>usage store: {_escape(self.model.store_line())}</small>"
            )
            last = view.frame["call_id"].iat[-1] if len(view.frame) else None
            key = (len(view.frame), last, view.by, view.window, self.plot_kind.value)
            if key != self._plot_key:
                self.plot.value = self.model.plot_png(view.frame, view.by, self.plot_kind.value)
                self._plot_key = key

    def close(self) -> None:
        """Stop live updates and close the widget."""
        self.throttle.cancel()
        with contextlib.suppress(ValueError):  # already removed
            self.tracker.remove_listener(self._on_record)
        super().close()

    # -- handlers -------------------------------------------------------------------------

    def _on_record(self, _record: UsageRecord) -> None:
        self.throttle.notify()

    def _on_views(self, change: dict[str, Any]) -> None:
        if (change["new"] or 0) > 0:
            self._shown = True

    def _auto_refresh(self) -> None:
        if self._shown and not self._view_count:
            return  # it was displayed, and every view of it is gone
        self._guarded("refresh", lambda: self.refresh())()

    def _on_export(self, _button: w.Button) -> None:
        view = self.view or self.model.view(self.by.value, self.window.value)
        path, rows = self.model.export_csv(view.frame, self.csv_path.value.strip() or "usage.csv")
        self._report(f"wrote {rows:,} rows to {path}")


def _active_profile() -> str | None:
    active = config.get_active_profile()
    return active[0] if active else None


def _escape(text: str) -> str:
    import html

    return html.escape(text)
