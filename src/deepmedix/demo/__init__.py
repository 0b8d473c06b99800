"""``deepmedix demo``: the whole DeepMedix-R1 system on the embedded default, ending in one HTML report
(:mod:`.pipeline` runs it, :mod:`.report` writes the page)."""
