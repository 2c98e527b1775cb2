# Review 24: a read barrier on a member whose apply of the group stopped
# (an entry fails there: the group is parked, and the engine hands it no
# more entries) while the leader commits more.  The engine answers a read
# index once it handed the entries up to it to the state machine, which it
# does not while the group is held: read_barrier (and a linearizable read)
# waited until statement_timeout, deaf to the apply failure it is meant to
# report (review 3 #5).  And the read stayed pending in the engine after the
# cancel, so the backend's request slot stayed taken: its next request of
# any group (a read barrier, a COMMIT) waited for it, and so did the next
# session given the same backend id.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use DragonCluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $c = DragonCluster->new(3);
$c->create_group(1);
$c->create_group(2);
my $l = $c->leader(1);
ok($c->leader(2), 'group 2 leads');
my ($f) = grep { $_ != $l } $c->ids;

# An object on follower f makes the command fail there: f parks group 1.
$c->node($f)->safe_psql('postgres', 'CREATE TABLE clash (i int)');
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'CREATE TABLE clash (i int)')});
ok($c->wait_until("node $f's apply of group 1 to fail", sub {
	($c->poll($f, 'SELECT state FROM dragonraft.status WHERE group_id = 1') // '') eq 'apply_failed' }),
	'the follower parks group 1');
# The leader goes on: the follower's read index lies beyond what its engine handed over.
$c->node($l)->safe_psql('postgres', q{SELECT dragonraft.execute(1, 'SELECT 1')}) for 1 .. 3;

my $t0 = time;
my ($out, $err) = ('', '');
$c->node($f)->psql('postgres', q{\set VERBOSITY verbose
SET statement_timeout = '20s';
SELECT dragonraft.read_barrier(1);
SELECT 'after';
SET statement_timeout = '20s';
SELECT dragonraft.read_barrier(2);
}, stdout => \$out, stderr => \$err, on_error_stop => 0);
my $took = time - $t0;
diag sprintf("%.1f s: %s", $took, $err);
my @errors = $err =~ /ERROR:\s+([0-9A-Z]{5}):/g;
isnt($errors[0] // '', '57014', 'read_barrier of the parked group ends with an error of its own, not the timeout');
like($err, qr/apply/, 'which names the apply that stopped');
like($out, qr/after\n\d+/, 'the next read barrier, of another group, in the session works');
is(scalar(@errors), 1, 'and only the parked group errs');

# A new session (it may get the same backend id) commits in group 2.
$c->node($f)->safe_psql('postgres', 'SET statement_timeout = \'20s\'; SELECT dragonraft.read_barrier(2)');
pass('a new session reads group 2');

# Fixed: f applies again, and the group agrees.
$c->node($f)->safe_psql('postgres', 'DROP TABLE clash');
ok($c->caught_up(1), 'every member applies group 1 once the cause is gone');
done_testing();
