-- Rated periods that arrived before what their invoice needs (`ProjectionBehind`: the
-- subscription revision current at the close, or its billing effects, not consumed yet).
-- They wait here instead of being retried in place: the consumer reads every topic in one
-- sequence, so an in-place retry blocked the very projection it waited for and ended in
-- the dead-letter topic. A parked period is billed as soon as an event of its customer is
-- projected (or when the engine re-emits the close), and then removed.
CREATE TABLE parked_periods (
    saga_id      UUID PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    period_start TIMESTAMPTZ NOT NULL,
    payload      TEXT NOT NULL,
    reason       TEXT NOT NULL,
    parked_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX parked_periods_by_customer ON parked_periods (tenant_id, customer_id, period_start);
