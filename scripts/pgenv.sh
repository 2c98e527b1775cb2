# Sourced by the test and demo scripts: where PostgreSQL 15 is, and how to
# run a command as the unprivileged user that owns the test servers.
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PG_BINDIR=$("$PG_CONFIG" --bindir)
PGXS_SRC=$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")
PG_REGRESS=$PGXS_SRC/test/regress/pg_regress
PG_PERL=$PGXS_SRC/test/perl

# PostgreSQL refuses to run as root: as root, servers and tests run as postgres.
if [ "$(id -u)" -eq 0 ]; then
	RUN_AS=(runuser -u postgres --)
	TEST_USER=postgres
else
	RUN_AS=()
	TEST_USER=$(id -un)
fi

# A scratch directory the test user owns, with copies of what it reads.
make_workdir() {
	local dir
	dir=$(mktemp -d "${TMPDIR:-/tmp}/dragonraft-$1.XXXXXX")
	chmod 755 "$dir"
	echo "$dir"
}
