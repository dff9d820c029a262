-- The warehouse login the pipeline gets (WAREHOUSE_DSN): it reads the upstream tables and can
-- change nothing. Run it as the owner of the upstream tables (or a superuser), in the warehouse
-- database:
--   psql "$ADMIN_DSN" -v ON_ERROR_STOP=1 -v role=ml_pipeline_reader -v password="$PASSWORD" \
--        -v schema=public -v owner=<role that creates the upstream tables> \
--        -f deployments/postgres/readonly_role.sql
-- then WAREHOUSE_DSN=postgresql://ml_pipeline_reader:<password>@<host>/<database> and
-- WAREHOUSE_SCHEMA=<schema>. tests/deployments/test_warehouse_readonly_role.py runs this file on
-- the real PostgreSQL and shows the role reads the upstream table and cannot write it.

-- A login role and nothing more: no superuser, no role or database creation, no replication.
CREATE ROLE :"role" LOGIN PASSWORD :'password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- Every transaction it opens is read-only, a second guard behind the grants below.
ALTER ROLE :"role" SET default_transaction_read_only = on;

-- Connect to this database, look up names in the schema, read its tables: the whole grant set.
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'role') \gexec
GRANT USAGE ON SCHEMA :"schema" TO :"role";
GRANT SELECT ON ALL TABLES IN SCHEMA :"schema" TO :"role";
-- Tables the owner creates later in the schema are readable too, and only readable.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA :"schema" GRANT SELECT ON TABLES TO :"role";

-- Every role holds PUBLIC's rights too: before PostgreSQL 15 those include creating objects
-- in the public schema. Writers that need it get CREATE by name, never through PUBLIC.
REVOKE CREATE ON SCHEMA :"schema" FROM PUBLIC;
