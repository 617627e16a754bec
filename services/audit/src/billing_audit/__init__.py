"""bill.sh audit service: an append-only log of every state change on the platform."""
