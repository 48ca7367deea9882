"""`admpo sweep`: a study of tasks x seeds x variants, each a run directory; run by a local process pool or
on a Ray cluster. plan (the grid -> runs) -> state (what a run directory says) -> executors -> study."""
