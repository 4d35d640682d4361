"""Jobs: a resolved config in, a run directory out. One module per job, each exposing ``run(cfg) -> record``.

* :mod:`elsjax.jobs.sample`: samples of a score machine on real data (``elsjax sample``);
* :mod:`elsjax.jobs.train`: trains a convolutional diffusion net, resumably (``elsjax train``);
* :mod:`elsjax.jobs.calibrate`: the patch size per step that best matches a trained net (``elsjax calibrate``);
* :mod:`elsjax.jobs.evaluate`: how well machines predict a net's samples, resumably (``elsjax evaluate``);
* :mod:`elsjax.jobs.netdata`: the net a calibration or evaluation studies, and its training set.

A job checks its config (``ValueError`` naming the field), refuses an output directory it must not write into
(:class:`elsjax.runs.RunDirError`), and writes its files through :mod:`elsjax.runs`: ``config.json`` first,
``record.json`` last. The command line (:mod:`elsjax.commands`) only parses flags, calls ``run`` and prints.
"""
