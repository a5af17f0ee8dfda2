"""Recommendations from behaviour: an interaction log as a user x item matrix, collaborative
item neighbours learned from it (co-consumption kNN or EASE), and the scoring of a user's
history against those neighbours."""
