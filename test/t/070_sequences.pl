# Review 21 F4, F5: sequences tied to no column.
# - a sequence that a command of the group made (execute()) and that
#   replicated INSERTs use by an explicit nextval() or setval() travels with
#   the change set: after a failover (kill -9 of the leader) the new leader's
#   nextval() is above every committed row's value; after a crash of the
#   leader right after acknowledged commits (their local commit is
#   asynchronous, the sequence's WAL is lost) the same on the restarted node;
# - a node-local sequence used by a replicated INSERT keeps the COMMIT
#   synchronous: after the same crash its nextval() is above the row's;
# - CYCLE sequences are refused where they would be carried: created or
#   altered through execute(), or a replicated table's column's.
# wal_writer_delay is 10 s so that nothing but dragonraft flushes the WAL in
# the window (as in 067).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3, conf => "wal_writer_delay = '10s'\n");

# dragonraft flushes the WAL up to the applied index at most once a second
# (its durable applied index): a commit right after the flush that covers a
# write stays unflushed for about a second (DragonCluster's flushed_just_now).
my $warm = 100000;
sub flushed_just_now
{
	my ($N) = @_;
	ok($c->flushed_just_now($c->id_of($N), 'INSERT INTO warm VALUES (' . $warm++ . ')'),
		'a write, then the WAL flushed up to it');
	return;
}

$c->create_group(1);
my $l = $c->leader(1);
my $L = $c->node($l);
$L->safe_psql('postgres',
	q{SELECT dragonraft.execute(1, 'CREATE TABLE inv (id int PRIMARY KEY, no bigint UNIQUE, ref bigint); CREATE TABLE warm (id int PRIMARY KEY); CREATE SEQUENCE inv_no')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('inv', 1)});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('warm', 1)});
# a node-local sequence, the same on every node
$c->node($_)->safe_psql('postgres', q{CREATE SEQUENCE loc}) for $c->ids;
ok($c->caught_up(1), 'tables replicated');

my $id = 0;
sub above_every_row
{
	my ($n, $what) = @_;
	my $r = $c->query($n, q{SELECT nextval('inv_no') || ' ' || (SELECT max(no) FROM inv)});
	my ($next, $max) = split / /, $r;
	ok($next > $max, "$what: nextval('inv_no') on node $n is $next, above every row's ($max)");
	return;
}

# (a) failover: rows take their numbers from explicit nextval() (and one
# setval()), the leader is killed, the new leader numbers on.
$L->safe_psql('postgres', qq{INSERT INTO inv VALUES (@{[++$id]}, nextval('inv_no'))}) for 1 .. 5;
$L->safe_psql('postgres', qq{BEGIN; SELECT setval('inv_no', 500); INSERT INTO inv VALUES (@{[++$id]}, nextval('inv_no')); COMMIT});
is($L->safe_psql('postgres', 'SELECT max(no) FROM inv'), '501', 'the leader numbered 1..5 and 501');
ok($c->caught_up(1), 'the followers applied them');
ok($c->crash($l), "leader $l killed");
my $old = $l;
$l = $c->leader(1);
isnt($l, $old, "node $l leads now");
above_every_row($l, 'after the failover');
$L = $c->node($l);
is($L->psql('postgres', qq{INSERT INTO inv VALUES (@{[++$id]}, nextval('inv_no'))}), 0,
	'the new leader inserts the next number');
$c->node($old)->start;
ok($c->caught_up(1), "node $old restarted and caught up");

# (b) the leader acknowledges commits and crashes at once: its sequence's WAL
# is lost, the rows come back from the log.
# (The leader's sequence is first set above the rows, durably, in a
# transaction of its own: this case does not depend on (a).)
$l = $c->leader(1);
$L = $c->node($l);
$L->safe_psql('postgres', q{SELECT setval('inv_no', (SELECT max(no) FROM inv) + 100)});
flushed_just_now($L);
$L->safe_psql('postgres', qq{INSERT INTO inv VALUES (@{[++$id]}, nextval('inv_no'))}) for 1 .. 3;
my $max = $L->safe_psql('postgres', 'SELECT max(no) FROM inv');
ok($c->crash($l), "leader $l crashed right after the COMMITs");
$c->node($l)->start;
ok($c->caught_up(1), 'caught up after the leader restarted');
is($c->query($l, 'SELECT max(no) FROM inv'), $max, "node $l has the acknowledged rows");
above_every_row($l, 'after the crash');
my $now = $c->leader(1);
above_every_row($now, 'on the leader after the crash') if $now != $l;

# (c) a node-local sequence in a replicated INSERT: the COMMIT is durable.
$l = $c->leader(1);
$L = $c->node($l);
$L->safe_psql('postgres', q{SELECT setval('loc', 1000)});
$L->safe_psql('postgres', q{CHECKPOINT});
flushed_just_now($L);
my $ref = $L->safe_psql('postgres', qq{INSERT INTO inv VALUES (@{[++$id]}, NULL, nextval('loc')) RETURNING ref});
is($ref, '1001', 'a row takes 1001 from the local sequence');
ok($c->crash($l), "leader $l crashed right after the COMMIT");
$c->node($l)->start;
ok($c->caught_up(1), 'caught up');
my ($back, $next) = split / /, $c->query($l, qq{SELECT (SELECT ref FROM inv WHERE id = $id) || ' ' || nextval('loc')});
is($back, '1001', "node $l has the row");
ok($next > 1001, "node ${l}'s local sequence went on from the row's value (nextval $next)");

# F5: CYCLE sequences are refused where they would be carried.
$l = $c->leader(1);
$L = $c->node($l);
my ($rc, $out, $err) = $L->psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE SEQUENCE cyc CYCLE')});
like($err, qr/cannot make the group's sequence "cyc" CYCLE/, 'CREATE SEQUENCE ... CYCLE through execute() refused');
($rc, $out, $err) = $L->psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER SEQUENCE inv_no CYCLE')});
like($err, qr/cannot make the group's sequence "inv_no" CYCLE/, 'ALTER SEQUENCE ... CYCLE through execute() refused');
($rc, $out, $err) = $L->psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE ser (id serial PRIMARY KEY); ALTER SEQUENCE ser_id_seq CYCLE')});
like($err, qr/cannot make the group's sequence "ser_id_seq" CYCLE/, 'a serial made CYCLE through execute() refused');
$L->safe_psql('postgres', q{CREATE SEQUENCE lcyc CYCLE; CREATE TABLE lt (id int PRIMARY KEY DEFAULT nextval('lcyc'))});
($rc, $out, $err) = $L->psql('postgres', q{SELECT dragonraft.replicate_table('lt', 1)});
like($err, qr/column "id" takes values from the CYCLE sequence "lcyc"/, 'replicate_table of a table with a CYCLE default refused');
is($L->psql('postgres', q{SELECT dragonraft.execute(1, 'ALTER SEQUENCE inv_no MAXVALUE 100000')}), 0,
	'other ALTER SEQUENCE through execute() passes');
ok($c->caught_up(1), 'caught up');

$c->node($_)->stop('fast') for $c->running;
done_testing();
