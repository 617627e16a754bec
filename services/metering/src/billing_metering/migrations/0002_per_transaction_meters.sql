-- Whether a plan prices the meter transaction by transaction (a percentage price): the
-- period usage of such a meter carries each event's value, in order, for rating.
ALTER TABLE meter_references ADD COLUMN per_transaction BOOLEAN NOT NULL DEFAULT false;
