"""What the prompt and command helpers see of the magics object that calls them.

``_ask.py`` and ``_commands.py`` sit below ``magics.py`` (which imports them), so they
name the :class:`~llmnb.notebook.magics.LLMMagics` instance by this protocol instead of
importing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from llmnb.conversation import SessionManager
    from llmnb.notebook._clients import ClientCache

__all__ = ["MagicsHost"]


class MagicsHost(Protocol):
    """The state and settings of ``LLMMagics`` that the helpers use."""

    debug: bool
    clients: ClientCache
    chats: dict[str, SessionManager]
    default_format: Any
    show_footer: Any
    stream_throttle: Any
    shell: InteractiveShell | None

    @property
    def llm(self) -> Callable[..., Any]: ...

    @property
    def ip(self) -> InteractiveShell: ...

    def conversation(self, name: str) -> SessionManager: ...
