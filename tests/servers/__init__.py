"""Protocol-level local servers standing in for services that are unreachable here."""
