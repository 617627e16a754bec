"""bill.sh customers service: who is billed, in which currency and timezone."""
