"""The notebook layer: the ``%%llm`` / ``%llm`` magics (``%load_ext llmnb``) and widgets.

``llmnb.notebook.magics`` holds :class:`~llmnb.notebook.magics.LLMMagics`; the private
modules beside it are its parts (options, interpolation, clients, rendering, commands).
Nothing is imported here, so that loading the extension stays light. It may import every
layer below it (``batch``, ``client`` and down); only the package root imports it.
"""
