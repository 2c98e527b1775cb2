# Review 21: a crash that loses the WAL tail (the local commits of
# replicated writes are asynchronous: DESIGN §4).  wal_writer_delay is 10 s
# so that nothing but dragonraft flushes the WAL in the window.
# - a follower that applied entries and crashes at once: after its restart
#   every row is there again (replayed from the log above the durable
#   applied index);
# - a leader that acknowledged a COMMIT and crashes at once: the same;
# - a transaction that wrote a replicated table and a large object: the
#   large object is not in the log, so its COMMIT must be durable when
#   acknowledged (as for a write of a plain table); after the crash both
#   are there, or the acknowledged transaction is half lost.
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
	ok($c->flushed_just_now($c->id_of($N), "INSERT INTO t VALUES (" . $warm++ . ", 'warm')"),
		'a write, then the WAL flushed up to it');
	return;
}
$c->create_group(1);
my $l = $c->leader(1);
my $L = $c->node($l);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE t (id int PRIMARY KEY, v text)')});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$c->node($_)->safe_psql('postgres', q{CREATE TABLE plain (id int PRIMARY KEY)}) for $c->ids;
ok($c->caught_up(1), 'table t replicated');

# 1. A follower applies and crashes before any WAL flush.
my ($f) = grep { $_ != $l } $c->ids;
$L->safe_psql('postgres', q{INSERT INTO t SELECT g, 'f' FROM generate_series(1, 100) g});
ok($c->wait_until("node $f to apply the rows", sub {
	($c->poll($f, 'SELECT count(*) FROM t') // 0) == 100 }), 'the follower applied 100 rows');
ok($c->crash($f), "follower $f crashed at once");
$c->node($f)->start;
ok($c->caught_up(1), "follower $f restarted and caught up");
is($c->query($f, 'SELECT count(*) FROM t'), '100', 'the follower has every row again');

# 2. The leader acknowledges a COMMIT and crashes at once.
$l = $c->leader(1);
$L = $c->node($l);
flushed_just_now($L);
$L->safe_psql('postgres', q{INSERT INTO t VALUES (1001, 'leader')});
ok($c->crash($l), "leader $l crashed right after the COMMIT");
$c->node($l)->start;
ok($c->caught_up(1), 'caught up after the leader restarted');
for my $id ($c->ids)
{
	is($c->query($id, 'SELECT count(*) FROM t WHERE id = 1001'), '1', "node $id has the acknowledged row");
}

# 3. A replicated row and a plain table's row in one transaction (the
# control: the plain write keeps the COMMIT synchronous), then a replicated
# row and a large object.
$l = $c->leader(1);
$L = $c->node($l);
flushed_just_now($L);
$L->safe_psql('postgres', q{BEGIN; INSERT INTO t VALUES (2001, 'plain'); INSERT INTO plain VALUES (1); COMMIT});
ok($c->crash($l), "leader $l crashed right after a COMMIT with a plain write");
$c->node($l)->start;
ok($c->caught_up(1), 'caught up');
is($c->query($l, 'SELECT (SELECT count(*) FROM t WHERE id = 2001)::text || (SELECT count(*) FROM plain)::text'),
	'11', 'the replicated row and the plain row are both there');

$l = $c->leader(1);
$L = $c->node($l);
flushed_just_now($L);
$L->safe_psql('postgres', q{BEGIN; INSERT INTO t VALUES (3001, 'lo'); SELECT lo_from_bytea(4242, 'hello'); COMMIT});
ok($c->crash($l), "leader $l crashed right after a COMMIT with a large object");
$c->node($l)->start;
ok($c->caught_up(1), 'caught up');
is($c->query($l, q{SELECT (SELECT count(*) FROM t WHERE id = 3001) || ' ' ||
	coalesce((SELECT convert_from(lo_get(4242), 'UTF8') FROM pg_largeobject_metadata WHERE oid = 4242), 'lost')}),
	'1 hello', 'the replicated row and the large object of one acknowledged transaction are both there');

$c->node($_)->stop('fast') for $c->running;
done_testing();
