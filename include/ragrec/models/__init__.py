"""Model versions: layout, loading, training, evaluation, registry."""
