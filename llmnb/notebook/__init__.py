"""The notebook layer: the ``%%llm`` / ``%llm`` magics (``%load_ext llmnb``) and widgets.

``llmnb.notebook.magics`` holds :class:`~llmnb.notebook.magics.LLMMagics`; the private
modules beside it are its parts (options, interpolation, clients, rendering, commands).
Nothing is imported here, so that loading the extension stays light.
"""
