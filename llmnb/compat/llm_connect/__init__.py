"""``llm_connect`` on llmnb: ``from llm_connect import X`` becomes
``from llmnb.compat.llm_connect import X``.

Example::

    from llmnb.compat.llm_connect import create_llm_client_from_profile
    client = create_llm_client_from_profile()            # config/settings.yaml + .env
    client.generate([{"role": "user", "content": "hi"}], 0.2, 100, 30)
"""

from __future__ import annotations

from llmnb.compat.llm_connect.utils import (
    create_llm_client_from_profile,
    list_providers,
    register_provider,
)

__all__ = ["create_llm_client_from_profile", "list_providers", "register_provider"]
