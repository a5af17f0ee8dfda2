"""What people did, as labels: the search log of ``<alias>-events`` read into sessions
(``sessions``), position bias fitted from it (``propensity``), per (query, document)
relevance estimates corrected for that bias and the results skipped above a click
(``labels``). ``exploration`` is the slice of ``/search`` answers that swaps one shown
result with a lower one, which is what makes the bias measurable. Scoring a ranking by
these labels is evaluation's (``eval.counterfactual``, ``eval.traffic``)."""
