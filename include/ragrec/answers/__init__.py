"""Answers from the retrieved passages: sentence spans, the sentence selector, follow-up
rewriting, LLM grounding checks and the conversation store - one path that ``/ask``,
``/chat`` and ``ragrec eval answers`` all call."""
