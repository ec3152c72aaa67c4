"""Applications built on the library, apart from its core: the ``travian-repo`` command line,
the NPC demo, the notebook helpers and the world map. The core never imports from here; only
the entry points ``python -m travian_repo`` and ``travian_repo.notebook`` lead here."""
