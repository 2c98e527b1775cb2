# rev66: join_group on a member whose apply fails, once the apply worker's
# back-off between tries reached its 30 s.  The call waits for the apply's
# tries (lead 07dc19a), but its bound for a log that does not grow (60
# election timeouts, 30 s here) ended it first, with "receives no entries
# ... Remove it on the leader (remove_member) and leave_group here": the
# member holds every entry, its apply fails, and removing it is not the
# cure.  With the cause left, the call must end with the apply's error
# ("cannot apply", after two tries that fail while it waits); with the
# cause gone, it must wait for the next try and return.
# Part 2: a server given another's dragonraft.data_dir by mistake deletes
# none of the other's snapshot files, and its engine worker's FATAL says
# another process uses the LogDB (its hint said to move it aside, as for a
# damaged one: that server's LogDB).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3);
$c->create_group(1, 1, 2, 3);
my $l = $c->leader(1);
ok($l, "group 1 has a writable leader (node $l)");
my $L = $c->node($l);
my ($f) = grep { $_ != $l } 1 .. 3;
my $F = $c->node($f);
my $others = $c->members(grep { $_ != $f } 1 .. 3);
# A trigger of the group (ENABLE ALWAYS: the apply worker fires it) that
# fails on a node where public.fail_switch exists.
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$
CREATE TABLE t (id int PRIMARY KEY);
CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN
     IF to_regclass(''public.fail_switch'') IS NOT NULL THEN
       RAISE EXCEPTION ''boom %'', NEW.id;
     END IF;
     RETURN NEW;
   END';
CREATE TRIGGER boom BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION boom();
ALTER TABLE t ENABLE ALWAYS TRIGGER boom;
$$)});
ok($c->caught_up(1), 'the table and its trigger are made everywhere');
$L->safe_psql('postgres', q{INSERT INTO t VALUES (1); SELECT dragonraft.replicate_table('t', 1)});
ok($c->caught_up(1), 'nodes 1-3 replicate t');
$F->safe_psql('postgres', 'CREATE TABLE public.fail_switch ()');
$L->safe_psql('postgres', 'INSERT INTO t VALUES (2)');
my $errors = "SELECT apply_errors FROM dragonraft.stat_groups WHERE group_id = 1";
# Tries 1, 2, 4, 8 and 16 s apart, then 30 s: after the fifth the next is 16
# s away, the one after it 30 s.
ok($c->wait_until("node $f to fail to apply group 1 five times", sub { $c->poll($f, $errors) >= 5 }, 120),
	"node ${f}'s apply of group 1 failed five times");

# The cause left: the apply's error, not "receives no entries".  The call
# starts before the sixth try (16 s away), which it counts as its first
# failure; its second, the seventh try, is 30 s after it, with no entry
# received meanwhile: longer than the bound for a log that does not grow
# (30 s), which ended the call before the fix.
my ($st, $msg) = $c->sql_error($f,
	"SET statement_timeout = '150s'; SELECT dragonraft.join_group(1, '$others')");
is($st, '55000', 'join_group on a member whose apply keeps failing ends');
like($msg, qr/node $f cannot apply the entries of group 1.*boom 2/s, 'with the apply\'s error');
unlike($msg, qr/receives no entries/, 'not a log that does not grow');
note $msg;
like($msg, qr/NOTICE:.*next try/s, 'its notices say it waits for the apply\'s next try');

# The cause gone right after a try failed (the call above ended at its
# second failing try, the seventh; the next one is 30 s away): join_group
# waits for it and returns.
ok($c->poll($f, $errors) >= 7, "node ${f}'s apply failed again");
$F->safe_psql('postgres', 'DROP TABLE public.fail_switch');
($st, $msg) = $c->sql_error($f,
	"SET statement_timeout = '150s'; SELECT dragonraft.join_group(1, '$others')");
is($st, '', 'join_group once the cause is gone waits for the next try, and returns');
like($msg, qr/caught up with group 1/, "node $f caught up");
is($c->contents($f, 't', 'id'), '(1);(2)', 'with the group\'s rows');

# Part 2: node $f started by mistake with node $l's dragonraft.data_dir.  Its
# engine worker cannot open the LogDB there (node $l's engine worker holds
# its lock) and exits, again every few seconds; it must not delete node
# $l's snapshot files first (an export being made or sent, a received
# snapshot being installed).  Before, the files of "a previous engine
# worker" were removed before the LogDB's open.
my $shared = $L->data_dir . '/dragonraft';
my @files = ("snap-$l-1-abc-1", 'snap-g1-n3-i100-t3.snap.recovering');
$F->stop('fast');
for my $name (@files)
{
	open(my $fh, '>', "$shared/snapshots/$name") or die "$name: $!";
	print $fh "in use by node $l\n";
	close($fh);
	chmod(0600, "$shared/snapshots/$name");
}
my $log_at = -s $F->logfile;
$F->append_conf('postgresql.conf', "dragonraft.data_dir = '$shared'\n");
$F->start;
ok($c->wait_until("node ${f}'s engine worker to fail at node ${l}'s LogDB lock", sub {
	my @m = substr(PostgreSQL::Test::Utils::slurp_file($F->logfile), $log_at)
	  =~ /could not open its LogDB in "\Q$shared\E/g;
	scalar(@m) >= 1 }, 60),
	"node ${f}'s engine worker cannot open node ${l}'s LogDB");
ok(-e "$shared/snapshots/$_", "node ${l}'s $_ is still there") for @files;
# The FATAL names the process that holds the LogDB, and its hint does not say
# to move that LogDB aside, as for a damaged one.
my $epid = $L->safe_psql('postgres', 'SELECT engine_pid FROM dragonraft.node_status()');
my $flog = substr(PostgreSQL::Test::Utils::slurp_file($F->logfile), $log_at);
like($flog, qr/could not open its LogDB in "\Q$shared\E\/logdb": process $epid uses it/,
	"node ${f}'s FATAL names node ${l}'s engine worker as the LogDB's user");
like($flog, qr/HINT:  Each server needs a dragonraft.data_dir of its own/, 'its hint says why');
unlike($flog, qr/move "[^"]*" aside and start it/, 'and not to move the LogDB aside');
unlike(substr(PostgreSQL::Test::Utils::slurp_file($F->logfile), $log_at),
	qr/removed \d+ snapshot files/, "node $f removed no snapshot file");
$F->stop('fast');
unlink("$shared/snapshots/$_") for @files;
$F->append_conf('postgresql.conf', "dragonraft.data_dir = 'dragonraft'\n");
$F->start;
$L->safe_psql('postgres', 'INSERT INTO t VALUES (3)');
ok($c->caught_up(1), "node $f, its own data_dir again, catches up");
is($c->contents($f, 't', 'id'), '(1);(2);(3)', 'with the group\'s rows');

done_testing();
