"""Studies: experiments built on the dataset-run engine, not part of it — the sanity checks
(model and data randomisation, their boxes and report), the choice of the default boxes, the
shapes report, and the benchmark timer. May import every package below it, `runs` included;
nothing below imports `studies`."""
