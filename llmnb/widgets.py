"""Notebook panels: the provider picker and the usage dashboard (ipywidgets).

Example::

    from llmnb.widgets import ProviderPicker, UsageDashboard

    picker = ProviderPicker()            # or %llm picker
    picker.value                         # PickerValue(profile='demo', model='mock-1', ...)
    picker.observe(lambda change: print(change["new"]), names="value")
    llm = picker.client()                # an LLMClient for the current choice

    UsageDashboard()                     # or %llm dashboard: totals, table, plot, CSV export

Importing this module imports ipywidgets; pandas and matplotlib load when a dashboard
first draws.
"""

from __future__ import annotations

from llmnb.notebook.widgets import PickerValue, ProviderPicker, UsageDashboard

__all__ = ["PickerValue", "ProviderPicker", "UsageDashboard"]
