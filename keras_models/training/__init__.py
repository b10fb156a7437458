"""Training: the recipe and run settings, named recipes, compilation, one fit, one round, a whole
run over rounds, its results, and the processes and strategies that spread it."""
