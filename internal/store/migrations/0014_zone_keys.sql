-- The DNSSEC keys the service has signed its zones with (zone and key tag,
-- when first seen). Their DS records sit in the parent zones and in
-- resolvers' trust anchors, so a key that goes missing must not be
-- replaced silently: a start that finds a recorded zone's key files gone
-- refuses instead of making a new key (both zones would turn bogus).
CREATE TABLE zone_keys (
    zone     TEXT    NOT NULL,
    key_tag  INTEGER NOT NULL,
    first_ns BIGINT  NOT NULL, -- unix nanoseconds UTC
    PRIMARY KEY (zone, key_tag)
);
