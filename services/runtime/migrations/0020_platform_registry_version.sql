-- A counter that moves on every change to the platform registry, so that a process can keep
-- the registry in memory and check it is current with one read per batch instead of
-- querying domains and ranges for every case.
CREATE TABLE platform_registry_version (
    single boolean PRIMARY KEY DEFAULT true CHECK (single),
    version bigint NOT NULL
);
INSERT INTO platform_registry_version (version) VALUES (1);

CREATE FUNCTION platform_registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE platform_registry_version SET version = version + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER platforms_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON platforms
    FOR EACH STATEMENT EXECUTE FUNCTION platform_registry_changed();
CREATE TRIGGER platform_domains_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON platform_domains
    FOR EACH STATEMENT EXECUTE FUNCTION platform_registry_changed();
CREATE TRIGGER platform_ranges_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON platform_ranges
    FOR EACH STATEMENT EXECUTE FUNCTION platform_registry_changed();
