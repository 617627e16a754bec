"""bill.sh gateway: the public HTTP API in front of the services (ARCHITECTURE.md §6)."""
