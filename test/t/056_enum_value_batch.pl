# A command and the entries after it in one apply batch (review 19 F6): a
# value that execute() adds to an enum (ALTER TYPE ... ADD VALUE) cannot be
# used in the transaction that added it ("unsafe use of new value").  A
# follower that was behind by a few entries applied the command and the
# next change set, which uses the value, in one transaction: its apply
# failed there on every try and the group stopped on that member for good.
# A command ends its batch, as it begins one.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $c = DragonCluster->new(3, conf => "dragonraft.max_apply_lock_delay = -1\n");
$c->create_group(1);
my $l = $c->leader(1);
ok($l, 'group 1 has a writable leader');
my $L = $c->node($l);
my ($f) = grep { $_ != $l } $c->ids;
my $F = $c->node($f);
$L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$CREATE TYPE public.mood AS ENUM ('ok'); CREATE TABLE public.t (id int PRIMARY KEY, m public.mood)$$)});
$L->safe_psql('postgres', q{SELECT dragonraft.replicate_table('t', 1)});
$L->safe_psql('postgres', q{INSERT INTO t VALUES (1, 'ok')});
ok($c->caught_up(1), 'every member has the first row');

# A session on the follower holds t's lock: its apply waits at the next
# write of t, and what comes after queues behind it.
my $holder = $c->idle_reader($f, 't; LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
ok($holder, 'a session on the follower holds t');
$L->safe_psql('postgres', q{INSERT INTO t VALUES (2, 'ok')});
my $index = $L->safe_psql('postgres', q{SELECT dragonraft.execute(1, $$ALTER TYPE public.mood ADD VALUE 'meh'$$)});
like($index, qr/^\d+$/, 'the leader added the value');
$L->safe_psql('postgres', q{INSERT INTO t VALUES (3, 'meh')});
my $last = $L->safe_psql('postgres', q{SELECT commit_index FROM dragonraft.status WHERE group_id = 1});
${ $holder->{in} } .= "COMMIT;\n";
$holder->{h}->finish;

ok($c->wait_until("the follower applied entry $last", sub {
	($c->poll($f, "SELECT applied_index >= $last FROM dragonraft.status WHERE group_id = 1") // '') eq 't' }, 30),
	'the follower applied the command and the row that uses its value');
is($c->poll($f, q{SELECT state || coalesce(': ' || error, '') FROM dragonraft.status WHERE group_id = 1}),
	'ok', 'its apply goes on');
is($F->safe_psql('postgres', 'SELECT string_agg(id || m::text, \',\' ORDER BY id) FROM t'),
	'1ok,2ok,3meh', 'the follower has the three rows');
$L->safe_psql('postgres', q{INSERT INTO t VALUES (4, 'meh')});
ok($c->caught_up(1), 'every member follows the writes');

done_testing();
