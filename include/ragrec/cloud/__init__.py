"""Alibaba Cloud control planes through their official SDKs (PAI-EAS, ...)."""
