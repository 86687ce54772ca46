-- Removes everything 0001 created. Roles are cluster-wide and outlive databases, so
-- they are created and kept by `frontdesk` itself, not by migrations.
drop schema app cascade;
