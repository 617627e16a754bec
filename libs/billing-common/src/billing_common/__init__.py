"""Shared foundations of every bill.sh service: money, ids, errors, events and plumbing."""
