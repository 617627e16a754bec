-- Each tenant's tax rates by jurisdiction: a country, or a region of it ('' = the whole
-- country). A rate is a fraction (0.2 = 20 %). No row: invoices carry no tax.
CREATE TABLE tax_rates (
    tenant_id TEXT NOT NULL,
    country   TEXT NOT NULL,
    region    TEXT NOT NULL DEFAULT '',
    rate      NUMERIC NOT NULL,
    PRIMARY KEY (tenant_id, country, region)
);
