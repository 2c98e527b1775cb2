# A member that refused a table takes it after all (resend_table): node 3
# had a t of its own, with a row, when the group replicated t, so it refused
# t and guarded it.  Its hint says what to do: the DBA renames node 3's t
# and its index,
# and resend_table('t') on the leader sends t's definition and rows through
# the log again, under t's table id.  Node 3 then has the group's rows and
# follows later writes; nodes 1 and 2, which replicate t already, are
# unchanged (no rows doubled), and node 3's own table is left as it was.
# A table that is not replicated, or a resend on a follower, is refused; a
# resend racing a command that changes the table is skipped by every member.
# A table that a member makes from a registration gets the leader's owner,
# privileges, row level security and policies, triggers and comments: after
# a transfer, the application's role writes it on the new leader.  A role
# the member lacks stops its apply until it exists; a member that kept its
# own empty table keeps its owner and says so.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
my ($N1, $N2, $N3) = map { $c->node($_) } 1 .. 3;
$N3->safe_psql('postgres',
	q{CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'node 3 own row')});
$c->create_group(1);
my $l = $c->leader(1);
ok($l, 'group 1 has a writable leader');
ok($c->lead(1, 1), 'node 1 leads');
$_->safe_psql('postgres', 'CREATE TABLE t (id int PRIMARY KEY, v text)') for ($N1, $N2);
$N1->safe_psql('postgres', q{INSERT INTO t SELECT g, 'group row ' || g FROM generate_series(1, 50) g});
my $offset = -s $N3->logfile;
$N1->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$N1->safe_psql('postgres', q{INSERT INTO t SELECT g, 'group row ' || g FROM generate_series(51, 60) g});
ok($c->caught_up(1), 'the members caught up');
is($N3->safe_psql('postgres', q{SELECT state FROM dragonraft.tables WHERE relid = 't'::regclass}),
	'refused', 'node 3 refused t (it has a row of its own)');
like(slurp_file($N3->logfile, $offset),
	qr/HINT:  Drop the table on this node \(or rename it and its indexes\), then run dragonraft.resend_table\('public.t'\) on the group's leader/,
	"node 3's warning says how to take the table");
my ($st, $err) = $c->sql_error(3, q{INSERT INTO t VALUES (2, 'local')});
is($st, '55000', "node 3 refuses local writes to its refused t");
like($err, qr/HINT:  Drop the table on this node \(or rename it and its indexes\), then run dragonraft.resend_table/,
	'and its hint names resend_table');

# Run $sql on node 1 in an open transaction, then the command $command
# through node 2 (it lands before the transaction's entry in the log); once
# node 1's apply waits for the session's lock on $table, COMMIT.  Returns
# the session's stderr.
sub race_command
{
	my ($sql, $table, $command) = @_;
	my ($in, $out, $err) = ("BEGIN;\n$sql;\nSELECT 'read';\n", '', '');
	my $h = IPC::Run::start([ 'psql', '-XAtq', '-v', 'VERBOSITY=verbose', '-d', $N1->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err);
	$h->pump until $out =~ /read/;
	$c->node(2)->safe_psql('postgres', "SELECT dragonraft.execute(1, '$command')");
	ok($c->wait_until("node 1's apply to wait for the session's lock on $table", sub {
		$N1->safe_psql('postgres', q{SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE NOT l.granted AND a.backend_type = 'dragonraft apply'}) ne '0' }),
		"node 1's apply waits for the session's lock on $table");
	$in .= "COMMIT;\n";
	$h->finish;
	return $err;
}

# The errors first.
$N1->safe_psql('postgres', 'CREATE TABLE plain (id int PRIMARY KEY)');
($st, $err) = $c->sql_error(1, q{SELECT dragonraft.resend_table('plain')});
is($st, '55000', 'resend_table of a table that is not replicated is refused');
like($err, qr/table "plain" is not replicated on this node/, 'and says so');
($st, $err) = $c->sql_error(2, q{SELECT dragonraft.resend_table('t')});
is($st, '25006', 'resend_table on a follower is refused with 25006');

# The DBA follows the hint.
$N3->safe_psql('postgres', 'ALTER TABLE t RENAME TO t_own; ALTER INDEX t_pkey RENAME TO t_own_pkey');
my $index1 = $N1->safe_psql('postgres', q{SELECT table_id FROM dragonraft.replicated_tables WHERE relid = 't'::regclass});

# A resend racing a command that changes t: the command (from node 2) comes
# first in the log, so the rows and definition the resend read are older
# than t's at its place in the log.  Its session fails with 40001 and every
# member skips it (node 3 would otherwise make t without the new column).
$offset = -s $N3->logfile;
$err = race_command(q{SELECT dragonraft.resend_table('t')}, 't',
	'ALTER TABLE IF EXISTS t ADD COLUMN z int NOT NULL DEFAULT 7');
like($err, qr/ERROR:  40001:/, 'the resend racing the command fails with 40001');
ok($c->caught_up(1), 'the members applied the command and the resend');
like(slurp_file($N3->logfile, $offset), qr/dragonraft skipped entry \d+ of group 1: the command at entry \d+ changed its table after it was read/,
	'node 3 skipped the resend built before the command');
is($N3->safe_psql('postgres', q{SELECT count(*) FROM dragonraft.replicated_tables WHERE state = 'replicated'}), '0',
	'node 3 still does not replicate t');

$N1->safe_psql('postgres', q{SELECT dragonraft.resend_table('t')});
ok($c->caught_up(1), 'the members applied the resent registration');
is($N3->safe_psql('postgres', q{SELECT state || ' ' || table_id FROM dragonraft.replicated_tables WHERE relid = 't'::regclass}),
	"replicated $index1", 'node 3 replicates t now, under its table id');
is($c->contents(3, 't', 'id'), $c->contents(1, 't', 'id'), "node 3's t has the group's 60 rows");
is($N3->safe_psql('postgres', q{SELECT count(*) FROM t_own}), '1', "node 3's own table keeps its row");
$N3->safe_psql('postgres', q{INSERT INTO t_own VALUES (2, 'mine again')});
is($N3->safe_psql('postgres', q{SELECT count(*) FROM t_own}), '2', "and takes local writes again (its guard is gone)");
is($N3->safe_psql('postgres', q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass AND tgname = 'dragonraft_refused'}),
	'0', 'the new t carries no guard');
for my $id (1, 2)
{
	is($c->node($id)->safe_psql('postgres', 'SELECT count(*) FROM t'), '60',
		"node $id, which replicated t already, has its 60 rows, none doubled");
}

# Later writes reach node 3's t.
$N1->safe_psql('postgres', q{UPDATE t SET v = 'changed' WHERE id <= 5; DELETE FROM t WHERE id > 55; INSERT INTO t VALUES (100, 'after')});
ok($c->caught_up(1), 'the members applied the later writes');
is($c->contents($_, 't', 'id'), $c->contents(1, 't', 'id'), "node $_ has the same t as node 1") for (2, 3);

# A replicate_table racing a command, the same way: the command comes first in
# the log, after replicate_table read u's definition.  The table is not
# replicated yet, so any command there counts: the session fails with 40001,
# every member skips the registration (none refuses u, none replicates it), and
# the retry replicates u with the command's column on every member.
$N1->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE public.u (id int PRIMARY KEY)')});
ok($c->caught_up(1), 'every member has u');
$offset = -s $N3->logfile;
$err = race_command(q{SELECT dragonraft.replicate_table('u', 1)}, 'u',
	'ALTER TABLE public.u ADD COLUMN z int NOT NULL DEFAULT 7');
like($err, qr/ERROR:  40001: could not serialize access: a command run through dragonraft.execute in group 1 came between replicate_table and its entry/,
	'the replicate_table racing the command fails with 40001');
ok($c->caught_up(1), 'the members applied the command and the registration');
like(slurp_file($N3->logfile, $offset), qr/dragonraft skipped entry \d+ of group 1: the command at entry \d+ came after its table was read/,
	'node 3 skipped the registration built before the command');
for my $id (1 .. 3)
{
	is($c->node($id)->safe_psql('postgres',
		q{SELECT count(*) FROM dragonraft.replicated_tables WHERE relid = 'u'::regclass}),
		'0', "node $id neither replicates nor refused u");
}
$N1->safe_psql('postgres', q{SELECT dragonraft.replicate_table('u', 1)});
$N1->safe_psql('postgres', q{INSERT INTO u (id) VALUES (1)});
ok($c->caught_up(1), 'the members applied the retried registration');
for my $id (1 .. 3)
{
	is($c->node($id)->safe_psql('postgres',
		q{SELECT state || ' ' || (SELECT string_agg(id || ':' || z, ',') FROM u)
		  FROM dragonraft.replicated_tables WHERE relid = 'u'::regclass}),
		'replicated 1:7', "node $id replicates u with the command's column");
}
# ---- replicate_table carries what a table has besides its definition ----
# A table made on the leader outside the log, owned by a role of the
# application, with privileges of another role (on the table, a column and
# its sequence), row level security and a policy, a trigger and comments:
# every member makes it from the registration (entry type 9) with all of
# them, as resend_table and a snapshot's load do.  After a transfer of the
# leadership the application's role, not a superuser, writes it on the new
# leader; its trigger fires there only (not again where the rows are
# applied), and the policy holds on every member.
for my $id (1 .. 3)
{
	$c->node($id)->safe_psql('postgres', q{CREATE ROLE app_owner LOGIN; CREATE ROLE app_reader LOGIN});
}
$N1->safe_psql('postgres', q{SELECT dragonraft.execute(1, $cmd$CREATE FUNCTION public.stamp() RETURNS trigger
  LANGUAGE plpgsql AS $f$BEGIN NEW.touched := NEW.touched + 1; RETURN NEW; END$f$$cmd$)});
$N1->safe_psql('postgres', q{
CREATE TABLE acct (id serial PRIMARY KEY, v text NOT NULL, touched int NOT NULL DEFAULT 0);
ALTER TABLE acct OWNER TO app_owner;
GRANT SELECT, UPDATE (v) ON acct TO app_reader;
GRANT SELECT ON SEQUENCE acct_id_seq TO app_reader;
ALTER TABLE acct ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible ON acct FOR SELECT TO app_reader USING (v <> 'secret');
CREATE TRIGGER acct_stamp BEFORE INSERT OR UPDATE ON acct FOR EACH ROW EXECUTE FUNCTION stamp();
COMMENT ON TABLE acct IS 'accounts of the application';
COMMENT ON COLUMN acct.v IS 'what it holds';
INSERT INTO acct (v) VALUES ('open'), ('secret');
SELECT dragonraft.replicate_table('acct', 1);
});
ok($c->caught_up(1), 'the members applied the registration of acct');

# What acct has besides its definition, as the catalogs say it (privileges in
# order: the extras grant the owner's in the order of its name among the
# grantees, which may differ from the order of the leader's relacl).
my $extras_sql = q{
SELECT concat_ws(E'\n', 'owner ' || pg_get_userbyid(c.relowner), 'acl ' || (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(c.relacl) a),
  'rls ' || c.relrowsecurity || ' ' || c.relforcerowsecurity,
  (SELECT string_agg(format('policy %s %s %s %s %s', policyname, permissive, roles, cmd, qual), E'\n' ORDER BY policyname)
     FROM pg_policies WHERE schemaname = 'public' AND tablename = 'acct'),
  (SELECT string_agg(format('trigger %s %s', pg_get_triggerdef(t.oid), t.tgenabled), E'\n' ORDER BY t.tgname)
     FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal AND t.tgname NOT LIKE 'dragonraft%'),
  'comment ' || obj_description(c.oid, 'pg_class'), 'column comment ' || col_description(c.oid, 2),
  (SELECT 'sequence ' || pg_get_userbyid(s.relowner) || ' ' || (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(s.relacl) a) FROM pg_class s
    WHERE s.oid = pg_get_serial_sequence('public.acct', 'id')::regclass))
FROM pg_class c WHERE c.oid = 'public.acct'::regclass};
my $want = $N1->safe_psql('postgres', $extras_sql);
like($want, qr/^owner app_owner\nacl app_owner=arwdDxt\/app_owner,app_reader=r\/app_owner\nrls true false\npolicy visible PERMISSIVE \{app_reader\} SELECT \(v <> 'secret'::text\)\ntrigger CREATE TRIGGER acct_stamp BEFORE INSERT OR UPDATE ON public.acct FOR EACH ROW EXECUTE FUNCTION stamp\(\) O\ncomment accounts of the application\ncolumn comment what it holds\nsequence app_owner app_owner=rwU\/app_owner,app_reader=r\/app_owner$/,
	"node 1's acct has its owner, privileges, row level security, policy, trigger and comments");
for my $id (2, 3)
{
	is($c->node($id)->safe_psql('postgres', $extras_sql), $want,
		"node $id made acct with the leader's owner, privileges, policy, trigger and comments");
	is($c->node($id)->safe_psql('postgres', q{SELECT attacl::text FROM pg_attribute WHERE attrelid = 'acct'::regclass AND attname = 'v'}),
		'{app_reader=w/app_owner}', "node $id gave app_reader its column privilege");
	is($c->node($id)->safe_psql('postgres', q{SELECT dragonraft.table_extras('acct')}),
		$N1->safe_psql('postgres', q{SELECT dragonraft.table_extras('acct')}), "node ${id}'s table_extras('acct') is node 1's");
}
is($c->contents($_, 'acct', 'id'), '(1,open,1);(2,secret,1)',
	"node $_ has acct's rows as node 1 wrote them (its trigger fired there once)") for (1 .. 3);

# Run sql on node id as role; its exit code, stdout and stderr.
sub as_role
{
	my ($id, $role, $sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = $c->node($id)->psql('postgres', $sql, stdout => \$out, stderr => \$err,
		extra_params => [ '-U', $role ]);
	return ($rc, $out, $err);
}

my ($rc, $out);
($rc, $out, $err) = as_role(3, 'app_reader', q{SELECT string_agg(v, ',' ORDER BY id) FROM acct});
is("$rc $out", '0 open', "on follower 3, app_reader reads the rows acct's policy shows it");

ok($c->lead(1, 2), 'node 2 leads group 1 now');
($rc, $out, $err) = as_role(2, 'app_owner',
	q{INSERT INTO acct (v) VALUES ('after the transfer'); UPDATE acct SET v = 'opened' WHERE v = 'open'});
is($rc, 0, 'app_owner, not a superuser, writes acct on the new leader') or diag $err;
($rc, $out, $err) = as_role(2, 'app_reader', q{INSERT INTO acct (v) VALUES ('no')});
like($err, qr/permission denied for table acct/, 'app_reader may not insert there, as on node 1');
($rc, $out, $err) = as_role(2, 'app_reader', q{UPDATE acct SET v = 'seen' WHERE v = 'secret'});
is("$rc $out $err", '0  ', "app_reader's UPDATE of a row its policy hides changes nothing there");
ok($c->caught_up(1), 'the members applied the writes of the new leader');
is($c->contents($_, 'acct', 'id'), '(1,opened,2);(2,secret,1);(3,"after the transfer",1)',
	"node $_ has acct as node 2 wrote it (its trigger fired there only)") for (1 .. 3);
for my $id (1 .. 3)
{
	($rc, $out, $err) = as_role($id, 'app_reader', q{SELECT string_agg(v, ',' ORDER BY id) FROM acct});
	is("$rc $out", '0 opened,after the transfer', "on node $id app_reader sees what the policy shows it");
}

# A role that the extras name and a member lacks: that member's apply of the
# group stops at the registration with an error that names the role (as a
# resend's and a snapshot's load do), and goes on once the role exists.
$_->safe_psql('postgres', 'CREATE ROLE auditor') for ($N1, $N2);
$N2->safe_psql('postgres', q{CREATE TABLE ledger (id int PRIMARY KEY); GRANT SELECT ON ledger TO auditor;
  SELECT dragonraft.replicate_table('ledger', 1)});
my $error;
ok($c->wait_until("node 3's apply to fail at ledger", sub {
	$error = $N3->safe_psql('postgres', q{SELECT state || ': ' || coalesce(error, '') FROM dragonraft.status WHERE group_id = 1});
	$error =~ /^apply_failed: / }), "node 3's apply of group 1 stops at ledger's registration");
like($error, qr/table public\.ledger, registered in group 1 at entry \d+ could not get its owner, privileges, row level security, policies, triggers or comments here: role "auditor" does not exist/,
	"and its error names the table and the missing role");
is($N3->safe_psql('postgres', q{SELECT to_regclass('ledger') IS NULL}), 't', 'node 3 has no ledger meanwhile');
$N3->safe_psql('postgres', 'CREATE ROLE auditor');
my $ledger_acl = q{SELECT string_agg(a::text, ',' ORDER BY a::text) FROM pg_class c, unnest(c.relacl) a
  WHERE c.oid = to_regclass('public.ledger')};
is($N2->safe_psql('postgres', $ledger_acl), 'auditor=r/postgres,postgres=arwdDxt/postgres', "ledger's privileges on the leader");
ok($c->wait_until('node 3 to take ledger', sub {
	$N3->safe_psql('postgres', q{SELECT state FROM dragonraft.status WHERE group_id = 1}) eq 'ok'
	  && $N3->safe_psql('postgres', $ledger_acl) eq $N2->safe_psql('postgres', $ledger_acl) }),
	'once the role exists there, node 3 makes ledger with its privileges');
ok($c->caught_up(1), 'and every member goes on');

# A member that has the table already (empty, defined alike) keeps its own
# owner and privileges, and says that they differ from the leader's.
$_->safe_psql('postgres', q{CREATE TABLE kept (id int PRIMARY KEY); ALTER TABLE kept OWNER TO app_owner}) for ($N1, $N2);
$N3->safe_psql('postgres', q{CREATE TABLE kept (id int PRIMARY KEY)});
$offset = -s $N3->logfile;
my $offset1 = -s $N1->logfile;
$N2->safe_psql('postgres', q{SELECT dragonraft.replicate_table('kept', 1)});
ok($c->caught_up(1), 'the members applied the registration of kept');
is(join(' ', map { $c->node($_)->safe_psql('postgres',
	q{SELECT t.state || ':' || pg_get_userbyid(c.relowner) FROM dragonraft.tables t JOIN pg_class c ON c.oid = t.relid WHERE c.relname = 'kept'}) } 1 .. 3),
	'replicated:app_owner replicated:app_owner replicated:postgres', 'node 3 kept its own kept, with its owner');
like(slurp_file($N3->logfile, $offset),
	qr/WARNING:  dragonraft table public\.kept of group 1 keeps its own owner, privileges, row level security, policies, triggers or comments on this node, which differ from the leader's/,
	'node 3 warns that they differ from the leader\'s');
unlike(slurp_file($N1->logfile, $offset1), qr/keeps its own owner/, 'node 1, whose kept has the same, does not');
done_testing();
