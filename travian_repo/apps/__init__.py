"""Applications built on the library, apart from its core: the ``travian-repo`` command line,
the NPC demo and the notebook helpers. The core never imports from here."""
