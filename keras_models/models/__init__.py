"""The networks: the architecture registry, the model spec the builder reads, the project's
registered layers, and the functional builder."""
