"""``phrsync web``: the province's monitoring site — per facility and day, what the HIS has, what PHR holds,
and why not. Pages read :mod:`phrsync.web.model` (which reads the stores through their library APIs); they
never call PHR."""
