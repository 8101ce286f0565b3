-- The vassals of a fleet of Emperors (README "Running a fleet"; the fleet e2e tests load
-- this very file). One row per vassal per host: host h1's Emperor runs the rows WHERE
-- host = 'h1'. The pg monitor reads name, config and EXTRACT(epoch FROM ts), in that order.
CREATE TABLE vassals (
    host   text        NOT NULL,
    -- The monitor skips, silently, a name that does not end in .ini (or .xml, .yml,
    -- .yaml, .js, .json); only .ini vassals can run in Docker. Refuse the others here.
    name   text        NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*\.ini$'),
    -- The config is pushed to the vassal whole: keep it under 64 KiB.
    config text        NOT NULL CHECK (octet_length(config) < 65536),
    -- Seen in whole seconds: a change must move ts forward by at least one second.
    ts     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, name)
);
-- The primary key (host, name) is the index each Emperor's WHERE host = ... poll uses.
